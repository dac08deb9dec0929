#!/usr/bin/env bash
# The whole test suite: sets up what is missing, builds the plugins, runs
# every Rust test, then the chat page's tests in headless Chromium. A
# missing tool or service is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-plugins.sh
. scripts/lib.sh
# The fleet's tests run the binary as separate processes.
cargo build --quiet --locked -p agenthost
step "cargo test --workspace"
cargo test --workspace --locked
step "chat page in headless Chromium (tests/ui; screenshots in ${CARGO_TARGET_DIR:-target}/ui-test-output)"
"$TOOLS_DIR/venv/bin/python" -m pytest tests/ui -q -p no:cacheprovider
step "MCP server through the official Python SDK (tests/mcp)"
"$TOOLS_DIR/venv/bin/python" -m pytest tests/mcp -q -p no:cacheprovider
