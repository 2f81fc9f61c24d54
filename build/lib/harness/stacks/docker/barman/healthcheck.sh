#!/bin/bash
# Healthy = the entrypoint finished preparing and `barman check` is all OK for every server.
set -euo pipefail
[ -e /run/barman-ready ] || { echo "entrypoint still preparing"; exit 1; }
for server in ${BARMAN_SERVERS:-pg}; do
  barman check "$server" >/tmp/barman-check.out 2>&1 || { grep -v ': OK' /tmp/barman-check.out; exit 1; }
done
echo "barman check OK: ${BARMAN_SERVERS:-pg}"
