#!/bin/sh
# Debian's LibreOffice Calc (no GUI) for the CSV export test: a real spreadsheet program opens what
# `auditbird export` / `query --format csv` writes and we check that no cell became a formula.
set -eu
sh "$(dirname "$0")/../apt-install.sh" libreoffice-calc-nogui
