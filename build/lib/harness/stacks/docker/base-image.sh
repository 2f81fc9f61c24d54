#!/usr/bin/env bash
# Chooses the base image the Dockerfiles build FROM, building one from Debian's packages when
# no image registry can be reached. Prints the chosen image name as the LAST line of stdout
# (progress goes to stderr), so a caller can do: BASE_IMAGE=$(docker/base-image.sh | tail -n1).
#   docker/base-image.sh            auto: $BASE_IMAGE if set, else debian:bookworm-slim if it is
#                                   local or can be pulled, else the local harness-debian:bookworm
#   docker/base-image.sh --local    always the local harness-debian:bookworm (built if missing)
#   docker/base-image.sh --rebuild  rebuild harness-debian:bookworm even if it exists
# Environment: BASE_IMAGE (use this image, pulled if missing), HARNESS_NO_REGISTRY=1 (do not
# try to pull), DEBIAN_MIRROR (default: the host's Debian mirror from /etc/apt).
# Exit codes: 0 ok, 1 build or pull failed, 2 not root when debootstrap must be installed, 64 usage.
set -euo pipefail

REGISTRY_BASE=debian:bookworm-slim
LOCAL_BASE=harness-debian:bookworm
mode=auto
rebuild=0
for arg in "$@"; do
  case "$arg" in
    --local) mode=local ;;
    --rebuild) mode=local; rebuild=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "base-image.sh: unknown argument: $arg" >&2; exit 64 ;;
  esac
done

say() { printf '[base-image] %s\n' "$*" >&2; }
fail() { printf '[base-image] ERROR: %s\n' "$*" >&2; exit "${2:-1}"; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
# No registry here fails in well under a second (DNS); the timeout bounds a slow or filtered one.
try_pull() { timeout "${PULL_TIMEOUT:-60}" docker pull -q "$1" >/dev/null 2>&1; }

if [ "$mode" = auto ]; then
  if [ -n "${BASE_IMAGE:-}" ]; then
    if image_exists "$BASE_IMAGE" || { [ "$BASE_IMAGE" != "$LOCAL_BASE" ] && try_pull "$BASE_IMAGE"; }; then
      echo "$BASE_IMAGE"; exit 0
    fi
    [ "$BASE_IMAGE" = "$LOCAL_BASE" ] || fail "BASE_IMAGE=$BASE_IMAGE is not local and could not be pulled"
  elif image_exists "$REGISTRY_BASE"; then
    echo "$REGISTRY_BASE"; exit 0
  elif [ "${HARNESS_NO_REGISTRY:-0}" != 1 ] && try_pull "$REGISTRY_BASE"; then
    say "pulled $REGISTRY_BASE"
    echo "$REGISTRY_BASE"; exit 0
  else
    say "$REGISTRY_BASE cannot be pulled: using the local $LOCAL_BASE built from Debian's packages"
  fi
fi

if image_exists "$LOCAL_BASE" && [ "$rebuild" -eq 0 ]; then
  say "$LOCAL_BASE exists"
  echo "$LOCAL_BASE"; exit 0
fi

# The host's Debian mirror: deb822 (.sources) first, then one-line sources.list entries.
mirror_from_host() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    # The stanza whose Suites include plain "bookworm" (not -security / -updates only).
    awk 'BEGIN { RS=""; FS="\n" }
         /(^|\n)Suites:[^\n]*(^|[ \t])bookworm([ \t]|$|\n)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); print a[2]; exit }
         }' "$f"
  done | head -n1
}
mirror=${DEBIAN_MIRROR:-$(mirror_from_host)}
if [ -z "$mirror" ]; then
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '$1 == "deb" && $3 == "bookworm" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; exit } }')
fi
mirror=${mirror:-http://deb.debian.org/debian}

if ! command -v debootstrap >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || fail "debootstrap is missing and this user is not root: apt-get install -y debootstrap" 2
  say "installing debootstrap (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q debootstrap </dev/null >/dev/null 2>&1 \
    || { apt-get update -q </dev/null >/dev/null 2>&1; apt-get install -y -q debootstrap </dev/null >/dev/null; } \
    || fail "apt-get could not install debootstrap" 2
fi
[ "$(id -u)" -eq 0 ] || fail "debootstrap needs root" 2

started=$(date +%s)
rootfs=$(mktemp -d /var/tmp/harness-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
say "debootstrap --variant=minbase bookworm from $mirror (about 35 s)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
  || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; fail "debootstrap failed"; }
rm -f "$rootfs.log"

# Same apt sources as the host's Debian entries (updates, security) when it has them in deb822.
if [ -f /etc/apt/sources.list.d/debian.sources ] && [ -z "${DEBIAN_MIRROR:-}" ]; then
  cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/debian.sources"
  rm -f "$rootfs/etc/apt/sources.list"
fi
# Slim like debian:bookworm-slim: no docs or man pages from later installs, no apt caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/harness-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90harness"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log

say "docker import $LOCAL_BASE"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  - "$LOCAL_BASE" >/dev/null || fail "docker import failed"
say "built $LOCAL_BASE in $(( $(date +%s) - started )) s ($(docker image inspect -f '{{.Size}}' "$LOCAL_BASE" | awk '{ printf "%d MB", $1 / 1e6 }'))"
echo "$LOCAL_BASE"
