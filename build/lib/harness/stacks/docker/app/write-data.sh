#!/bin/bash
# write-data N [--batch-size B] [--seed S] [--dsn DSN]: the harness's writer, harness/drill/write_data.py,
# mounted read-only at /opt/writer/harness. For `docker compose exec app write-data ...`, which
# does not go through the entrypoint, PGPASSWORD is taken from POSTGRES_PASSWORD(_FILE) here too.
set -euo pipefail
if [ -z "${PGPASSWORD:-}" ]; then
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    export PGPASSWORD=$POSTGRES_PASSWORD
  elif [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    PGPASSWORD=$(tr -d '\n' <"$POSTGRES_PASSWORD_FILE"); export PGPASSWORD
  fi
fi
[ -f /opt/writer/harness/drill/write_data.py ] || {
  echo "write-data: /opt/writer/harness/drill/write_data.py missing: mount the repository's harness/ there (read-only)" >&2
  exit 1
}
exec python -m harness.drill.write_data "$@"
