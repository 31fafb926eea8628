#!/usr/bin/env bash
# tests/deploy starts the worker image's entrypoint as the containers do, and that
# entrypoint is tini (deploy/Dockerfile installs Debian's tini package). Install the same
# package here when it is missing.
set -euo pipefail
if [ -x /usr/bin/tini ]; then
  exit 0
fi
echo "tini not found; installing Debian's tini package" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tini >/dev/null
