#!/usr/bin/env bash
# Sets up, builds, and installs the first-party plugins into the data
# directory with the grants each needs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-plugins.sh
. scripts/lib.sh
step "cargo build --release (agenthost)"
cargo build --quiet --release --locked -p agenthost
bin=target/release/agenthost
step "installing first-party plugins"
"$bin" plugin install "$DIST_DIR/computer.wasm" --grant computer
"$bin" plugin install "$DIST_DIR/bash.wasm" --grant shell
"$bin" plugin install "$DIST_DIR/editor.wasm" --grant files
"$bin" plugin install "$DIST_DIR/scripted-policy.wasm"
"$bin" plugin install "$DIST_DIR/text-stats.wasm"
"$bin" plugin install "$DIST_DIR/convert-case.wasm"
echo
echo "Plugins are installed. Try one:"
echo "  $bin plugin invoke $DIST_DIR/text-stats.wasm text_stats '{\"text\": \"hello world\"}'"
