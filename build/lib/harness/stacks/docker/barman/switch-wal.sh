#!/bin/bash
# harness-switch-wal SERVER [TIMEOUT]: `barman switch-wal --force --archive SERVER`, fast on an idle
# server. pg_receivewal only closes a segment when WAL after the switch arrives, so while barman
# waits, a tiny WAL record is emitted every 0.5 s (an idle server otherwise takes ~15 s).
# Connects as the `barman` role with the host and port of the server's conninfo.
set -euo pipefail
server=${1:?usage: harness-switch-wal SERVER [TIMEOUT_SECONDS]}
timeout_s=${2:-60}

conninfo=$(barman show-servers "$server" | sed -n 's/^[[:space:]]*conninfo: //p' | head -n1)
[ -n "$conninfo" ] || { echo "harness-switch-wal: no conninfo for server $server" >&2; exit 2; }

( while sleep 0.5; do
    psql -X -q -d "$conninfo" -c "select pg_logical_emit_message(false, 'harness', 'tick')" >/dev/null 2>&1 || true
  done ) &
ticker=$!
trap 'kill "$ticker" 2>/dev/null || true' EXIT
barman switch-wal --force --archive --archive-timeout "$timeout_s" "$server"
