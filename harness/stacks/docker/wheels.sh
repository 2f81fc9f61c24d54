#!/usr/bin/env bash
# Downloads, on the host, the wheels the images install with `pip install --no-index`:
# containers here cannot use PyPI (its certificate is trusted on the host only).
#   docker/wheels.sh [--force]
#   docker/wheels/barman/  barman (installed --no-deps), python-dateutil, six, psycopg2-binary
#   docker/wheels/app/     psycopg[binary], faker and their dependencies
#   docker/wheels/harness/ what the harness itself imports at run time (barman image: `--stack existing`
#                          on its own Barman), with their dependencies
# Wheels are for the images' Python (Debian 12: CPython 3.11, glibc 2.36) on this machine's
# architecture, whatever Python runs this script. Skips a set whose stamp is newer than this
# script unless --force. Environment: PIP (default: python3 -m pip, else ../.venv/bin/pip).
#
# Why psycopg2-binary: barman declares `psycopg2`, whose only distribution is an sdist that
# needs gcc, libpq-dev and python3-dev in the image. psycopg2-binary installs the same `psycopg2`
# module from a wheel; barman is installed with --no-deps next to it, so no compiler is needed.
set -euo pipefail
cd "$(dirname "$0")"

force=0
[ "${1:-}" = "--force" ] && force=1

say() { printf '[wheels] %s\n' "$*" >&2; }
# Any pip will do (wheels are chosen by the target tags below): $PIP, python3's, else the repo's .venv.
if [ -n "${PIP:-}" ]; then read -r -a pip_cmd <<<"$PIP"
elif python3 -m pip --version >/dev/null 2>&1; then pip_cmd=(python3 -m pip)
elif [ -x ../.venv/bin/pip ]; then pip_cmd=(../.venv/bin/pip)
else echo "[wheels] ERROR: no pip: apt-get install -y python3-pip, or run ./setup.sh --no-drill" >&2; exit 2; fi
arch=$(uname -m)
# The images' interpreter and libc (glibc 2.36): every manylinux tag up to 2_36, spelled out
# because older pips do not widen a --platform to the tags below it.
target=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none)
for minor in $(seq 36 -1 17); do target+=(--platform "manylinux_2_${minor}_${arch}"); done
target+=(--platform "manylinux2014_${arch}" --platform "manylinux2010_${arch}" --platform "manylinux1_${arch}"
         --platform any)

BARMAN_SPEC=${BARMAN_SPEC:-barman>=3.19,<4}
barman_deps=("python-dateutil" "six" "psycopg2-binary>=2.9,<3")
app_reqs=("psycopg[binary]>=3.1,<4" "faker>=25")
# pyproject.toml's dependencies but barman (the image has its own, in its own venv)
harness_reqs=("psycopg[binary]>=3.1,<4" "pytest>=8,<10" "pytest-docker>=3,<4" "hypothesis>=6.100,<7"
              "tenacity>=8.2,<10" "faker>=25" "jinja2>=3.1,<4" "prometheus_client>=0.20,<1")

download() {  # download DIR ARGS...
  local dir=$1; shift
  # (this machine's pip.conf names index dirs that may not exist: silence those warnings only)
  "${pip_cmd[@]}" download --quiet --disable-pip-version-check --dest "$dir" "${target[@]}" "$@" \
    2> >(grep -v 'is ignored: it is neither' >&2)
}

fetch_set() {  # fetch_set NAME FUNCTION: wheels/NAME filled by FUNCTION DIR, replaced whole
  local fn=$2 dir=wheels/$1
  if [ "$force" -eq 0 ] && [ -f "$dir/.complete" ] && [ "$dir/.complete" -nt "$0" ]; then
    say "$dir up to date ($(ls "$dir"/*.whl | wc -l) wheels)"
    return
  fi
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  "$fn" "$dir.tmp"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  touch "$dir/.complete"
  say "$dir: $(cd "$dir" && ls *.whl | tr '\n' ' ')"
}

barman_set() {
  download "$1" --no-deps "$BARMAN_SPEC"
  download "$1" "${barman_deps[@]}"
}
app_set() { download "$1" "${app_reqs[@]}"; }
harness_set() { download "$1" "${harness_reqs[@]}"; }

started=$(date +%s)
fetch_set barman barman_set
fetch_set app app_set
fetch_set harness harness_set
say "done in $(( $(date +%s) - started )) s"
