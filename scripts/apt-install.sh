#!/bin/sh
# Install Debian packages for the tests, waiting for the dpkg lock instead of failing when another
# apt-get (a second test run, unattended-upgrades) holds it. Idempotent: installs only what is missing.
# Usage: scripts/apt-install.sh PACKAGE...
set -eu

missing=""
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -n "$missing" ] || exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "apt-install: missing Debian packages:$missing; installing them needs root: apt-get install$missing" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# -o DPkg::Lock::Timeout makes apt wait for a lock another apt-get holds (up to 10 minutes).
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >/dev/null
echo "apt-install: installed$missing"
