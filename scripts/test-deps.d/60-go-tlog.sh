#!/bin/sh
# Go and Debian's golang.org/x/mod (sumdb/tlog and sumdb/note) for the provable-history tests: an
# implementation nobody here wrote checks our inclusion and consistency proofs and signed checkpoints,
# built offline against /usr/share/gocode (no module download at test time).
set -eu
sh "$(dirname "$0")/../apt-install.sh" golang-go golang-golang-x-mod-dev
