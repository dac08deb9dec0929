#!/usr/bin/env bash
# Installs everything the project needs on a Debian machine, idempotently:
# the wasm32-wasip2 Rust target, componentize-py (Python components), the
# JS example's npm packages (componentize-js), the chat page's npm packages
# (built into web/dist), Docker (started if it is not running), ffmpeg (desktop
# recordings), the sandbox image, PostgreSQL, and Chromium with Playwright for the page's tests. Safe
# to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root_for_apt() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing $* needs root (or sudo)"
    echo sudo
  fi
}

# apt_install [--no-recommends] PACKAGE...
apt_install() {
  local opts=()
  if [ "${1:-}" = --no-recommends ]; then opts+=(--no-install-recommends); shift; fi
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  local sudo; sudo=$(need_root_for_apt "${missing[*]}")
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
}

command -v cargo >/dev/null || die "Rust is required: install it with rustup (https://rustup.rs), then rerun"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  step "rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

command -v python3 >/dev/null || apt_install python3
# The Vertex AI tests make a service-account key with it.
command -v openssl >/dev/null || apt_install openssl
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm

# componentize-py lives in a virtualenv of ours, never in the system Python.
if [ ! -x "$TOOLS_DIR/venv/bin/componentize-py" ]; then
  step "componentize-py into $TOOLS_DIR/venv"
  python3 -m venv "$TOOLS_DIR/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$TOOLS_DIR/venv"; }
  "$TOOLS_DIR/venv/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

if [ ! -d plugins/examples/js-tool/node_modules/@bytecodealliance/componentize-js ]; then
  # `npm ci` rejects this lockfile because npm leaves other platforms'
  # optional packages out of it; `install --no-save` installs the locked
  # versions and leaves the lockfile as it is.
  step "npm install (componentize-js, locked versions)"
  (cd plugins/examples/js-tool && npm install --no-save --no-audit --no-fund --loglevel=error)
fi
# The chat page: locked npm packages, assembled into web/dist.
if [ ! -d web/node_modules/@novnc/novnc ] || [ ! -d web/node_modules/esbuild ]; then
  step "npm ci (chat page: noVNC, marked, DOMPurify, esbuild)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd web && npm run --silent build >/dev/null)

# Headless Chromium from Debian, driven by Playwright from PyPI in the page's tests.
command -v chromium >/dev/null || apt_install chromium
if ! "$TOOLS_DIR/venv/bin/python" -c "import playwright, pytest" 2>/dev/null; then
  step "playwright and pytest into $TOOLS_DIR/venv"
  "$TOOLS_DIR/venv/bin/pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
fi
# The official MCP SDK, as a real client of /mcp and as the test's MCP server.
if ! [ "$("$TOOLS_DIR/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" = "$MCP_VERSION" ]; then
  step "mcp $MCP_VERSION (the official MCP SDK) into $TOOLS_DIR/venv"
  "$TOOLS_DIR/venv/bin/pip" install -q --disable-pip-version-check "mcp==$MCP_VERSION"
fi

# A local OCI registry for the plugin publish/install tests. The tests
# start their own on loopback; the package's service (all interfaces,
# port 5000) is not wanted.
if ! command -v docker-registry >/dev/null; then
  apt_install docker-registry
  (systemctl disable --now docker-registry || service docker-registry stop) >/dev/null 2>&1 || true
fi

# Prometheus scrapes a host in the metrics test, which starts its own on
# loopback; the package's service (all interfaces) and its recommended node
# exporter are not wanted.
if ! command -v prometheus >/dev/null; then
  apt_install --no-recommends prometheus
  (systemctl disable --now prometheus || service prometheus stop) >/dev/null 2>&1 || true
fi

# HAProxy balances the fleet test's hosts; its own service is not wanted.
if ! command -v haproxy >/dev/null; then
  apt_install --no-recommends haproxy
  (systemctl disable --now haproxy || service haproxy stop) >/dev/null 2>&1 || true
fi

# Docker: the engine from Debian's packages, started if it is not running.
command -v dockerd >/dev/null || apt_install docker.io
command -v debootstrap >/dev/null || apt_install debootstrap
# ffmpeg records a session's desktop as WebM when a person switches it on.
command -v ffmpeg >/dev/null || apt_install ffmpeg
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "Docker is not running and starting it needs root: start dockerd, or rerun as root"
  step "starting dockerd (log: /var/log/agenthost-dockerd.log)"
  # Each host owner gets a bridge network of its own (tests make many):
  # small subnets from one roomy pool instead of Docker's 31 default ones.
  nohup dockerd --default-address-pool base=10.128.0.0/9,size=24 >/var/log/agenthost-dockerd.log 2>&1 &
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || die "dockerd did not start; see /var/log/agenthost-dockerd.log"
fi

sandbox-image/build.sh

# PostgreSQL for the store's tests (SQLite is embedded and needs nothing).
apt_install postgresql
if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
  [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not running and starting it needs root"
  step "starting PostgreSQL"
  cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
  [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters)"
  pg_ctlcluster $cluster start
fi
# The test role's password only guards a loopback test database.
pg_test() { PGPASSWORD=agenthost psql -h 127.0.0.1 -U agenthost -d agenthost_test -c 'select 1' >/dev/null 2>&1; }
if ! pg_test; then
  step "creating the PostgreSQL test role and database"
  su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agenthost') THEN
    CREATE ROLE agenthost LOGIN PASSWORD 'agenthost';
  END IF;
END $$;
SQL
  su postgres -c "createdb -O agenthost agenthost_test" 2>/dev/null || true
  pg_test || die "cannot connect to the PostgreSQL test database"
fi
# The fleet tests give each run a database of its own.
if [ "$(PGPASSWORD=agenthost psql -h 127.0.0.1 -U agenthost -d agenthost_test -tAc "select rolcreatedb from pg_roles where rolname = 'agenthost'")" != t ]; then
  su postgres -c "psql -q -c 'ALTER ROLE agenthost CREATEDB'"
fi
echo "setup: ok"
