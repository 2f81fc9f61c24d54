#!/bin/bash
# Barman container entrypoint: gets the servers in $BARMAN_SERVERS ready for `barman check`,
# then runs Debian's cron (`barman cron` every minute) and stays in the foreground.
#   1. /root/.pgpass from BARMAN_PASSWORD / STREAMING_BARMAN_PASSWORD (or their *_FILE)
#   2. waits for PostgreSQL (PGHOST_SOURCE, default postgres) up to BARMAN_WAIT_TIMEOUT s
#   3. per server: `barman receive-wal --create-slot` if its slot is missing, `barman cron` once
#      (starts receive-wal now instead of at the next minute), and unless BARMAN_PREPARE=0
#      `barman switch-wal --force --archive` so that `barman check` passes
#   4. cron in the foreground; SIGTERM/SIGINT stop it and the WAL streamers.
# With arguments, runs them instead (e.g. `bash`, `barman list-backup pg`) after step 1.
set -euo pipefail

BARMAN_SERVERS=${BARMAN_SERVERS:-pg}
PGHOST_SOURCE=${PGHOST_SOURCE:-postgres}
PGPORT_SOURCE=${PGPORT_SOURCE:-5432}
BARMAN_WAIT_TIMEOUT=${BARMAN_WAIT_TIMEOUT:-120}
BARMAN_PREPARE=${BARMAN_PREPARE:-1}
READY_FILE=/run/barman-ready

say() { printf '[barman-entrypoint] %s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
fail() { printf '[barman-entrypoint] ERROR: %s\n' "$*" >&2; exit 1; }

secret() {  # secret NAME: value of NAME, else contents of the file named by NAME_FILE
  local name=$1 file_var="${1}_FILE"
  if [ -n "${!name:-}" ]; then
    printf '%s' "${!name}"
  elif [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || fail "$file_var=${!file_var} is not readable"
    tr -d '\n' <"${!file_var}"
  fi
}

pgpass_escape() { sed -e 's/\\/\\\\/g' -e 's/:/\\:/g'; }

write_pgpass() {
  local pw_barman pw_streaming
  pw_barman=$(secret BARMAN_PASSWORD)
  pw_streaming=$(secret STREAMING_BARMAN_PASSWORD)
  [ -n "$pw_barman" ] || fail "BARMAN_PASSWORD (or BARMAN_PASSWORD_FILE) is required"
  [ -n "$pw_streaming" ] || fail "STREAMING_BARMAN_PASSWORD (or STREAMING_BARMAN_PASSWORD_FILE) is required"
  umask 077
  {
    printf '*:*:*:barman:%s\n' "$(printf '%s' "$pw_barman" | pgpass_escape)"
    printf '*:*:*:streaming_barman:%s\n' "$(printf '%s' "$pw_streaming" | pgpass_escape)"
  } >/root/.pgpass
  umask 022
}

prepare_server() {
  local server=$1 out
  if ! out=$(barman receive-wal --create-slot "$server" 2>&1); then
    # an existing slot is the normal case after a container restart
    grep -qi 'already exists' <<<"$out" || { printf '%s\n' "$out" >&2; fail "could not create the slot of $server"; }
  fi
  barman -q cron >/dev/null 2>&1 || true
  if [ "$BARMAN_PREPARE" = 1 ]; then
    # (with WAL ticks: an idle server would make this take ~15 s)
    if ! harness-switch-wal "$server" 60 >/dev/null 2>&1; then
      say "switch-wal --archive $server did not finish: barman check may stay red until cron archives WAL"
    fi
  fi
}

# PID 1 ignores signals it has no handler for: make `docker stop` work during preparation too.
trap 'exit 143' TERM INT
write_pgpass
if [ $# -gt 0 ]; then
  exec "$@"
fi

rm -f "$READY_FILE"
say "waiting for PostgreSQL at $PGHOST_SOURCE:$PGPORT_SOURCE (up to ${BARMAN_WAIT_TIMEOUT} s)"
deadline=$(( SECONDS + BARMAN_WAIT_TIMEOUT ))
until pg_isready -q -h "$PGHOST_SOURCE" -p "$PGPORT_SOURCE" -t 2; do
  [ "$SECONDS" -lt "$deadline" ] || fail "PostgreSQL at $PGHOST_SOURCE:$PGPORT_SOURCE not ready after ${BARMAN_WAIT_TIMEOUT} s"
  sleep 0.5
done

for server in $BARMAN_SERVERS; do
  say "preparing $server"
  prepare_server "$server"
done
touch "$READY_FILE"
say "ready: $BARMAN_SERVERS"

if [ "${BARMAN_CRON:-1}" = 1 ]; then
  cron -f &
else
  say "cron disabled (BARMAN_CRON=0): receive-wal is not restarted automatically"
  sleep infinity &
fi
cron_pid=$!
stop() {
  say "stopping"
  kill "$cron_pid" 2>/dev/null || true
  for server in $BARMAN_SERVERS; do
    barman terminate-process "$server" receive-wal >/dev/null 2>&1 || true
  done
  exit 0
}
trap stop TERM INT
# `wait` returns when a trapped signal arrives, so the trap runs at once.
while kill -0 "$cron_pid" 2>/dev/null; do wait "$cron_pid" || true; done
fail "cron exited"
