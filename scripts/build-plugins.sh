#!/usr/bin/env bash
# Builds every plugin component into dist/plugins/<name>.wasm with its
# manifest beside it as <name>.toml: the first-party Rust components, the
# test fixtures (misbehaving-tool, and a tool and a policy built against the
# frozen WIT 0.1.0), and the Python and JavaScript examples (a tool and a
# policy in each).
#
#   scripts/build-plugins.sh          all of them (test.sh)
#   scripts/build-plugins.sh rust     the Rust components only (start.sh:
#                                     no Python or JavaScript toolchain needed)
#   scripts/build-plugins.sh examples the Python and JavaScript examples only
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
which=${1:-all}
case $which in all | rust | examples) ;; *) die "usage: scripts/build-plugins.sh [all|rust|examples]" ;; esac
mkdir -p "$DIST_DIR"

rust_components() {
  step "Rust components (wasm32-wasip2, cargo)"
  # Into the directory the tests crate's build script (tests/build.rs) uses,
  # so the guests are compiled once for both.
  guests="${CARGO_TARGET_DIR:-$PWD/target}/wasm-guests"
  CARGO_TARGET_DIR=$guests cargo build --release --locked --target wasm32-wasip2 \
    --manifest-path plugins/Cargo.toml
  out="$guests/wasm32-wasip2/release"
  for crate in computer bash editor scripted-policy anthropic-policy openai-policy \
    testing/misbehaving-tool testing/v0-1-tool testing/v0-1-policy; do
    name=$(basename "$crate")
    cp "$out/${name//-/_}.wasm" "$DIST_DIR/$name.wasm"
    cp "plugins/$crate/plugin.toml" "$DIST_DIR/$name.toml"
  done
}

examples() {
  step "Python examples (componentize-py)"
  (cd plugins/examples/python-tool &&
    "$TOOLS_DIR/venv/bin/componentize-py" -d ../../../wit/v0.2.0 -w tool-plugin componentize app -o "$DIST_DIR/text-stats.wasm" >/dev/null)
  cp plugins/examples/python-tool/plugin.toml "$DIST_DIR/text-stats.toml"
  (cd plugins/examples/python-policy &&
    "$TOOLS_DIR/venv/bin/componentize-py" -d ../../../wit/v0.2.0 -w policy-plugin componentize app \
      -p . -p ../../sdk/python -o "$DIST_DIR/step-limit.wasm" >/dev/null)
  cp plugins/examples/python-policy/plugin.toml "$DIST_DIR/step-limit.toml"

  step "JavaScript examples (componentize-js)"
  (cd plugins/examples/js-tool && OUT="$DIST_DIR/convert-case.wasm" npm run --silent build >/dev/null)
  cp plugins/examples/js-tool/plugin.toml "$DIST_DIR/convert-case.toml"
  # The policy example uses the tool example's componentize-js.
  (cd plugins/examples/js-policy &&
    PATH="$PWD/../js-tool/node_modules/.bin:$PATH" OUT="$DIST_DIR/tool-filter.wasm" npm run --silent build >/dev/null)
  cp plugins/examples/js-policy/plugin.toml "$DIST_DIR/tool-filter.toml"
}

case $which in
  all) rust_components; examples ;;
  rust) rust_components ;;
  examples) examples ;;
esac

ls -1 "$DIST_DIR"/*.wasm | sed 's/^/  /'
