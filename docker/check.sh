#!/usr/bin/env bash
# Builds the image and proves it fails closed: started unconfigured it refuses (exit 2, one line
# naming what is missing); configured but not migrated it refuses; after `db upgrade` it starts
# and answers a signed hook call with cards (and the replayed token with 401). Prints the builder,
# the runtime, the image size and the user it runs as.
#
# Builder: Docker where an engine answers, else buildah. Runtime: docker, else podman, else
# `buildah run`. The base image is the Dockerfile's default (python:3.11-slim) where it is present
# or can be pulled; else a Debian bookworm base made here with debootstrap (python3 3.11,
# python3-venv) and kept as localhost/lumbar-cds-base:bookworm for the next run.
# Environment: BASE_IMAGE (skip the choice), CDS_CHECK_RUNTIME (docker|podman|buildah),
# CDS_CHECK_PYTHON (the client's interpreter, default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=localhost/lumbar-imaging-cds:check
DEFAULT_BASE=python:3.11-slim
LOCAL_BASE=localhost/lumbar-cds-base:bookworm
PY=${CDS_CHECK_PYTHON:-.venv/bin/python}
NAME=lumbar-cds-check-$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lumbar-cds-check.XXXXXX")
SERVER_PID=""
BUILDAH_CTR=""
STARTED=$(date +%s)

say() { printf 'check: [%4d s] %s\n' "$(($(date +%s) - STARTED))" "$*"; }
fail() {
  printf 'check: FAILED: %s\n' "$*" >&2
  exit 1
}

cleanup() {
  case "${RUNTIME:-}" in
    docker | podman) "${RT[@]}" rm -f "$NAME" >/dev/null 2>&1 || true ;;
  esac
  if [ -n "$SERVER_PID" ]; then
    # gunicorn's workers outlive a stopped `buildah run` by their graceful timeout: bounded.
    kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do
      kill -0 -- "-$SERVER_PID" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$BUILDAH_CTR" ]; then buildah rm "$BUILDAH_CTR" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$PY" ] || fail "no client interpreter at $PY (run make install first, or set CDS_CHECK_PYTHON)"

# --- builder -------------------------------------------------------------------------------
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  BUILDER=docker
elif command -v buildah >/dev/null 2>&1; then
  BUILDER=buildah
else
  fail "neither a Docker engine nor buildah is available (apt-get install buildah podman runc)"
fi

image_exists() {
  if [ "$BUILDER" = docker ]; then
    docker image inspect "$1" >/dev/null 2>&1
  else
    buildah inspect --type image "$1" >/dev/null 2>&1
  fi
}

pull() {
  if [ "$BUILDER" = docker ]; then
    timeout 120 docker pull -q "$1" >/dev/null 2>&1
  else
    timeout 120 buildah pull -q "$1" >/dev/null 2>&1
  fi
}

# The Debian mirror apt already uses on this machine (no registry needed, only packages).
debian_mirror() {
  local mirror
  mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list 2>/dev/null | grep -v security | head -n1 |
    sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//; s/[[:space:]].*$//')
  [ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list*"
  printf '%s' "$mirror"
}

build_local_base() {
  command -v debootstrap >/dev/null 2>&1 || fail "debootstrap is missing (apt-get install debootstrap)"
  local root="$WORK/rootfs"
  say "no base image reachable: making $LOCAL_BASE with debootstrap (Debian bookworm)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$(debian_mirror)" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
  # What an image never needs: package lists and caches, documentation.
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
  if [ "$BUILDER" = docker ]; then
    tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
  else
    local ctr mnt
    ctr=$(buildah from scratch)
    mnt=$(buildah mount "$ctr")
    tar -C "$root" -c . | tar -C "$mnt" -x
    buildah umount "$ctr" >/dev/null
    buildah config --cmd /bin/bash \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    buildah commit --rm -q "$ctr" "$LOCAL_BASE" >/dev/null
  fi
  rm -rf "$root"
}

if [ -n "${BASE_IMAGE:-}" ]; then
  BASE=$BASE_IMAGE
elif image_exists "$DEFAULT_BASE"; then
  BASE=$DEFAULT_BASE
elif image_exists "$LOCAL_BASE"; then
  BASE=$LOCAL_BASE
  say "using the cached local base $LOCAL_BASE"
elif pull "$DEFAULT_BASE"; then
  BASE=$DEFAULT_BASE
else
  build_local_base
  BASE=$LOCAL_BASE
fi

# --- build -----------------------------------------------------------------------------------
say "building $IMAGE with $BUILDER on $BASE"
BUILD_STARTED=$(date +%s)
# This machine's CA bundle (a TLS-inspecting proxy's CA may be in it) for pip's downloads in
# the build, as a secret: the image never holds it.
BUILD_CA=${CDS_BUILD_CA:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
SECRET=()
[ ! -s "$BUILD_CA" ] || SECRET=(--secret "id=build-ca,src=$BUILD_CA")
if [ "$BUILDER" = docker ]; then
  DOCKER_BUILDKIT=1 docker build -q "${SECRET[@]}" --build-arg "BASE_IMAGE=$BASE" -t "$IMAGE" . \
    >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "docker build"; }
else
  # chroot isolation: no nested namespaces needed, so it builds inside a sandbox too.
  buildah build --isolation chroot --layers "${SECRET[@]}" --build-arg "BASE_IMAGE=$BASE" \
    -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; fail "buildah build"; }
