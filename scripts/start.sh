#!/usr/bin/env bash
# Starts the product: sets up the machine (Docker, the sandbox image,
# PostgreSQL for tests), builds the host and every plugin, installs the
# first-party plugins with the grants each needs, makes an operator token
# on first run, and runs the server in the foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-plugins.sh
. scripts/lib.sh
step "cargo build --release (agenthost)"
cargo build --quiet --release --locked -p agenthost
bin="${CARGO_TARGET_DIR:-target}/release/agenthost"
data_dir=${AGENTHOST_DATA_DIR:-$HOME/.local/share/agenthost}
export AGENTHOST_DATA_DIR=$data_dir

step "installing first-party plugins into $data_dir"
# Installing the same version with the same bytes changes nothing; a
# rebuilt plugin whose version was not bumped is refused, and the
# installed one keeps serving (the warning says so).
install() {
  local out
  out=$("$bin" plugin install "$@" 2>&1 >/dev/null) || echo "warning: $out" >&2
}
install "$DIST_DIR/computer.wasm" --grant computer
install "$DIST_DIR/bash.wasm" --grant shell
install "$DIST_DIR/editor.wasm" --grant files
install "$DIST_DIR/scripted-policy.wasm"
install "$DIST_DIR/anthropic-policy.wasm" --grant llm
install "$DIST_DIR/openai-policy.wasm" --grant llm

token_file="$data_dir/operator-token"
if [ ! -s "$token_file" ]; then
  step "creating an operator token (kept in $token_file)"
  (umask 077 && "$bin" token create --user operator --name start.sh --admin >"$token_file")
fi
echo
echo "Token for the API and the chat page: $(cat "$token_file")"
echo "Without ANTHROPIC_API_KEY or OPENAI_BASE_URL, sessions use the offline scripted policy."
echo
exec "$bin" serve
