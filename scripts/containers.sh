#!/usr/bin/env bash
# Real containers without a registry: Docker engine from Debian, local images built from Debian packages
# (debootstrap), the Maven Kafka jars and a wheelhouse made on the host from uv.lock. Every image is tagged by
# the hash of its inputs, so a warm machine skips the rebuild. Host networking only (everything on 127.0.0.1).
#
# usage: scripts/containers.sh COMMAND
#   install        docker.io, docker-compose, debootstrap from Debian when missing (apt-get)
#   engine-start   start dockerd --bridge=none --iptables=false unless an engine answers (log: .run/containers/)
#   engine-stop    stop the dockerd this script started (and only that one)
#   engine-status  say whether an engine answers
#   wheelhouse     wheelhouse/ on the host: locked third-party wheels + the workspace packages as wheels
#   build [WHAT]   build images (all | redis | kafka | python | jre | services | <service dir>); existing tags are kept
#   images         print the image names of the current inputs (builds nothing)
#   prune          remove local/grizzly-* images that no current input produces
#   env            print the exports the tests and docker-compose.ci.yml read
#   compose-ci ARGS docker-compose -f docker-compose.yml -f docker-compose.ci.yml ARGS with the local images
#   ci-prepare     install + engine-start + build all, with cold/warm timings; writes .run/containers/images.env
#   clean          remove the local/grizzly-* images (the next build is cold)
# Environment: CONTAINERS_RUN (.run/containers), DEBIAN_SUITE (bookworm), DEBIAN_MIRROR (http://deb.debian.org/debian),
#   KAFKA_VERSION (4.1.1), DOCKER (docker CLI; Debian's /usr/bin/docker when present), ENGINE_TIMEOUT_S (60).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN=${CONTAINERS_RUN:-$ROOT/.run/containers}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_LIBS=${KAFKA_LIBS:-$ROOT/.kafka/libs-$KAFKA_VERSION}
ENGINE_TIMEOUT_S=${ENGINE_TIMEOUT_S:-60}
# The Debian CLI matches the Debian engine (and its classic builder needs no buildx plugin).
if [ -z "${DOCKER:-}" ]; then
  if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER_BUILDKIT=0
# service directories under services/ (each is built once its pyproject.toml exists)
SERVICES="pool api-edge sms-ingest pusher simulator console"