fi
say "built in $(($(date +%s) - BUILD_STARTED)) s"

# --- runtime ---------------------------------------------------------------------------------
# podman in a sandbox: the default open-files and process limits cannot be raised there, and
# crun refuses a hybrid cgroup layout that runc accepts, so runc is tried when crun fails.
LIMITS=(--ulimit nofile=8192:8192 --ulimit nproc=8192:8192)
podman_works() {
  "$@" run --rm --network host "${LIMITS[@]}" --entrypoint /bin/true "$IMAGE" >/dev/null 2>&1
}
RUNTIME=${CDS_CHECK_RUNTIME:-}
if [ -z "$RUNTIME" ]; then
  if [ "$BUILDER" = docker ]; then
    RUNTIME=docker
  elif command -v podman >/dev/null 2>&1; then
    RUNTIME=buildah
    for candidate in "podman" "podman --runtime runc"; do
      # shellcheck disable=SC2086 # the candidate is a command with its options
      if podman_works $candidate; then
        RUNTIME=podman
        read -r -a RT <<<"$candidate"
        break
      fi
    done
  else
    RUNTIME=buildah
  fi
fi
case "$RUNTIME" in
  docker) RT=(docker) RUN_OPTS=(--network host) ;;
  podman)
    [ -n "${RT+x}" ] || RT=(podman)
    RUN_OPTS=(--network host "${LIMITS[@]}")
    ;;
  buildah) RT=() RUN_OPTS=() ;;
  *) fail "CDS_CHECK_RUNTIME must be docker, podman or buildah" ;;
esac
say "running it with ${RT[*]:-buildah run}"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PUBLIC=https://cds.check.test
mkdir -p "$WORK/etc" "$WORK/var"
chown 10001:10001 "$WORK/var"
chmod 755 "$WORK" "$WORK/etc"
# The service listens on loopback only: the container shares the host's network.
BASE_ENV=(CDS_HOST=127.0.0.1 "CDS_PORT=$PORT" CDS_WORKERS=2)
CONFIGURED=(
  "${BASE_ENV[@]}"
  CDS_TRUSTED_ISSUERS=/etc/lumbar-cds/issuers.yaml
  "CDS_PSEUDONYM_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  "CDS_PUBLIC_BASE_URL=$PUBLIC"
  CDS_FHIR_SERVER_ALLOWLIST=https://fhir.check.test
)
# The volume first: `buildah run` (1.28, chroot) mounts /app/var from elsewhere when it follows
# a read-only mount.
MOUNTS=(-v "$WORK/var:/app/var" -v "$WORK/etc:/etc/lumbar-cds:ro")

env_args() {
  local pair
  for pair in "$@"; do printf -- '-e\0%s\0' "$pair"; done
}

# run_once OUT ENV... -- ARGS...: the image's `cds-service ARGS` (default: serve) in the
# foreground; its exit code.
run_once() {
  local out=$1 envs=() rc=0
  shift
  while [ "$1" != "--" ]; do
    envs+=("$1")
    shift
  done
  shift
  local eargs=()
  [ "${#envs[@]}" -eq 0 ] || mapfile -d '' eargs < <(env_args "${envs[@]}")
  if [ "$RUNTIME" = buildah ]; then
    local ctr
    [ "$#" -gt 0 ] || set -- serve
    ctr=$(buildah from -q "$IMAGE")
    buildah run --isolation chroot "${eargs[@]}" "${MOUNTS[@]}" "$ctr" \
      cds-service "$@" >"$out.raw" 2>&1 || rc=$?
    buildah rm "$ctr" >/dev/null
    # buildah's own report of the exit status is not the container's output.
    grep -vE '^(subprocess exited with status [0-9]+|Error: exit status [0-9]+)$' "$out.raw" \
      >"$out" || true
  else
    "${RT[@]}" run --rm "${RUN_OPTS[@]}" "${eargs[@]}" "${MOUNTS[@]}" "$IMAGE" "$@" \
      >"$out" 2>&1 || rc=$?
  fi
  return "$rc"
}

expect_refusal() {
  local what=$1 out=$2 rc=0
  shift 2
  run_once "$out" "$@" -- || rc=$?
  [ "$rc" -eq 2 ] || { cat "$out" >&2; fail "$what: exit $rc, expected 2"; }
  ! grep -q Traceback "$out" || { cat "$out" >&2; fail "$what: a traceback"; }
  [ "$(grep -c . "$out")" -eq 1 ] || { cat "$out" >&2; fail "$what: more than one line"; }
  say "$what: exit $rc: $(cat "$out")"
}

"$PY" docker/check_client.py issuer "$WORK/etc"
chmod 644 "$WORK/etc/issuers.yaml"

