#!/bin/sh
# The Tinybird clients nobody here wrote, for tests/test_tinybird_interop*.py: the seed's
# @chronark/zod-bird and Tinybird's @tinybirdco/sdk, from tests/interop/package-lock.json into
# tests/interop/node_modules (git-ignored). Skipped when the lock file's packages are already there.
set -eu
# Node.js and npm come with the machine here; elsewhere from Debian.
command -v npm >/dev/null 2>&1 || sh "$(dirname "$0")/../apt-install.sh" nodejs npm
dir="$(cd "$(dirname "$0")/../../tests/interop" && pwd)"
if [ -f "$dir/node_modules/.package-lock.json" ] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.auditbird-lock"; then
    exit 0
fi
cd "$dir"
npm ci --no-audit --no-fund --ignore-scripts
cp package-lock.json node_modules/.auditbird-lock
