#!/usr/bin/env bash
# Installs what the project needs on a Debian machine, idempotently.
#
#   scripts/setup.sh run    what running needs (start.sh): the wasm32-wasip2
#                           target, Node.js/npm and the chat page's packages
#                           (built into web/dist), Docker (started if it is
#                           not running), debootstrap (the sandbox image's
#                           base), ffmpeg (desktop recordings), and a private
#                           virtualenv; PostgreSQL only when the configuration
#                           names a local PostgreSQL database.
#   scripts/setup.sh test   what only the tests need besides (test.sh):
#                           componentize-py and componentize-js, Chromium with
#                           Playwright, the MCP SDK, docker-registry,
#                           Prometheus, HAProxy, openssl, docker-compose and
#                           kubernetes-validate (the deployment files' checks),
#                           the OpenTelemetry protobuf bindings (the OTLP
#                           test's collector), and PostgreSQL with its test role and database.
#
# Neither builds the sandbox image (sandbox-image/build.sh): start.sh and
# test.sh run that beside the Rust build. Safe to run repeatedly; a second
# run installs nothing and takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
mode=${1:-run}
case $mode in run | test) ;; *) die "usage: scripts/setup.sh run|test" ;; esac

need_root_for_apt() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing $* needs root (or sudo)"
    echo sudo
  fi
}

# apt_install [--no-recommends] PACKAGE...: one apt-get for all that are missing.
apt_updated=
apt_install() {
  local opts=()
  if [ "${1:-}" = --no-recommends ]; then opts+=(--no-install-recommends); shift; fi
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  local sudo; sudo=$(need_root_for_apt "${missing[*]}")
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
}

# Packages whose own service we do not want (the tests start their own on
# loopback): installed, then stopped and disabled.
service_off() {
  for svc in "$@"; do
    (systemctl disable --now "$svc" || service "$svc" stop) >/dev/null 2>&1 || true
  done
}

start_postgresql() {
  if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL is not running and starting it needs root"
    step "starting PostgreSQL"
    local cluster
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    [ -n "$cluster" ] || die "no PostgreSQL cluster found (pg_lsclusters)"
    pg_ctlcluster $cluster start
  fi
}

# The database URL the server will use: the environment, else the config file.
configured_database_url() {
  if [ -n "${AGENTHOST_DATABASE_URL:-}" ]; then echo "$AGENTHOST_DATABASE_URL"; return; fi
  local config=${AGENTHOST_CONFIG:-${AGENTHOST_DATA_DIR:-$HOME/.local/share/agenthost}/config.toml}
  [ -f "$config" ] && sed -nE 's/^[[:space:]]*database_url[[:space:]]*=[[:space:]]*"([^"]*)".*/\1/p' "$config" | head -n1
  return 0
}

# A private virtualenv: its pip fetches the sandbox image's MCP SDK, and
# the test tools go into it (never into the system Python).
make_venv() {
  if [ ! -x "$TOOLS_DIR/venv/bin/pip" ]; then
    step "virtualenv $TOOLS_DIR/venv"
    python3 -m venv "$TOOLS_DIR/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$TOOLS_DIR/venv"; }
  fi
}

