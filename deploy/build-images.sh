#!/usr/bin/env bash
# Builds the images deploy/compose.yaml and deploy/kubernetes/ use, on the
# same offline Debian base as the sandbox image (no registry is pulled
# from): agenthost-host (the release binary, the first-party plugins and
# the chat page), agenthost-postgres and agenthost-haproxy, and the
# sandbox image itself. Push them to your registry for a cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export AGENTHOST_T0=$(date +%s)
. scripts/lib.sh
total=3

phase 1 $total "the sandbox image (and the Debian base)"
sandbox-image/build.sh
if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  base=debian:bookworm-slim
else
  base=agenthost-base:bookworm
fi

phase 2 $total "the release binary and the first-party plugins"
scripts/build-plugins.sh rust
cargo build --release --locked -p agenthost

phase 3 $total "agenthost-host, agenthost-postgres, agenthost-haproxy (from $base)"
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "${CARGO_TARGET_DIR:-target}/release/agenthost" "$context/"
mkdir "$context/plugins"
for name in computer bash editor scripted-policy anthropic-policy openai-policy; do
  cp "$DIST_DIR/$name.wasm" "$context/plugins/"
done
cp -r web/dist "$context/web"
cp deploy/images/*.sh "$context/"
for image in host postgres haproxy; do
  step "docker build agenthost-$image:latest"
  docker build -q --build-arg "BASE=$base" -f "deploy/images/$image.Dockerfile" \
    -t "agenthost-$image:latest" "$context" >/dev/null
done
step "built in $(elapsed)"
