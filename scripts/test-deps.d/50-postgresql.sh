#!/bin/sh
# Debian's PostgreSQL server (initdb, pg_ctl, pg_trgm) for the PostgreSQL store's tests, which start
# a throwaway cluster of their own (tests/plugins/postgres.py); the Debian service is not used.
set -eu
sh "$(dirname "$0")/../apt-install.sh" postgresql postgresql-contrib
