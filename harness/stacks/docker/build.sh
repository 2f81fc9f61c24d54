#!/usr/bin/env bash
# Builds everything the compose stack needs, reusing what exists, and reports each step's time:
#   wheels (wheels.sh), base image (base-image.sh), images harness-{postgres,barman,app}:latest.
#   docker/build.sh [--no-cache]
# Prints `BASE_IMAGE=<image>` as its last line. Needs a running engine (docker/engine.sh).
# Environment: COMPOSE (compose command, default: `docker compose` if it works, else
# docker-compose), BASE_IMAGE and HARNESS_NO_REGISTRY (see base-image.sh).
set -euo pipefail
cd "$(dirname "$0")"

no_cache=()
[ "${1:-}" = "--no-cache" ] && no_cache=(--no-cache)

if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=(docker-compose)
fi

say() { printf '[build] %s\n' "$*" >&2; }
t0=$(date +%s)
./wheels.sh
t1=$(date +%s)
BASE_IMAGE=$(./base-image.sh | tail -n1)
export BASE_IMAGE
t2=$(date +%s)
# The compose file mounts these (not used by a build, but every compose command interpolates them).
export INIT_SQL=${INIT_SQL:-$(realpath ../../drill/init.sql)} HARNESS_PACKAGE=${HARNESS_PACKAGE:-$(realpath ../..)}
say "images FROM $BASE_IMAGE (${compose[*]} build)"
# v2 builds services in parallel by itself; v1 needs --parallel (about 50 s instead of 110 s here).
parallel=()
[ "${compose[0]}" = docker-compose ] && parallel=(--parallel)
# build only: the scratch service reuses harness-postgres; nothing is pulled.
"${compose[@]}" -f compose.yaml build "${parallel[@]}" "${no_cache[@]}" postgres barman app
t3=$(date +%s)
say "wheels $((t1 - t0)) s, base image $((t2 - t1)) s, images $((t3 - t2)) s, total $((t3 - t0)) s"
echo "BASE_IMAGE=$BASE_IMAGE"
