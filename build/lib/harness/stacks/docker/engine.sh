#!/usr/bin/env bash
# Makes sure a Docker engine answers (idempotent, no stdin needed, safe in CI).
#   docker/engine.sh [--log PATH] [--timeout SECONDS]
# - `docker info` answers: nothing to do, exit 0.
# - not root and no engine: explain, exit 3.
# - root: apt-get install docker.io docker-compose if missing, start `dockerd` in the
#   background (own session, log kept), wait until `docker info` answers or the deadline.
# Exit codes: 0 engine answers, 1 engine did not come up (log tail printed), 2 install failed,
# 3 no engine and not root, 64 bad usage.
# Environment: DOCKERD_LOG (default /var/log/dockerd-harness.log), ENGINE_TIMEOUT (default 60).
set -euo pipefail

log_file=${DOCKERD_LOG:-/var/log/dockerd-harness.log}
timeout_s=${ENGINE_TIMEOUT:-60}
while [ $# -gt 0 ]; do
  case "$1" in
    --log) log_file=${2:?--log needs a path}; shift 2 ;;
    --timeout) timeout_s=${2:?--timeout needs seconds}; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "engine.sh: unknown argument: $1" >&2; exit 64 ;;
  esac
done

say() { printf '[engine] %s\n' "$*"; }
started=$(date +%s.%N)
elapsed() { awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

# `docker info` can hang on a half-started daemon: always bound it.
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  say "engine already answers ($(timeout 10 docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  cat >&2 <<EOF
[engine] ERROR: no Docker engine answers (\`docker info\` failed) and this user is not root,
[engine] so it cannot be installed or started here. Either start one yourself
[engine] (as root: docker/engine.sh, or: apt-get install -y docker.io docker-compose && dockerd &),
[engine] or point DOCKER_HOST at an engine you may use.
EOF
  exit 3
fi

# Debian's engine and compose v1 (Debian 12 packages no compose v2).
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() { apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >>"$log_file.apt" 2>&1; }
  if ! apt_install; then
    apt-get update -q </dev/null >>"$log_file.apt" 2>&1 || true
    apt_install || { echo "[engine] ERROR: apt-get could not install ${missing[*]}; see $log_file.apt" >&2; exit 2; }
  fi
  say "installed ${missing[*]} in $(elapsed) s"
fi

# A dockerd may already be starting (another run, or the package's init script): wait for it
# rather than start a second one on the same socket.
pid=""
if [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  pid=$(cat /var/run/docker.pid)
  say "dockerd (pid $pid) already running, waiting for it to answer"
else
  mkdir -p "$(dirname "$log_file")"
  say "starting dockerd, log: $log_file"
  # setsid: its own session, so the caller's Ctrl-C or end does not take the engine down.
  setsid dockerd >>"$log_file" 2>&1 </dev/null &
  pid=$!
fi

deadline=$(( $(date +%s) + timeout_s ))
until engine_answers; do
  if ! kill -0 "$pid" 2>/dev/null && ! pgrep -x dockerd >/dev/null; then
    echo "[engine] ERROR: dockerd exited before answering. Last lines of $log_file:" >&2
    tail -n 20 "$log_file" >&2 || true
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "[engine] ERROR: dockerd (pid $pid) did not answer \`docker info\` within ${timeout_s} s. Last lines of $log_file:" >&2
    tail -n 20 "$log_file" >&2 || true
    exit 1
  fi
  sleep 0.5
done
say "engine answers after $(elapsed) s (dockerd pid $pid, server $(timeout 10 docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
