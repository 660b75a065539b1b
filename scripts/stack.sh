#!/usr/bin/env bash
# The whole grizzly-partner stack as local processes on 127.0.0.1 (no Docker needed).
# usage: scripts/stack.sh install|install-browser|up|down|status|env|sim|lint|test [pytest args]
#   install  Python deps (uv, uv.lock), redis-server (Debian package), Kafka jars (Maven Central); re-runs reuse them
#   install-browser  Debian's chromium for the console's browser tests (test runs it; apt-get only when missing)
#   up       install, start Redis + Kafka + pool + api-edge + sms-ingest + pusher + console, wait until each is ready
#   down     stop everything `up` started, the simulator too (data under .run/ is kept; `down --wipe` deletes it)
#   env      print the stack's settings as exports: eval "$(scripts/stack.sh env)" before using the CLIs
#   sim      run grizzly-conformance --destructive against the running stack (report in .run/conformance-report.json;
#            a FAIL stops here), then start the Grizzly simulator (grizzly-sim on :8090, where the pusher pushes)
#   lint     ruff and mypy --strict (test runs it first)
#   test     install, install-browser, lint, then the whole suite with local Redis/Kafka processes and again with containers
#            (scripts/containers.sh builds the images; TEST_CONTAINERS=0 skips that pass, TEST_REQUIRE_DOCKER=1 makes
#            a missing engine a failure); `test ARGS` runs only pytest ARGS, once (the fixtures start Redis/Kafka)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUN=${STACK_RUN_DIR:-$ROOT/.run}
export REDIS_PORT=${REDIS_PORT:-16379}
export KAFKA_PORT=${KAFKA_PORT:-19092} KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
export KAFKA_WORK=${KAFKA_WORK:-$RUN/kafka}