setup_run() {
  command -v cargo >/dev/null || die "Rust is required: install it with rustup (https://rustup.rs), then rerun"
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    step "rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2
  fi

  # One apt-get for everything running needs.
  local want=()
  command -v python3 >/dev/null || want+=(python3)
  { command -v node >/dev/null && command -v npm >/dev/null; } || want+=(nodejs npm)
  command -v dockerd >/dev/null || want+=(docker.io)
  command -v debootstrap >/dev/null || want+=(debootstrap)
  command -v ffmpeg >/dev/null || want+=(ffmpeg)
  command -v curl >/dev/null || want+=(curl)
  [ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"

  make_venv

  # The chat page: locked npm packages, assembled into web/dist.
  if [ ! -d web/node_modules/@novnc/novnc ] || [ ! -d web/node_modules/esbuild ]; then
    step "npm ci (chat page: noVNC, marked, DOMPurify, esbuild)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd web && npm run --silent build >/dev/null)

  if ! docker info >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "Docker is not running and starting it needs root: start dockerd, or rerun as root"
    step "starting dockerd (log: /var/log/agenthost-dockerd.log)"
    # Each host owner gets a bridge network of its own (tests make many):
    # small subnets from one roomy pool instead of Docker's 31 default ones.
    nohup dockerd --default-address-pool base=10.128.0.0/9,size=24 >/var/log/agenthost-dockerd.log 2>&1 &
    for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
    docker info >/dev/null 2>&1 || die "dockerd did not start; see /var/log/agenthost-dockerd.log"
  fi

  # PostgreSQL only when the server is configured to use one on this machine.
  local url
  url=$(configured_database_url)
  case $url in
    postgres*://*@localhost[:/]* | postgres*://*@127.0.0.1[:/]* | postgres*://localhost[:/]* | postgres*://127.0.0.1[:/]*)
      apt_install postgresql
      start_postgresql
      ;;
  esac
}

setup_test() {
  # One apt-get for everything the tests need besides (their own services off).
  local want=()
  command -v openssl >/dev/null || want+=(openssl) # the Vertex AI tests' service-account key
  command -v chromium >/dev/null || want+=(chromium) # the page's tests, driven by Playwright
  command -v docker-registry >/dev/null || want+=(docker-registry) # plugin publishing
  command -v docker-compose >/dev/null || want+=(docker-compose)   # deploy/compose.yaml's check
  dpkg -s postgresql >/dev/null 2>&1 || want+=(postgresql) # the store's and fleet's tests
  [ ${#want[@]} -eq 0 ] || apt_install "${want[@]}"
  # Prometheus scrapes a host in the metrics test and HAProxy balances the
  # fleet test's hosts; without recommends (no node exporter).
  local lean=()
  command -v prometheus >/dev/null || lean+=(prometheus)
  command -v haproxy >/dev/null || lean+=(haproxy)
  if [ ${#lean[@]} -gt 0 ]; then
    apt_install --no-recommends "${lean[@]}"
  fi
  [ ${#want[@]} -eq 0 ] && [ ${#lean[@]} -eq 0 ] || service_off docker-registry prometheus haproxy

  make_venv
  local pip="$TOOLS_DIR/venv/bin/pip"
  local py="$TOOLS_DIR/venv/bin/python"
  if [ ! -x "$TOOLS_DIR/venv/bin/componentize-py" ]; then
    step "componentize-py into $TOOLS_DIR/venv"
    "$pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
  fi
  if ! "$py" -c "import playwright, pytest" 2>/dev/null; then
    step "playwright and pytest into $TOOLS_DIR/venv"
    "$pip" install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
  fi
  # Validates deploy/kubernetes/ against the Kubernetes schemas, offline.
  if ! [ -x "$TOOLS_DIR/venv/bin/kubernetes-validate" ]; then
    step "kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $TOOLS_DIR/venv"
    "$pip" install -q --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  # The OTLP protobuf bindings: the test collector decodes exports with them.
  if ! [ "$("$py" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))' 2>/dev/null)" = "$OPENTELEMETRY_PROTO_VERSION" ]; then
    step "opentelemetry-proto $OPENTELEMETRY_PROTO_VERSION into $TOOLS_DIR/venv"
    "$pip" install -q --disable-pip-version-check "opentelemetry-proto==$OPENTELEMETRY_PROTO_VERSION"
  fi
  # The official MCP SDK, as a real client of /mcp and as the test's MCP server.
  if ! [ "$("$py" -c 'import importlib.metadata as m; print(m.version("mcp"))' 2>/dev/null)" = "$MCP_VERSION" ]; then
    step "mcp $MCP_VERSION (the official MCP SDK) into $TOOLS_DIR/venv"
    "$pip" install -q --disable-pip-version-check "mcp==$MCP_VERSION"
  fi

  if [ ! -d plugins/examples/js-tool/node_modules/@bytecodealliance/componentize-js ]; then
    # `npm ci` rejects this lockfile because npm leaves other platforms'
    # optional packages out of it; `install --no-save` installs the locked
    # versions and leaves the lockfile as it is.
    step "npm install (componentize-js, locked versions)"
    (cd plugins/examples/js-tool && npm install --no-save --no-audit --no-fund --loglevel=error)
  fi

  start_postgresql
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
}

"setup_$mode"
step "setup ($mode): ok"
