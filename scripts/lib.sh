# Shared by the scripts in this folder.
# shellcheck shell=bash
COMPONENTIZE_PY_VERSION=0.25.1
PLAYWRIGHT_VERSION=1.65.2
PYTEST_VERSION=9.2.0
# The official MCP SDK, the client in the MCP tests.
MCP_VERSION=2.3.0
# Tools we install live outside the checkout so a fresh clone reuses them.
TOOLS_DIR=${AGENTHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost-tools}
DIST_DIR=${AGENTHOST_PLUGINS_DIR:-$PWD/dist/plugins}
mkdir -p "$TOOLS_DIR"

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
