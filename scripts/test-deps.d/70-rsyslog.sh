#!/bin/sh
# rsyslog for the syslog log-stream tests (tests/test_streams_syslog.py): they start it as an
# unprivileged process on a free port with their own configuration, so only the binary is needed.
set -eu
sh "$(dirname "$0")/../apt-install.sh" rsyslog
