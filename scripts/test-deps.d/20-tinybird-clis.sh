#!/bin/sh
# Tinybird's two CLIs, each in a throwaway venv inside the repo (git-ignored, reused by later runs):
# .cache/tb-venv holds the current CLI (`pip install tinybird`), .cache/tb-classic-venv the Classic
# one (`pip install tinybird-cli`). They cannot share a venv: both install a `tb` command.
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"
# Debian's python3 makes venvs only with python3-venv (ensurepip).
"$python" -c "import ensurepip" 2>/dev/null || sh "$(dirname "$0")/../apt-install.sh" python3-venv
install() {
    venv="$root/.cache/$1"
    package="$2"
    if [ -x "$venv/bin/tb" ] && "$venv/bin/python" -c "import importlib.metadata as m; m.version('$package')" >/dev/null 2>&1; then
        return 0
    fi
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package"
}
install tb-venv tinybird
install tb-classic-venv tinybird-cli
