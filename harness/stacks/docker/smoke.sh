#!/usr/bin/env bash
# The manual drill on the compose stack, timed, start to finish, then everything removed:
# up, barman check, backup, rows written, a target time taken on the server, more rows,
# recover --target-time into the restore volume, scratch started on it, rows counted.
#   docker/smoke.sh [--keep]      (--keep: leave the stack up for a look; `down -v` it yourself)
# Needs: an engine (engine.sh) and built images (build.sh). Project name: $PROJECT (default
# harnesstest). Passwords: from the environment, else docker/.env (env.sh writes one).
# Exit 0 when the scratch instance holds exactly the rows committed before the target.
set -euo pipefail
cd "$(dirname "$0")"

keep=0
[ "${1:-}" = "--keep" ] && keep=1
project=${PROJECT:-harnesstest}
if [ -n "${COMPOSE:-}" ]; then read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then compose=(docker compose)
else compose=(docker-compose); fi
# What the services mount from the harness package (docker/.env may predate these).
export INIT_SQL=${INIT_SQL:-$(realpath ../../drill/init.sql)} HARNESS_PACKAGE=${HARNESS_PACKAGE:-$(realpath ../..)}
dc=("${compose[@]}" -p "$project" -f compose.yaml --profile scratch)
[ -n "${POSTGRES_PASSWORD:-}" ] || [ -f .env ] || ./env.sh

t0=$(date +%s.%N)
now() { awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN { printf "%6.1f", e - s }'; }
step() { printf '[smoke %s s] %s\n' "$(now)" "$*" >&2; }
cleanup() {
  local rc=$?
  if [ "$keep" -eq 1 ] && [ "$rc" -eq 0 ]; then
    step "kept: ${dc[*]} down -v --remove-orphans"
    return
  fi
  [ "$rc" -eq 0 ] || { "${dc[@]}" ps >&2 || true; "${dc[@]}" logs --no-color --tail 30 >&2 || true; }
  step "down -v --remove-orphans"
  "${dc[@]}" down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
  local left
  left=$(docker ps -aq --filter "label=com.docker.compose.project=$project"; \
         docker volume ls -q --filter "label=com.docker.compose.project=$project"; \
         docker network ls -q --filter "label=com.docker.compose.project=$project")
  [ -z "$left" ] || { step "LEFT BEHIND: $left"; rc=1; }
  step "down done, nothing of project $project left (rc $rc)"
  exit "$rc"
}
trap cleanup EXIT

cid() { "${dc[@]}" ps -q "$1"; }
# `docker exec` on the container id: docker-compose v1's own exec costs ~1.5 s of start-up each.
in_barman() { docker exec "$barman" "$@"; }
sql() { docker exec -u postgres "$postgres" psql -X -At -d books_db -c "$1"; }
sql_scratch() { docker exec -u postgres "$scratch" psql -X -At -d books_db -c "$1"; }
wait_healthy() {  # wait_healthy SERVICE SECONDS
  local c deadline=$(( SECONDS + $2 )) state
  c=$(cid "$1")
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$c")" = healthy ]; do
    state=$(docker inspect -f '{{.State.Status}}' "$c")
    if [ "$state" != running ] || [ "$SECONDS" -ge "$deadline" ]; then
      step "$1 not healthy after $2 s (state $state); its last log lines:"
      docker logs --tail 30 "$c" >&2
      return 1
    fi
    sleep 0.5
  done
}

step "up -d"
"${dc[@]}" up -d postgres barman app
postgres=$(cid postgres); barman=$(cid barman)
wait_healthy barman 90
step "barman healthy (entrypoint made the slot, started receive-wal, archived a WAL)"
in_barman barman check pg >/dev/null
step "up -> barman check pg all OK"
# The familiar manual steps (the entrypoint did them already: the slot exists, rc 1 expected).
in_barman barman receive-wal --create-slot pg 2>&1 | sed 's/^/    /' || true
in_barman barman switch-wal --force --archive pg | sed 's/^/    /'
step "switch-wal --force --archive done (plain: slow on an idle server)"
in_barman barman check pg | sed 's/^/    /'
step "barman check all OK"
in_barman barman backup pg | sed 's/^/    /'
backup_id=$(in_barman barman -f json list-backups pg | python3 -c 'import json,sys; print(json.load(sys.stdin)["pg"][0]["backup_id"])')
step "backup $backup_id done"
in_barman barman list-backup pg | sed 's/^/    /'
in_barman barman replication-status pg | sed 's/^/    /'

"${dc[@]}" exec -T app write-data 1000 --batch-size 100 | sed 's/^/    /'
# The target: taken on the server after the commit, with an explicit offset.
target=$(sql "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00:00'")
expected=$(sql "select count(*) from books")
sleep 0.2
"${dc[@]}" exec -T app write-data 500 --batch-size 500 --seed 1 | sed 's/^/    /'
step "rows: $expected before target $target, $(sql 'select count(*) from books') now"
in_barman harness-switch-wal pg | sed 's/^/    /'
step "WAL after the target archived"

in_barman rm -rf /restore/data
in_barman barman recover --target-time "$target" --target-action promote pg "$backup_id" /restore/data | sed 's/^/    /'
step "recovered into the restore volume"
"${dc[@]}" up -d scratch
scratch=$(cid scratch)
wait_healthy scratch 60
deadline=$(( SECONDS + 60 ))
until [ "$(sql_scratch 'select pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  [ "$SECONDS" -lt "$deadline" ] || { docker logs --tail 30 "$scratch" >&2; step "scratch never promoted"; exit 1; }
  sleep 0.2
done
got=$(sql_scratch "select count(*) from books")
docker logs "$scratch" 2>&1 | grep -E 'recovery stopping|selected new timeline|archive recovery complete' | sed 's/^/    /'
step "scratch promoted: $got rows (expected $expected)"
[ "$got" = "$expected" ] || { step "MISMATCH"; exit 1; }
step "OK; scratch port on the host: $("${dc[@]}" port scratch 5432)"
