#!/bin/sh
# Install the browser the web viewer's tests drive: Debian's chromium (never a downloaded build).
# Idempotent, and waits for the dpkg lock if another apt-get holds it (scripts/apt-install.sh).
set -eu
sh "$(dirname "$0")/apt-install.sh" chromium fonts-dejavu-core
echo "install-browser: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
