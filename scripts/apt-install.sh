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
# -o DPkg::Lock::Timeout makes apt wait for dpkg's lock (up to 10 minutes), but not for the lists
# lock (`update`) nor the archives lock (downloads): those fail at once while another apt-get holds
# them (checked on Debian 12's apt 2.6), so a lock failure is retried here, for up to 10 minutes.
apt_get() {
    waited=0
    while :; do
        if err=$($SUDO apt-get -o DPkg::Lock::Timeout=600 "$@" 2>&1 >/dev/null); then return 0; fi
        case "$err" in
            *"Could not get lock"*) [ "$waited" -lt 600 ] || break; sleep 5; waited=$((waited + 5)) ;;
            *) break ;;
        esac
    done
    printf '%s\n' "$err" >&2
    return 1
}
apt_get update -qq
# shellcheck disable=SC2086
apt_get install -y -qq --no-install-recommends $missing
echo "apt-install: installed$missing"
