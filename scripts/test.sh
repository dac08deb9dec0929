#!/usr/bin/env bash
# The whole test suite: sets up what is missing, builds the plugins, runs
# every test. A missing tool or service is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-plugins.sh
step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
step "cargo test --workspace"
cargo test --workspace --locked
