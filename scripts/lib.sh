# Shared by the scripts in this folder.
# shellcheck shell=bash
COMPONENTIZE_PY_VERSION=0.25.1
PLAYWRIGHT_VERSION=1.65.2
PYTEST_VERSION=9.2.0
# The official MCP SDK, the client in the MCP tests.
MCP_VERSION=2.3.0
# Checks deploy/kubernetes/ against the Kubernetes schemas without a cluster.
KUBERNETES_VALIDATE_VERSION=1.37.0
OPENTELEMETRY_PROTO_VERSION=1.45.2
# Tools we install live outside the checkout so a fresh clone reuses them.
TOOLS_DIR=${AGENTHOST_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost-tools}
DIST_DIR=${AGENTHOST_PLUGINS_DIR:-$PWD/dist/plugins}
# Logs of the steps that run in the background.
LOG_DIR=${AGENTHOST_LOG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost-logs}
mkdir -p "$TOOLS_DIR" "$LOG_DIR"

# The clock every step's time is read from: set once by the first script
# (start.sh, test.sh) and inherited by the scripts it runs.
AGENTHOST_T0=${AGENTHOST_T0:-$(date +%s)}
export AGENTHOST_T0

# m:ss since AGENTHOST_T0.
elapsed() {
  local s=$(($(date +%s) - AGENTHOST_T0))
  printf '%d:%02d' $((s / 60)) $((s % 60))
}
# A step inside a phase, with the time since the start.
step() { printf '\033[1m  -> %s\033[0m \033[2m(%s)\033[0m\n' "$*" "$(elapsed)" >&2; }
# One of the top script's numbered phases: phase N TOTAL TEXT.
phase() {
  local n=$1 total=$2
  shift 2
  printf '\033[1m==> [%s/%s %s] %s\033[0m\n' "$n" "$total" "$(elapsed)" "$*" >&2
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# in_background NAME COMMAND...: runs COMMAND with its output in
# $LOG_DIR/NAME.log; its pid is left in bg_pid (for finish).
in_background() {
  local name=$1
  shift
  "$@" >"$LOG_DIR/$name.log" 2>&1 &
  bg_pid=$!
}
# finish NAME PID: waits for a background step; on failure shows the end
# of its log and stops.
finish() {
  local name=$1 pid=$2
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || { tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name failed (log: $LOG_DIR/$name.log)"; }
    return
  fi
  step "waiting for $name: $(grep -E '^(==>|  ->|Step [0-9])' "$LOG_DIR/$name.log" | tail -n1 | sed 's/\x1b\[[0-9;]*m//g')"
  wait "$pid" || { tail -n 30 "$LOG_DIR/$name.log" >&2; die "$name failed (log: $LOG_DIR/$name.log)"; }
}