# --- 1. unconfigured: refuses, naming each missing setting -----------------------------------
expect_refusal "unconfigured" "$WORK/unconfigured.txt" "${BASE_ENV[@]}"
for name in CDS_TRUSTED_ISSUERS CDS_PSEUDONYM_KEY CDS_PUBLIC_BASE_URL; do
  grep -q "$name" "$WORK/unconfigured.txt" || fail "the refusal does not name $name"
done

# --- 2. configured, schema not migrated: refuses ---------------------------------------------
expect_refusal "configured, not migrated" "$WORK/unmigrated.txt" "${CONFIGURED[@]}"
grep -q "db upgrade" "$WORK/unmigrated.txt" || fail "the refusal does not say to run db upgrade"

# --- 3. the migration step -------------------------------------------------------------------
run_once "$WORK/upgrade.txt" "${CONFIGURED[@]}" -- db upgrade ||
  { cat "$WORK/upgrade.txt" >&2; fail "db upgrade"; }
[ -s "$WORK/var/cds.db" ] || fail "db upgrade wrote no audit database into the volume"
say "db upgrade: $(tail -n1 "$WORK/upgrade.txt")"

# --- 4. configured: serves a signed hook call ------------------------------------------------
mapfile -d '' CONFIGURED_ARGS < <(env_args "${CONFIGURED[@]}")
if [ "$RUNTIME" = buildah ]; then
  BUILDAH_CTR=$(buildah from -q "$IMAGE")
  # A session of its own, so that stopping it stops gunicorn's master and workers too.
  setsid buildah run --isolation chroot "${CONFIGURED_ARGS[@]}" "${MOUNTS[@]}" "$BUILDAH_CTR" \
    cds-service serve >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
else
  "${RT[@]}" run -d --name "$NAME" "${RUN_OPTS[@]}" "${CONFIGURED_ARGS[@]}" "${MOUNTS[@]}" \
    "$IMAGE" >/dev/null
fi
URL=http://127.0.0.1:$PORT
server_running() {
  if [ "$RUNTIME" = buildah ]; then
    kill -0 "$SERVER_PID" 2>/dev/null
  else
    [ "$("${RT[@]}" inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]
  fi
}
HEALTHY='import sys, requests; sys.exit(requests.get(sys.argv[1], timeout=2).status_code != 200)'
for _ in $(seq 1 120); do
  ! "$PY" -c "$HEALTHY" "$URL/healthz" 2>/dev/null || break
  server_running || break
  sleep 0.5
done
server_log() {
  if [ "$RUNTIME" = buildah ]; then cat "$WORK/server.log"; else "${RT[@]}" logs "$NAME" 2>&1; fi
}
"$PY" -c "$HEALTHY" "$URL/healthz" 2>/dev/null ||
  { server_log | tail -30 >&2; fail "the configured image did not answer /healthz"; }
say "configured: listening on $URL (public base URL $PUBLIC)"
"$PY" docker/check_client.py call "$URL" "$PUBLIC" "$WORK/etc" ||
  { server_log | tail -30 >&2; fail "the signed hook call"; }
[ -s "$WORK/var/cds.db" ] || fail "no audit database in the volume (/app/var/cds.db)"

# --- 5. what it is ---------------------------------------------------------------------------
if [ "$RUNTIME" = buildah ]; then
  RUNS_AS=$(buildah run --isolation chroot "$BUILDAH_CTR" id)
else
  RUNS_AS=$("${RT[@]}" exec "$NAME" id)
fi
case "$RUNS_AS" in uid=0\(*) fail "the service runs as root: $RUNS_AS" ;; esac
# The CLI is on PATH inside the image (the migration step as an operator would type it).
if [ "$RUNTIME" = buildah ]; then
  CLI=$(buildah run --isolation chroot "${CONFIGURED_ARGS[@]}" "${MOUNTS[@]}" "$BUILDAH_CTR" \
    cds-service db upgrade) || fail "cds-service inside the image"
else
  CLI=$("${RT[@]}" exec "$NAME" cds-service db upgrade) || fail "cds-service inside the image"
fi
say "cds-service on PATH inside: $CLI"
if [ "$BUILDER" = docker ]; then
  SIZE=$(docker image inspect -f '{{.Size}}' "$IMAGE")
  USER_FIELD=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
else
  USER_FIELD=$(buildah inspect --type image -f '{{.OCIv1.Config.User}}' "$IMAGE")
  if command -v podman >/dev/null 2>&1; then
    SIZE=$(podman image inspect -f '{{.Size}}' "$IMAGE")
  else
    SIZE=$(buildah images --format '{{.Size}}' "$IMAGE")
  fi
fi
case "$SIZE" in *[!0-9]*) ;; *) SIZE="$(numfmt --to=si --suffix=B "$SIZE") ($SIZE bytes)" ;; esac
say "builder: $BUILDER; runtime: ${RT[*]:-buildah run}; base: $BASE"
say "image: $IMAGE, size $SIZE"
say "user: image USER $USER_FIELD; the running service: $RUNS_AS"
say "passed in $(($(date +%s) - STARTED)) s"
