#!/usr/bin/env bash
# Starts the product: sets up what running needs (scripts/setup.sh run),
# builds the sandbox image beside the Rust build, builds the host and the
# first-party plugins, installs them with the grants each needs, makes an
# operator token on first run, and runs the server in the foreground until
# Ctrl-C. A second run rebuilds and reinstalls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTHOST_T0=$(date +%s)
. scripts/lib.sh
total=6

phase 1 $total "set-up for running (scripts/setup.sh run)"
scripts/setup.sh run

phase 2 $total "sandbox image, in the background (log: $LOG_DIR/sandbox-image.log)"
in_background sandbox-image sandbox-image/build.sh
image=$bg_pid

phase 3 $total "first-party plugins (cargo, wasm32-wasip2)"
scripts/build-plugins.sh rust

phase 4 $total "agenthost (cargo build --release)"
cargo build --release --locked -p agenthost
bin="${CARGO_TARGET_DIR:-target}/release/agenthost"
finish sandbox-image "$image"

data_dir=${AGENTHOST_DATA_DIR:-$HOME/.local/share/agenthost}
export AGENTHOST_DATA_DIR=$data_dir
phase 5 $total "first-party plugins into $data_dir"
# What was installed last time, by content: unchanged plugins are not
# installed again (each install starts the binary and reads the component).
stamp="$data_dir/.start-installed"
want=$(cat "$DIST_DIR"/{computer,bash,editor,scripted-policy,anthropic-policy,openai-policy}.wasm | sha256sum | cut -c1-32)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # Installing the same version with the same bytes changes nothing; a
  # rebuilt plugin whose version was not bumped is refused, and the
  # installed one keeps serving (the warning says so).
  installed=yes
  install() {
    local out
    out=$("$bin" plugin install "$@" 2>&1 >/dev/null) || { echo "warning: $out" >&2; installed=; }
  }
  install "$DIST_DIR/computer.wasm" --grant computer
  install "$DIST_DIR/bash.wasm" --grant shell
  install "$DIST_DIR/editor.wasm" --grant files
  install "$DIST_DIR/scripted-policy.wasm"
  install "$DIST_DIR/anthropic-policy.wasm" --grant llm
  install "$DIST_DIR/openai-policy.wasm" --grant llm
  [ -z "$installed" ] || echo "$want" >"$stamp"
else
  step "unchanged since the last start"
fi
token_file="$data_dir/operator-token"
if [ ! -s "$token_file" ]; then
  step "creating an operator token (kept in $token_file)"
  (umask 077 && "$bin" token create --user operator --name start.sh --admin >"$token_file")
fi

phase 6 $total "agenthost serve"
"$bin" serve &
server=$!
trap 'kill -INT $server 2>/dev/null; wait $server' INT TERM
config=${AGENTHOST_CONFIG:-$data_dir/config.toml}
listen=${AGENTHOST_LISTEN:-$( (sed -nE 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*"([^"]*)".*/\1/p' "$config" 2>/dev/null || true) | head -n1)}
listen=${listen:-127.0.0.1:8080}
url="http://$listen"
until curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; do
  kill -0 $server 2>/dev/null || { wait $server; die "agenthost serve stopped before it was ready"; }
  sleep 0.2
done
echo
printf '\033[1mReady in %s: open %s\033[0m\n' "$(elapsed)" "$url"
echo "Token for the API and the chat page: $(cat "$token_file")"
echo "Without ANTHROPIC_API_KEY or OPENAI_BASE_URL, sessions use the offline scripted policy."
echo "Ctrl-C stops the server."
wait $server
