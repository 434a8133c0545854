#!/bin/sh
# Everything the tests need beyond the venv: each script in scripts/test-deps.d/ installs one thing
# (Debian packages through scripts/apt-install.sh, npm packages, a throwaway venv for Tinybird's CLIs).
# Each is idempotent, so a second `make test` on the same machine reuses what the first installed.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
for script in "$here"/test-deps.d/*.sh; do
    [ -e "$script" ] || continue
    echo "install-test-deps: $(basename "$script")"
    sh "$script"
done
