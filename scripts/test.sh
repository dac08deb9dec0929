#!/usr/bin/env bash
# The whole test suite: sets up what is missing, builds the plugins, then
# runs every Rust test, the chat page's tests in headless Chromium and the
# MCP tests through the official Python SDK, several at a time. A missing
# tool or service is a failure, never a skip. The sandbox image, the test
# tools' set-up and the plugins build in the background while the host and
# its tests compile.
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTHOST_T0=$(date +%s)
. scripts/lib.sh
total=5

phase 1 $total "set-up for running (scripts/setup.sh run)"
scripts/setup.sh run

phase 2 $total "in the background: the sandbox image, the test tools and examples, the Rust plugins (logs: $LOG_DIR)"
in_background sandbox-image sandbox-image/build.sh
image=$bg_pid
# The Python and JavaScript examples need the test tools' componentize-py
# and componentize-js.
in_background setup-test bash -c 'scripts/setup.sh test && scripts/build-plugins.sh examples'
tools=$bg_pid
# Into the directory tests/build.rs builds the guests in: whichever gets
# there second waits on cargo's lock and finds them built.
in_background rust-plugins scripts/build-plugins.sh rust
plugins=$bg_pid

phase 3 $total "compiling the tests (and the agenthost binary, which some run as a process)"
# The test binaries' paths go to scripts/run-tests.py.
binaries="$LOG_DIR/test-binaries.json"
cargo test --workspace --locked --no-run --message-format=json-render-diagnostics >"$binaries"

phase 4 $total "waiting for the background steps"
finish rust-plugins "$plugins"
finish setup-test "$tools"
finish sandbox-image "$image"

phase 5 $total "the tests, ${AGENTHOST_TEST_JOBS:-3} jobs at a time (logs: $LOG_DIR/tests)"
# Every Rust test binary, the chat page in headless Chromium (screenshots
# in ${CARGO_TARGET_DIR:-target}/ui-test-output) and MCP through the
# official Python SDK. They share no state (scripts/run-tests.py says how).
py="$TOOLS_DIR/venv/bin/python"
"$py" scripts/run-tests.py "$binaries" --jobs "${AGENTHOST_TEST_JOBS:-3}" \
  --log-dir "$LOG_DIR" --workspace "$PWD" \
  --command page "$py -m pytest tests/ui -q -p no:cacheprovider" \
  --command mcp "$py -m pytest tests/mcp -q -p no:cacheprovider"
step "all tests passed in $(elapsed)"
