#!/bin/sh
# Debian's chromium for the web viewer's browser tests.
set -eu
exec sh "$(dirname "$0")/../install-browser.sh"
