#!/usr/bin/env bash
# Installs everything the project needs on a Debian machine, idempotently:
# the wasm32-wasip2 Rust target, componentize-py (Python components) and the
# JS example's npm packages (componentize-js). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_root_for_apt() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "installing $* needs root (or sudo)"
    echo sudo
  fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  step "apt-get install ${missing[*]}"
  local sudo; sudo=$(need_root_for_apt "${missing[*]}")
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

command -v cargo >/dev/null || die "Rust is required: install it with rustup (https://rustup.rs), then rerun"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  step "rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

command -v python3 >/dev/null || apt_install python3
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
echo "setup: ok"