log() { printf '[containers] %s\n' "$*" >&2; }
die() { printf '[containers] ERROR: %s\n' "$*" >&2; exit 1; }
hash_text() { sha256sum | cut -c1-12; }
# content hash of files (paths relative to ROOT), names included, caches excluded
hash_files() {
  find "$@" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*/.pytest_cache/*' ! -path '*/tests/*' \
    -print0 2>/dev/null | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12
}
image_exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------------------- engine
engine_answers() { timeout 5 "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

install() {
  local missing=()
  [ -x /usr/bin/dockerd ] || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return 0
  local t0=$SECONDS
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - t0))s"
}

engine_start() {
  if engine_answers; then log "a Docker engine already answers"; return 0; fi
  command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed: run scripts/containers.sh install"
  mkdir -p "$RUN"
  local t0=$SECONDS
  # No docker0 bridge, no iptables rules: containers run with --network host and talk on 127.0.0.1 only.
  nohup dockerd --bridge=none --iptables=false >> "$RUN/dockerd.log" 2>&1 < /dev/null &
  echo $! > "$RUN/dockerd.pid"
  until engine_answers; do
    kill -0 "$(cat "$RUN/dockerd.pid")" 2>/dev/null || { tail -20 "$RUN/dockerd.log" >&2; rm -f "$RUN/dockerd.pid"; die "dockerd exited (log: $RUN/dockerd.log)"; }
    [ $((SECONDS - t0)) -lt "$ENGINE_TIMEOUT_S" ] || die "dockerd does not answer after ${ENGINE_TIMEOUT_S}s (log: $RUN/dockerd.log)"
    sleep 0.3
  done
  log "dockerd started (pid $(cat "$RUN/dockerd.pid")) in $((SECONDS - t0))s"
}

engine_stop() {
  local pid
  [ -f "$RUN/dockerd.pid" ] || { log "no dockerd started by this script"; return 0; }
  pid=$(cat "$RUN/dockerd.pid")
  if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { log "dockerd did not stop in 30s, killing"; kill -KILL "$pid"; }
    log "dockerd (pid $pid) stopped"
  fi
  rm -f "$RUN/dockerd.pid"
}

# ---------------------------------------------------------------------------------------------------------- rootfs
# name : Debian packages. The image tag is the hash of this recipe (suite, packages, this function's code).
ROOTFS_RECIPES="redis:redis-server python:python3,python3-venv,ca-certificates jre:openjdk-17-jre-headless,ca-certificates"

rootfs_packages() { local entry; for entry in $ROOTFS_RECIPES; do [ "${entry%%:*}" = "$1" ] && echo "${entry#*:}"; done; return 0; }
rootfs_image() {
  local pkgs; pkgs=$(rootfs_packages "$1")
  echo "local/grizzly-$1:$(printf '%s\n' "$SUITE" "$pkgs" "$(declare -f rootfs_build)" | hash_text)"
}

rootfs_build() {  # name
  local name=$1 image pkgs dir t0=$SECONDS
  image=$(rootfs_image "$name"); pkgs=$(rootfs_packages "$name")
  if image_exists "$image"; then log "$image: present"; return 0; fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed: run scripts/containers.sh install"
  dir="$RUN/rootfs/$name"
  rm -rf "$dir"; mkdir -p "$dir"
  debootstrap --variant=minbase --include="$pkgs" "$SUITE" "$dir" "$MIRROR" > "$RUN/rootfs-$name.log" 2>&1 \
    || { tail -20 "$RUN/rootfs-$name.log" >&2; die "debootstrap $name failed (log: $RUN/rootfs-$name.log)"; }
  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
                 --change 'ENV LANG=C.UTF-8')
  case "$name" in
    redis)
      # like the official image: data in /data owned by the redis user, redis-server as the command
      chroot "$dir" sh -c 'mkdir -p /data && chown redis:redis /data'
      changes+=(--change 'WORKDIR /data' --change 'USER redis' --change 'VOLUME /data'
                --change 'CMD ["redis-server", "--bind", "127.0.0.1"]') ;;
    python) changes+=(--change 'CMD ["python3"]') ;;
    jre) changes+=(--change 'CMD ["java", "-version"]') ;;
  esac
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
    "$dir"/var/log/*.log "$dir"/var/cache/debconf/*-old
  tar --numeric-owner -C "$dir" -c . | "$DOCKER" import "${changes[@]}" - "$image" >/dev/null
  rm -rf "$dir"
  log "$image: built in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------------------- kafka
kafka_image() {
  local jars; jars=$(ls "$KAFKA_LIBS" 2>/dev/null | sort | sha256sum)
  echo "local/grizzly-kafka:$KAFKA_VERSION-$(printf '%s\n' "$jars" "$(rootfs_image jre)" "$(hash_files docker/kafka scripts/kafka/server.properties scripts/kafka/log4j2.properties)" | hash_text)"
}

kafka_build() {
  local image t0=$SECONDS ctx
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || KAFKA_VERSION=$KAFKA_VERSION scripts/kafka.sh fetch >&2
  image=$(kafka_image)
  if image_exists "$image"; then log "$image: present"; return 0; fi
  rootfs_build jre
  ctx="$RUN/kafka-context"; rm -rf "$ctx"; mkdir -p "$ctx"
  cp -a docker/kafka/. scripts/kafka/server.properties scripts/kafka/log4j2.properties "$ctx/"
  cp -al "$KAFKA_LIBS" "$ctx/libs" 2>/dev/null || cp -a "$KAFKA_LIBS" "$ctx/libs"
  "$DOCKER" build -q --network none --build-arg "JRE_IMAGE=$(rootfs_image jre)" -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "$image: built in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------------------- services
service_pkg() { sed -n 's/^name *= *"\(.*\)"/\1/p' "services/$1/pyproject.toml" | head -1; }
service_dirs() { local dir; for dir in $SERVICES; do [ -f "services/$dir/pyproject.toml" ] && echo "$dir"; done; return 0; }

service_image() {  # dir
  local dir=$1
  echo "local/grizzly-$dir:$(printf '%s\n' "$(rootfs_image python)" \
    "$(hash_files uv.lock pyproject.toml .dockerignore docker/wheelhouse.sh libs/common "services/$dir")" | hash_text)"
}

wheelhouse() {  # [package ...]: wheelhouse/<package>/requirements.txt + wheelhouse/wheels/*.whl
  local t0=$SECONDS pkgs=("$@") dir
  if [ ${#pkgs[@]} -eq 0 ]; then
    for dir in $(service_dirs); do pkgs+=("$(service_pkg "$dir")"); done
  fi
  local pkg dir stamp
  for pkg in "${pkgs[@]}"; do
    # up to date when uv.lock and the workspace sources are unchanged since the last run for this package
    stamp=$(hash_files uv.lock pyproject.toml docker/wheelhouse.sh libs/common services)
    [ "$(cat "wheelhouse/$pkg/stamp" 2>/dev/null)" = "$stamp" ] && continue
    docker/wheelhouse.sh host "$pkg" "$ROOT/wheelhouse" >&2
    echo "$stamp" > "wheelhouse/$pkg/stamp"
  done
  log "wheelhouse for ${pkgs[*]} ready in $((SECONDS - t0))s ($(ls wheelhouse/wheels | wc -l) wheels)"
}

service_build() {  # dir
  local dir=$1 pkg image t0=$SECONDS
  [ -f "services/$dir/pyproject.toml" ] || die "unknown service $dir"
  [ -f "services/$dir/Dockerfile" ] || die "services/$dir/Dockerfile is missing"
  pkg=$(service_pkg "$dir")
  image=$(service_image "$dir")
  if image_exists "$image"; then log "$image: present"; return 0; fi
  rootfs_build python
  wheelhouse "$pkg"
  "$DOCKER" build -q --network none --build-arg "PYTHON_IMAGE=$(rootfs_image python)" \
    -f "services/$dir/Dockerfile" -t "$image" . >/dev/null \
    || die "docker build of services/$dir failed (re-run without -q: $DOCKER build --network none -f services/$dir/Dockerfile .)"
  # the untagged build stage is not needed once the image exists (build all prunes once at the end)
  [ "${PARALLEL_BUILDS:-0}" = 1 ] || prune_build_stages
  log "$image: built in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------------------------- glue
write_env() {
  mkdir -p "$RUN"
  {
    echo "export TEST_INFRA=containers TEST_REQUIRE_DOCKER=1 TESTCONTAINERS_RYUK_DISABLED=true"
    echo "export TEST_REDIS_IMAGE=$(rootfs_image redis) TEST_KAFKA_IMAGE=$(kafka_image)"
    echo "export GRIZZLY_REDIS_IMAGE=$(rootfs_image redis) GRIZZLY_KAFKA_IMAGE=$(kafka_image)"
    local dir var
    for dir in $(service_dirs); do
      var=$(echo "$dir" | tr 'a-z-' 'A-Z_')
      echo "export GRIZZLY_${var}_IMAGE=$(service_image "$dir")"
    done
  } > "$RUN/images.env"
}

build() {
  local what=${1:-all} t0=$SECONDS dir pids=() name
  case "$what" in
    all)
      # the three Debian rootfs builds are mostly download + dpkg: run them side by side
      for name in redis python jre; do
        if ! image_exists "$(rootfs_image "$name")"; then rootfs_build "$name" & pids+=($!); fi
      done
      for pid in "${pids[@]}"; do wait "$pid" || die "a rootfs build failed"; done
      kafka_build
      wheelhouse
      local failed=()
      # two builds at a time (2 cores: pip unpacks and compiles while the other build sends its context)
      local -A jobs=()
      export PARALLEL_BUILDS=1
      for dir in $(service_dirs); do
        if [ ! -f "services/$dir/Dockerfile" ]; then log "services/$dir has no Dockerfile yet: skipped"; continue; fi
        if [ ${#jobs[@]} -ge 2 ]; then
          wait -n || true
          for name in "${!jobs[@]}"; do kill -0 "${jobs[$name]}" 2>/dev/null || { wait "${jobs[$name]}" || failed+=("$name"); unset "jobs[$name]"; }; done
        fi
        service_build "$dir" & jobs[$dir]=$!
      done
      for name in "${!jobs[@]}"; do wait "${jobs[$name]}" || failed+=("$name"); done
      prune_build_stages
      prune_stale
      [ ${#failed[@]} -eq 0 ] || { write_env; die "image build failed for: ${failed[*]}"; } ;;
    redis|python|jre) rootfs_build "$what" ;;
    kafka) kafka_build ;;
    services) for dir in $(service_dirs); do service_build "$dir"; done ;;
    *) service_build "$what" ;;
  esac
  write_env
  log "build $what done in $((SECONDS - t0))s"
}

prune_build_stages() { "$DOCKER" image prune -f --filter label=org.grizzly-partner.stage=build >/dev/null; }

prune_stale() {  # local/grizzly-* tags that no current input produces (older sources, older lock files)
  local keep name
  keep=" $(images | tr '\n' ' ') "
  for name in $("$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep '^local/grizzly-' || true); do
    case "$keep" in *" $name "*) ;; *) "$DOCKER" rmi "$name" >/dev/null 2>&1 && log "removed stale $name" || true ;; esac
  done
}

images() {
  echo "$(rootfs_image redis) $(rootfs_image python) $(rootfs_image jre) $(kafka_image)"
  local dir; for dir in $(service_dirs); do service_image "$dir"; done
}

compose_ci() {  # docker-compose with the CI override and the current local images; project "grizzly-ci" by default
  [ -f "$RUN/images.env" ] || write_env
  # shellcheck disable=SC1091
  . "$RUN/images.env"
  local compose=(docker-compose)
  command -v docker-compose >/dev/null 2>&1 || compose=("$DOCKER" compose)
  : "${UPSTREAM_GRIZZLY_KEY:=ci-partner-key-0001}" "${POOL_ADMIN_TOKEN:=ci-admin-token-0001}" "${INGEST_TOKEN:=ci-ingest-token-0001}"
  : "${POOL_API_TOKEN:=ci-pool-api-token-0001}" "${PUSHER_ADMIN_TOKEN:=ci-pusher-admin-token-0001}"
  : "${CONSOLE_SESSION_SECRET:=ci-console-session-secret-0001}" "${CONSOLE_OPERATOR_ADMIN_TOKEN:=ci-console-admin-token-0001}"
  export UPSTREAM_GRIZZLY_KEY POOL_ADMIN_TOKEN INGEST_TOKEN POOL_API_TOKEN PUSHER_ADMIN_TOKEN CONSOLE_SESSION_SECRET \
    CONSOLE_OPERATOR_ADMIN_TOKEN
  DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock} "${compose[@]}" -p "${COMPOSE_PROJECT_NAME:-grizzly-ci}" \
    -f docker-compose.yml -f docker-compose.ci.yml "$@"
}

ci_prepare() {
  local t0=$SECONDS t1 cold=0 name
  for name in $(images); do image_exists "$name" 2>/dev/null || cold=$((cold + 1)); done
  install
  t1=$SECONDS; engine_start; log "engine: $((SECONDS - t1))s"
  t1=$SECONDS; build all; log "images ($( [ "$cold" -gt 0 ] && echo "cold: $cold to build" || echo warm)): $((SECONDS - t1))s"
  log "ci-prepare done in $((SECONDS - t0))s; for the tests: source $RUN/images.env"
  cat "$RUN/images.env"
}

case "${1:-}" in
  install) install ;;
  engine-start) engine_start ;;
  engine-stop) engine_stop ;;
  engine-status) if engine_answers; then echo "engine answers: $("$DOCKER" version --format '{{.Server.Version}}')"; else echo "no engine answers"; exit 1; fi ;;
  wheelhouse) shift; wheelhouse "$@" ;;
  build) build "${2:-all}" ;;
  images) images ;;
  prune) prune_stale ;;
  env) write_env; cat "$RUN/images.env" ;;
  ci-prepare) ci_prepare ;;
  compose-ci) shift; compose_ci "$@" ;;
  clean) "$DOCKER" images --format '{{.Repository}}:{{.Tag}}' | grep '^local/grizzly-' | xargs -r "$DOCKER" rmi >/dev/null; log "local images removed" ;;
  *) sed -n '2,22p' "$0" >&2; exit 1 ;;
esac
