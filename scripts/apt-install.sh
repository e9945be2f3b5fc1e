#!/usr/bin/env bash
# Install Debian packages when we may: as root with apt-get. Otherwise fail naming them.
#
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "apt-install.sh: missing packages: $* (install them, e.g. sudo apt-get install $*)" >&2
    exit 1
fi
echo "apt-install.sh: apt-get install $*" >&2
# Refresh the package index once per boot: a stale index is the usual cause of 404s.
if [[ ! -f /tmp/.exchange-apt-updated ]]; then
    apt-get update -qq
    touch /tmp/.exchange-apt-updated
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
