#!/usr/bin/env bash
# The whole test suite: sets up what is missing, builds the plugins, runs
# every Rust test, then the chat page's tests in headless Chromium and the
# MCP tests through the official Python SDK. A missing tool or service is
# a failure, never a skip. The sandbox image and the test tools' set-up run
# in the background while Rust compiles.
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTHOST_T0=$(date +%s)
. scripts/lib.sh
total=6

phase 1 $total "set-up for running (scripts/setup.sh run)"
scripts/setup.sh run

phase 2 $total "in the background: the sandbox image and the test tools (logs: $LOG_DIR)"
in_background sandbox-image sandbox-image/build.sh
image=$bg_pid
in_background setup-test scripts/setup.sh test
tools=$bg_pid

phase 3 $total "compiling: the Rust plugins, the agenthost binary, the tests"
scripts/build-plugins.sh rust
# The fleet's tests run the binary as separate processes.
cargo build --locked -p agenthost
cargo test --workspace --locked --no-run

phase 4 $total "the Python and JavaScript examples"
finish setup-test "$tools"
scripts/build-plugins.sh examples

phase 5 $total "cargo test --workspace"
finish sandbox-image "$image"
cargo test --workspace --locked

phase 6 $total "the chat page in headless Chromium, and MCP through the official Python SDK"
step "tests/ui (screenshots in ${CARGO_TARGET_DIR:-target}/ui-test-output)"
"$TOOLS_DIR/venv/bin/python" -m pytest tests/ui -q -p no:cacheprovider
step "tests/mcp"
"$TOOLS_DIR/venv/bin/python" -m pytest tests/mcp -q -p no:cacheprovider
step "all tests passed in $(elapsed)"
