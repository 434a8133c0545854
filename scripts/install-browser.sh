#!/bin/sh
# Install the browser the web viewer's tests drive: Debian's chromium (never a downloaded build).
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (or sudo) to install.
set -eu

if [ -x /usr/bin/chromium ]; then
    echo "install-browser: chromium already installed ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-browser: chromium is missing and installing it needs root; run: apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium) from apt"
