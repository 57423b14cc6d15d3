#!/usr/bin/env bash
# install-deps.sh PKG...: installs Debian packages the build needs (redis-server,
# protoc) when they are missing. Needs root; says what to do otherwise.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "missing: $*; install them (apt-get install $*) or run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
