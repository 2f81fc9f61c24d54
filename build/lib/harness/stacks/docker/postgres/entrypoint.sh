#!/bin/bash
# PostgreSQL container entrypoint.
#   primary  (default) initialise $PGDATA at first start, then run the source server in the foreground
#   scratch  run a server on a data dir Barman recovered ($RESTORE_DIR), ownership fixed first
#   anything else is executed as given (e.g. `bash`)
# Secrets, each from VAR or from the file named by VAR_FILE (compose secrets, a mounted file):
#   POSTGRES_PASSWORD          superuser `postgres` (the harness's own connections, the app)
#   BARMAN_PASSWORD            role `barman`, SUPERUSER (barman's conninfo)
#   STREAMING_BARMAN_PASSWORD  role `streaming_barman`, REPLICATION (barman's streaming_conninfo)
# First start also creates database books_db and loads /docker-entrypoint-initdb.d/*.sql into it.
set -euo pipefail

mode=${1:-primary}
[ $# -gt 0 ] && shift
PGDATA=${PGDATA:-/var/lib/postgresql/data}
RESTORE_DIR=${RESTORE_DIR:-/restore/data}
PGPORT_IN=${PGPORT_IN:-5432}

say() { printf '[pg-entrypoint] %s %s\n' "$(date -u +%H:%M:%S.%3N)" "$*" >&2; }
fail() { printf '[pg-entrypoint] ERROR: %s\n' "$*" >&2; exit 1; }

secret() {  # secret NAME: value of NAME, else contents of the file named by NAME_FILE
  local name=$1 file_var="${1}_FILE"
  if [ -n "${!name:-}" ]; then
    printf '%s' "${!name}"
  elif [ -n "${!file_var:-}" ]; then
    [ -r "${!file_var}" ] || fail "$file_var=${!file_var} is not readable"
    tr -d '\n' <"${!file_var}"
  fi
}

as_postgres() { exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

init_cluster() {
  local pw_postgres pw_barman pw_streaming
  pw_postgres=$(secret POSTGRES_PASSWORD)
  pw_barman=$(secret BARMAN_PASSWORD)
  pw_streaming=$(secret STREAMING_BARMAN_PASSWORD)
  [ -n "$pw_postgres" ] || fail "POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) is required for the first start"
  [ -n "$pw_barman" ] || fail "BARMAN_PASSWORD (or BARMAN_PASSWORD_FILE) is required for the first start"
  [ -n "$pw_streaming" ] || fail "STREAMING_BARMAN_PASSWORD (or STREAMING_BARMAN_PASSWORD_FILE) is required for the first start"

  say "initdb $PGDATA (data checksums, scram-sha-256)"
  local pwfile
  pwfile=$(mktemp)
  printf '%s\n' "$pw_postgres" >"$pwfile"
  initdb -D "$PGDATA" --username=postgres --pwfile="$pwfile" --data-checksums \
    --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  say "initdb done"

  cat >>"$PGDATA/postgresql.conf" <<'EOF'

# --- harness (docker/postgres/entrypoint.sh) ---
listen_addresses = '*'
port = 5432
password_encryption = scram-sha-256
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
track_commit_timestamp = on
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] '
log_destination = 'stderr'
logging_collector = off
EOF
  # Everything on the compose network (samenet: the subnets of this container's interfaces,
  # which includes the gateway that published 127.0.0.1 ports come through) with a password.
  cat >"$PGDATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE     USER              ADDRESS   METHOD
local   all          all                         peer
host    all          all               samenet   scram-sha-256
host    replication  streaming_barman  samenet   scram-sha-256
host    all          all               127.0.0.1/32  scram-sha-256
host    replication  all               127.0.0.1/32  scram-sha-256
EOF

  # A private server on a unix socket only: nothing outside sees it (the TCP healthcheck stays red).
  local sock
  sock=$(mktemp -d)
  pg_ctl -D "$PGDATA" -w -t 60 -l "$sock/init.log" \
    -o "-c listen_addresses='' -c unix_socket_directories='$sock'" start >/dev/null \
    || { cat "$sock/init.log" >&2; fail "the initialising server did not start"; }
  local psql=(psql -v ON_ERROR_STOP=1 -X -q -h "$sock" -U postgres)
  # Passwords go through psql variables (:'var' quotes them), never into a command line.
  "${psql[@]}" -d postgres -v pw_barman="$pw_barman" -v pw_streaming="$pw_streaming" <<'SQL'
CREATE ROLE barman LOGIN SUPERUSER PASSWORD :'pw_barman';
CREATE ROLE streaming_barman LOGIN REPLICATION PASSWORD :'pw_streaming';
CREATE DATABASE books_db;
SQL
  local f
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$f" ] || continue
    say "loading $f into books_db"
    "${psql[@]}" -d books_db -f "$f"
  done
  pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  rm -rf "$sock"
  say "cluster initialised"
}

case "$mode" in
  primary)
    if [ "$(id -u)" -eq 0 ]; then
      mkdir -p "$PGDATA"
      [ "$(stat -c %U "$PGDATA")" = postgres ] || chown -R postgres:postgres "$PGDATA"
      chmod 700 "$PGDATA"
      as_postgres "$0" primary "$@"
    fi
    [ -s "$PGDATA/PG_VERSION" ] || init_cluster
    say "starting the source server on $PGDATA"
    exec postgres -D "$PGDATA" "$@"
    ;;
  scratch)
    [ -s "$RESTORE_DIR/PG_VERSION" ] \
      || fail "no recovered data dir at $RESTORE_DIR (run \`barman recover ... $RESTORE_DIR\` in the barman service first)"
    if [ "$(id -u)" -eq 0 ]; then
      # Barman (barman_user = root) wrote the files as root: the server's user must own them.
      chown -R postgres:postgres "$RESTORE_DIR"
      chmod 700 "$RESTORE_DIR"
      as_postgres "$0" scratch "$@"
    fi
    rm -f "$RESTORE_DIR/postmaster.pid"
    say "starting the scratch server on $RESTORE_DIR"
    # The restored postgresql.conf is the source's: port and archiving are overridden here.
    exec postgres -D "$RESTORE_DIR" -c port="$PGPORT_IN" -c listen_addresses='*' -c archive_mode=off "$@"
    ;;
  *)
    exec "$mode" "$@"
    ;;
esac
