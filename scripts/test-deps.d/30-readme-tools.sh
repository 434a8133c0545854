#!/bin/sh
# tests/test_readme.py runs the README's shell blocks as a newcomer would: with bash and curl.
set -eu
command -v curl >/dev/null 2>&1 && command -v bash >/dev/null 2>&1 && exit 0
exec sh "$(dirname "$0")/../apt-install.sh" curl bash