# Defaults for a local stack. Every one can be overridden from the environment (docs/configuration.md).
# The keys below are for a machine's own loopback only; production sets real secrets.
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
export KAFKA_BOOTSTRAP=${KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
export UPSTREAMS=${UPSTREAMS:-grizzly}
export UPSTREAM_GRIZZLY_KEY=${UPSTREAM_GRIZZLY_KEY:-local-dev-partner-key}
export UPSTREAM_GRIZZLY_PUSH_URL=${UPSTREAM_GRIZZLY_PUSH_URL:-http://127.0.0.1:8090/agent/api/sms}
export EDGE_PORT=${EDGE_PORT:-8080} POOL_PORT=${POOL_PORT:-8081} POOL_ADMIN_PORT=${POOL_ADMIN_PORT:-8082}
export INGEST_PORT=${INGEST_PORT:-8083} PUSHER_PORT=${PUSHER_PORT:-8084}
export EDGE_POOL_URL=${EDGE_POOL_URL:-http://127.0.0.1:$POOL_PORT}
export PUSHER_POOL_URL=${PUSHER_POOL_URL:-http://127.0.0.1:$POOL_PORT}
export INGEST_POOL_URL=${INGEST_POOL_URL:-http://127.0.0.1:$POOL_PORT}
export POOL_ADMIN_TOKEN=${POOL_ADMIN_TOKEN:-local-dev-admin-token}
export POOL_API_TOKEN=${POOL_API_TOKEN:-local-dev-pool-api-token}
export PUSHER_ADMIN_TOKEN=${PUSHER_ADMIN_TOKEN:-local-dev-pusher-admin-token}
export INGEST_TOKEN=${INGEST_TOKEN:-local-dev-ingest-token}
export INGEST_GOIP_TOKEN=${INGEST_GOIP_TOKEN:-local-dev-goip-token}
# Every listener on loopback: the local-dev-... values above are refused on any other address.
export EDGE_HOST=${EDGE_HOST:-127.0.0.1} EDGE_OPS_HOST=${EDGE_OPS_HOST:-127.0.0.1} EDGE_OPS_PORT=${EDGE_OPS_PORT:-8086}
export POOL_HOST=${POOL_HOST:-127.0.0.1} POOL_ADMIN_HOST=${POOL_ADMIN_HOST:-127.0.0.1}
export INGEST_HOST=${INGEST_HOST:-127.0.0.1} PUSHER_HOST=${PUSHER_HOST:-127.0.0.1}
# The operator console on loopback, plain http (so its cookie is not https-only), one operator "admin".
export CONSOLE_HOST=${CONSOLE_HOST:-127.0.0.1} CONSOLE_PORT=${CONSOLE_PORT:-8085}
export CONSOLE_POOL_ADMIN_URL=${CONSOLE_POOL_ADMIN_URL:-http://127.0.0.1:$POOL_ADMIN_PORT}
export CONSOLE_PUSHER_ADMIN_URL=${CONSOLE_PUSHER_ADMIN_URL:-http://127.0.0.1:$PUSHER_PORT}
export CONSOLE_OPERATORS=${CONSOLE_OPERATORS:-admin}
export CONSOLE_OPERATOR_ADMIN_TOKEN=${CONSOLE_OPERATOR_ADMIN_TOKEN:-local-dev-console-admin-token}
export CONSOLE_SESSION_SECRET=${CONSOLE_SESSION_SECRET:-local-dev-console-session-secret}
export CONSOLE_COOKIE_SECURE=${CONSOLE_COOKIE_SECURE:-false}
export SIM_PORT=${SIM_PORT:-8090} SIM_PARTNER_URL=${SIM_PARTNER_URL:-http://127.0.0.1:$EDGE_PORT/}
export SIM_KEY=${SIM_KEY:-$UPSTREAM_GRIZZLY_KEY}
export SIM_INGEST_URL=${SIM_INGEST_URL:-http://127.0.0.1:$INGEST_PORT/v1/sms} SIM_INGEST_TOKEN=${SIM_INGEST_TOKEN:-$INGEST_TOKEN}
STACK_VARS="REDIS_URL KAFKA_BOOTSTRAP UPSTREAMS UPSTREAM_GRIZZLY_KEY UPSTREAM_GRIZZLY_PUSH_URL EDGE_PORT POOL_PORT
  POOL_ADMIN_PORT INGEST_PORT PUSHER_PORT EDGE_POOL_URL PUSHER_POOL_URL INGEST_POOL_URL POOL_ADMIN_TOKEN INGEST_TOKEN
  POOL_API_TOKEN INGEST_GOIP_TOKEN EDGE_HOST EDGE_OPS_HOST EDGE_OPS_PORT POOL_HOST POOL_ADMIN_HOST INGEST_HOST
  PUSHER_HOST PUSHER_ADMIN_TOKEN CONSOLE_HOST CONSOLE_PORT CONSOLE_POOL_ADMIN_URL CONSOLE_PUSHER_ADMIN_URL
  CONSOLE_OPERATORS CONSOLE_OPERATOR_ADMIN_TOKEN CONSOLE_SESSION_SECRET CONSOLE_COOKIE_SECURE SIM_PORT SIM_PARTNER_URL
  SIM_KEY SIM_INGEST_URL SIM_INGEST_TOKEN"

log() { printf '[stack] %s\n' "$*"; }

install() {
  local t0=$SECONDS
  if ! command -v uv >/dev/null 2>&1; then
    log "installing uv"; python3 -m pip install --quiet --disable-pip-version-check uv
  fi
  uv sync --frozen --quiet
  if ! command -v redis-server >/dev/null 2>&1; then
    log "installing redis-server (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  PYTHON="$ROOT/.venv/bin/python" scripts/kafka.sh fetch
  log "installed in $((SECONDS - t0))s"
}

# The console's tests drive a real headless browser: Debian's chromium (/usr/bin/chromium), as browser downloads at
# install time are not possible on these machines. Only `test` needs it; `up` stays light. Without recommends
# (udev, upower, printing...): headless needs none of them, only a font for readable screenshots. About 100 s on a
# bare Debian, less where the GUI libraries are already there.
BROWSER=${BROWSER:-/usr/bin/chromium}
install_browser() {
  [ -x "$BROWSER" ] && return 0
  local t0=$SECONDS
  log "installing chromium (Debian package, for the console's browser tests)"
  export DEBIAN_FRONTEND=noninteractive
  # another apt run (a second checkout, unattended upgrades) holds the lock for a while: wait instead of failing
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
  [ -x "$BROWSER" ] || { log "chromium installed but $BROWSER is missing"; return 1; }
  log "chromium installed in $((SECONDS - t0))s: $("$BROWSER" --version 2>/dev/null || echo '?')"
}

redis_start() {
  mkdir -p "$RUN/redis"
  if [ -f "$RUN/redis/redis.pid" ] && kill -0 "$(cat "$RUN/redis/redis.pid")" 2>/dev/null; then return 0; fi
  # append-only, fsync before each reply: an activation, a pending SMS or a ledger entry survives a crash (docs/durability.md)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" --appendonly yes --appendfsync always \
    --daemonize yes --pidfile "$RUN/redis/redis.pid" --logfile "$RUN/redis/redis.log" --save ""
  .venv/bin/python -m grizzly_common.ready redis "$REDIS_URL" --timeout 30
  log "redis ready on 127.0.0.1:$REDIS_PORT"
}

redis_stop() {
  if [ -f "$RUN/redis/redis.pid" ] && kill -0 "$(cat "$RUN/redis/redis.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$RUN/redis/redis.pid")"
    for _ in $(seq 1 50); do [ -f "$RUN/redis/redis.pid" ] || break; sleep 0.1; done
    log "redis stopped"
  fi
}

# name:command:the port its /readyz answers on (api-edge: its ops port), in start order (the console's /readyz needs
# the pool's and the pusher's admin APIs)
SERVICES="pool:grizzly-pool:$POOL_PORT edge:grizzly-edge:$EDGE_OPS_PORT ingest:grizzly-ingest:$INGEST_PORT
  pusher:grizzly-pusher:$PUSHER_PORT console:grizzly-console:$CONSOLE_PORT"
SIMULATOR="sim:grizzly-sim:$SIM_PORT"

services_start() {
  mkdir -p "$RUN/services"
  local entry name cmd port
  for entry in ${1:-$SERVICES}; do
    IFS=: read -r name cmd port <<<"$entry"
    if [ -f "$RUN/services/$name.pid" ] && kill -0 "$(cat "$RUN/services/$name.pid")" 2>/dev/null; then continue; fi
    nohup ".venv/bin/$cmd" >> "$RUN/services/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN/services/$name.pid"
    .venv/bin/python -m grizzly_common.ready http "http://127.0.0.1:$port/readyz" --timeout 60 \
      || { log "$name did not become ready; last log lines:"; tail -20 "$RUN/services/$name.log"; exit 1; }
    log "$name ready on 127.0.0.1:$port"
  done
}

# How to log in, for the up message: the loopback-dev default is shown, a token of your own only by its variable.
console_token() {
  local first=${CONSOLE_OPERATORS%%,*} var
  var="CONSOLE_OPERATOR_$(printf '%s' "$first" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9' '_')_TOKEN"
  case "${!var:-}" in
    local-dev-*) printf '%s' "${!var}" ;;
    *) printf 'in %s' "$var" ;;
  esac
}

services_stop() {
  local entry name cmd port pid
  for entry in $SIMULATOR $SERVICES; do
    IFS=: read -r name cmd port <<<"$entry"
    [ -f "$RUN/services/$name.pid" ] || continue
    pid=$(cat "$RUN/services/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      log "$name stopped"
    fi
    rm -f "$RUN/services/$name.pid"
  done
}

# The conformance kit before the simulator takes the push port. --destructive: the platform fines a number offered
# again for a service after FINISH 3 or 1, and the simulator finishes with both statuses anyway.
conformance() {
  local report="$RUN/conformance-report.json" push=()
  if [ -f "$RUN/services/sim.pid" ] && kill -0 "$(cat "$RUN/services/sim.pid")" 2>/dev/null; then
    log "simulator already running: conformance kit not run"; return 0
  fi
  case "$UPSTREAM_GRIZZLY_PUSH_URL" in
    "http://127.0.0.1:$SIM_PORT/"*)
      push=(--push-listen "127.0.0.1:$SIM_PORT" --sms-ingest-url "$SIM_INGEST_URL" --ingest-token "$SIM_INGEST_TOKEN") ;;
  esac
  mkdir -p "$RUN"
  log "conformance kit (--destructive) against $SIM_PARTNER_URL"
  if ! .venv/bin/grizzly-conformance --url "$SIM_PARTNER_URL" --key "$SIM_KEY" --destructive --json "$report" \
      "${push[@]}"; then
    log "conformance FAILED (report: $report): simulator not started"; exit 1
  fi
}

# ruff, then mypy --strict: the sources together, each test folder on its own (pytest's importlib mode needs no
# __init__.py, and test module names repeat across folders)
lint() {
  local code=0 dir
  uv run --frozen --no-sync ruff check . || code=1
  uv run --frozen --no-sync ruff format --check . || code=1
  uv run --frozen --no-sync mypy || code=1  # the files pyproject.toml names
  for dir in libs/common/tests services/*/tests "tests conftest.py"; do
    # shellcheck disable=SC2086 # "tests conftest.py" is two paths
    uv run --frozen --no-sync mypy $dir || code=1
  done
  return $code
}

# The whole suite twice: with Redis/Kafka as local processes, then as containers (testcontainers, local images built
# by scripts/containers.sh), where the compose stack tests run too. No Docker engine: one line, local mode only,
# unless TEST_REQUIRE_DOCKER=1 (CI on machines that can run Docker), which makes that a failure.
run_suites() {
  local t0=$SECONDS reports="$RUN/test-reports" code=0 prep_log
  mkdir -p "$reports"; rm -f "$reports"/*.xml
  log "lint: ruff and mypy --strict"
  lint || { log "FAILED: lint"; code=1; }
  log "suite 1/2: Redis and Kafka as local processes"
  TEST_INFRA=local uv run --frozen --no-sync pytest -p no:cacheprovider --junitxml="$reports/local.xml" \
    --ignore-glob="tests/integration/test_compose_*.py" || code=1
  log "suite 1/2 done in $((SECONDS - t0))s"
  local t1=$SECONDS
  prep_log="$reports/containers-prepare.log"
  if [ "${TEST_CONTAINERS:-1}" = "0" ]; then
    log "suite 2/2 skipped: TEST_CONTAINERS=0"
  elif scripts/containers.sh ci-prepare > "$prep_log" 2>&1; then
    grep '^\[containers\]' "$prep_log" | tail -4 || true
    # only the tests that use Redis or Kafka (and compose) run again: the others ran in suite 1 (TEST_INFRA_ONLY)
    log "suite 2/2: Redis and Kafka as containers, plus docker-compose (prepared in $((SECONDS - t1))s)"
    ( set -a; . "$RUN/containers/images.env"; set +a
      TEST_INFRA_ONLY=1 uv run --frozen --no-sync pytest -p no:cacheprovider --junitxml="$reports/containers.xml" ) || code=1
    log "suite 2/2 done in $((SECONDS - t1))s"
  elif [ "${TEST_REQUIRE_DOCKER:-0}" = "1" ]; then
    tail -20 "$prep_log" >&2
    log "FAILED: TEST_REQUIRE_DOCKER=1 but no Docker engine could be prepared (log: $prep_log)"; code=1
  else
    log "no Docker engine could be prepared ($(tail -1 "$prep_log")): container mode skipped, local mode only"
  fi
  "$ROOT/.venv/bin/python" - "$reports" <<'PY'
import sys, pathlib, xml.etree.ElementTree as ET
totals = dict(tests=0, failures=0, errors=0, skipped=0)
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
failed = totals["failures"] + totals["errors"]
passed = totals["tests"] - failed - totals["skipped"]
print(f"total: {passed} passed, {failed} failed, {totals['skipped']} skipped")
PY
  log "tests done in $((SECONDS - t0))s"
  return $code
}

case "${1:-}" in
  install) install ;;
  install-browser) install_browser ;;
  up)
    t0=$SECONDS
    install
    redis_start
    PYTHON="$ROOT/.venv/bin/python" scripts/kafka.sh start
    services_start
    log "stack up in $((SECONDS - t0))s: partner URL http://127.0.0.1:$EDGE_PORT/ (also /GrizzlySMS.php)," \
        "SMS in at http://127.0.0.1:$INGEST_PORT/v1/sms, pool admin on :$POOL_ADMIN_PORT; stop with scripts/stack.sh down"
    log "console: http://127.0.0.1:$CONSOLE_PORT/ - log in as ${CONSOLE_OPERATORS%%,*} with the token $(console_token)"
    ;;
  down)
    services_stop
    PYTHON="$ROOT/.venv/bin/python" scripts/kafka.sh stop || true
    redis_stop
    if [ "${2:-}" = "--wipe" ]; then rm -rf "$RUN"; log "data wiped"; fi
    ;;
  env)
    for var in $STACK_VARS; do printf 'export %s=%q\n' "$var" "${!var}"; done
    ;;
  sim)
    conformance
    services_start "$SIMULATOR"
    log "simulator polling http://127.0.0.1:$EDGE_PORT/ every 10-20 s; findings: curl -s http://127.0.0.1:$SIM_PORT/sim/report"
    ;;
  status)
    for entry in $SERVICES; do
      IFS=: read -r name cmd port <<<"$entry"
      if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then echo "$name: ready"; else echo "$name: down"; fi
    done
    scripts/kafka.sh status || true
    ;;
  lint)
    install
    lint
    ;;
  test)
    shift
    install
    install_browser
    if [ $# -gt 0 ]; then exec uv run --frozen --no-sync pytest "$@"; fi  # a developer's selection, one mode
    run_suites
    ;;
  *) echo "usage: $0 install|install-browser|up|down [--wipe]|status|env|sim|lint|test [pytest args]" >&2; exit 1 ;;
esac
