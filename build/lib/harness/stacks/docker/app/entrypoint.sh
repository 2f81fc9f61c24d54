#!/bin/bash
# The writer's entrypoint.
#   (no arguments)   write $WRITER_ROWS rows (default 0) in batches of $WRITER_BATCH_SIZE, then stay
#                    up idle, so `docker compose exec app write-data N ...` can write more
#   write-data N [--batch-size B] [--seed S]   write once, then exit (`docker compose run --rm app ...`)
#   N [--batch-size B] ...                     the same
#   anything else    executed as given
# Connects with libpq's variables PGHOST, PGPORT, PGUSER, PGDATABASE (set by the compose file);
# the password comes from POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), see write-data.
set -euo pipefail

case "${1:-}" in
  "")
    # PID 1 ignores signals it has no handler for: without this `docker stop` waits for its timeout.
    trap 'exit 0' TERM INT
    if [ "${WRITER_ROWS:-0}" -gt 0 ]; then
      write-data "$WRITER_ROWS" --batch-size "${WRITER_BATCH_SIZE:-1000}"
    fi
    # idle until stopped; `wait` returns at once when the trapped signal arrives
    sleep infinity & wait $!
    ;;
  write-data) shift; exec write-data "$@" ;;
  [0-9]*) exec write-data "$@" ;;
  *) exec "$@" ;;
esac
