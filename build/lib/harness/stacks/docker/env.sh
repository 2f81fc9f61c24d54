#!/usr/bin/env bash
# Writes docker/.env with random passwords for a manual run, unless it exists (never committed).
#   docker/env.sh [--force]
# docker-compose v1 and v2 read .env from the compose file's directory for ${VAR} substitution;
# variables set in the calling environment win over it (that is how the harness passes its own).
set -euo pipefail
cd "$(dirname "$0")"
if [ -f .env ] && [ "${1:-}" != "--force" ]; then
  echo "[env] docker/.env exists (use --force to regenerate; the volumes keep the old passwords)" >&2
  exit 0
fi
pw() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
cat >.env <<EOT
POSTGRES_PASSWORD=$(pw)
BARMAN_PASSWORD=$(pw)
STREAMING_BARMAN_PASSWORD=$(pw)
# Empty: the engine picks free ports on 127.0.0.1 (see: docker-compose port postgres 5432).
POSTGRES_PORT=
SCRATCH_PORT=
# What the services mount from the harness package: the schema, and the writer's code.
INIT_SQL=$(realpath ../../drill/init.sql)
HARNESS_PACKAGE=$(realpath ../..)
EOT
echo "[env] wrote docker/.env (mode 600)" >&2
