#!/bin/sh
# rsyslog for the syslog log-stream tests (tests/test_streams_syslog.py): they start it as an
# unprivileged process on a free port with their own configuration, so only the binaries are
# needed. rsyslog-gnutls is its TLS driver (syslog over TLS, RFC 5425); openssl makes the
# tests' throwaway certificates.
set -eu
sh "$(dirname "$0")/../apt-install.sh" rsyslog rsyslog-gnutls openssl
