#!/usr/bin/env bash
# Installs Debian packages without questions, through sudo unless run as root.
# Usage: scripts/apt-install.sh PACKAGE...
set -euo pipefail
as_root=()
[ "$(id -u)" = 0 ] || as_root=(sudo)
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
