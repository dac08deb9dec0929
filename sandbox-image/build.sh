#!/usr/bin/env bash
# Builds the sandbox image (agenthost-sandbox:latest) with progress shown.
# Where no registry can be pulled from, it first makes its own Debian
# bookworm base with debootstrap (from this machine's own apt mirror) and
# `docker import`s it. (Debian's docker.io builds with the legacy builder:
# the Dockerfile avoids BuildKit-only syntax.) Skips the work when the image is up to date.
set -euo pipefail
cd "$(dirname "$0")"
IMAGE=${AGENTHOST_SANDBOX_IMAGE:-agenthost-sandbox:latest}
BASE_LOCAL=agenthost-base:bookworm

docker info >/dev/null 2>&1 || { echo "error: Docker is not running (scripts/setup.sh starts it)" >&2; exit 1; }

. ../scripts/lib.sh

# The image is labelled with a hash of its inputs; same hash, nothing to do.
inputs=$( (find Dockerfile entrypoint.sh execd.py desktop -type f | sort | xargs cat; echo "mcp-$MCP_VERSION") | sha256sum | cut -c1-16)
current=$(docker image inspect -f '{{ index .Config.Labels "agenthost.inputs" }}' "$IMAGE" 2>/dev/null || true)
if [ "$current" = "$inputs" ]; then
  echo "sandbox image $IMAGE is up to date"
  exit 0
fi

# The official Python MCP SDK goes into the image, so MCP servers written
# with it run inside sandboxes (home and /tmp are mounted noexec, so its
# native parts could not be brought in later). This machine's pip fetches
# it for the image's Python (3.11); the build itself reaches no index.
vendor=vendor/python
if [ ! -f "$vendor/.mcp-$MCP_VERSION" ]; then
  step "mcp $MCP_VERSION (the official Python MCP SDK) for the image"
  pip=$TOOLS_DIR/venv/bin/pip
  [ -x "$pip" ] || pip=pip3
  rm -rf "$vendor"
  "$pip" install -q --disable-pip-version-check --target "$vendor" --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp "mcp==$MCP_VERSION"
  rm -rf "$vendor/bin"
  touch "$vendor/.mcp-$MCP_VERSION"
fi

if docker image inspect debian:bookworm-slim >/dev/null 2>&1 || docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
  base=debian:bookworm-slim
else
  base=$BASE_LOCAL
  if ! docker image inspect "$base" >/dev/null 2>&1; then
    # The mirror this machine's apt uses, so no address is built in here.
    mirror=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 -E '/debian/?$' || true)
    [ -n "$mirror" ] || mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "error: cannot find a Debian mirror in this machine's apt sources" >&2; exit 1; }
    command -v debootstrap >/dev/null || { echo "error: debootstrap is missing (scripts/setup.sh installs it)" >&2; exit 1; }
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    step "debootstrap bookworm (no registry reachable; building our own base)"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" | grep -E '^I: (Retrieving|Base|Configuring) ' | tail -n 20 >&2 || true
    [ -x "$rootfs/bin/bash" ] || { echo "error: debootstrap failed" >&2; exit 1; }
    step "docker import $base"
    tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
  fi
fi

step "docker build $IMAGE (from $base)"
docker build --build-arg "BASE=$base" --label "agenthost.inputs=$inputs" -t "$IMAGE" . 2>&1 \
  | grep --line-buffered -E "^(Step [0-9]+|Successfully|ERROR|E: )" || true
docker image inspect "$IMAGE" >/dev/null 2>&1 || { echo "error: docker build failed" >&2; exit 1; }
echo "built $IMAGE"
