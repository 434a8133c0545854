#!/bin/sh
# Tinybird's own command line tools, each in a throwaway venv inside the repo (git-ignored):
#   .cache/tb-venv          the current CLI   (PyPI `tinybird`: tb build / tb deploy)
#   .cache/tb-classic-venv  the Classic CLI   (PyPI `tinybird-cli`: tb push)
# They pin many packages that conflict with auditbird's own, hence one venv each. The tests read
# these paths through tests/plugins/tinybird_clis.py. Idempotent: an existing venv whose `tb`
# imports is reused; set TB_CLIS_UPGRADE=1 to reinstall.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${TB_CLIS_PYTHON:-python3}"
# Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
"$python" -c "import ensurepip" 2>/dev/null || sh "$here/../apt-install.sh" python3-venv

install() {  # install VENV PACKAGE MODULE
    venv="$root/.cache/$1"
    if [ -z "${TB_CLIS_UPGRADE:-}" ] && [ -x "$venv/bin/tb" ] && "$venv/bin/python" -c "import $3" 2>/dev/null; then
        echo "20-tinybird-clis: $2 already in .cache/$1"
        return 0
    fi
    mkdir -p "$root/.cache"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$2"
    "$venv/bin/python" -c "import $3"
    echo "20-tinybird-clis: installed $2 into .cache/$1"
}

install tb-venv tinybird tinybird
install tb-classic-venv tinybird-cli tinybird
