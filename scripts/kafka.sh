#!/usr/bin/env bash
# A single-node KRaft Apache Kafka (broker + controller) on 127.0.0.1, from jars fetched from Maven Central.
# usage: scripts/kafka.sh fetch|start|stop|restart|status|wipe|logs
#   fetch    download the broker jars into $KAFKA_LIBS once (re-runs reuse them)
#   start    format the data dir only if it is new, start the broker, wait for a metadata round trip
#   stop     SIGTERM, wait for a clean shutdown (SIGKILL after 30 s)
#   restart  stop + start, keeping every record (no re-format)
#   wipe     stop and delete the data dir
# Environment: KAFKA_HOME (default .kafka under the repo), KAFKA_WORK (data/config, default $KAFKA_HOME/run),
#   KAFKA_PORT (19092), KAFKA_CONTROLLER_PORT (19093), KAFKA_VERSION (4.1.1), KAFKA_HEAP_OPTS.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KAFKA_HOME=${KAFKA_HOME:-$ROOT/.kafka}
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
LIBS=${KAFKA_LIBS:-$KAFKA_HOME/libs-$KAFKA_VERSION}
WORK=${KAFKA_WORK:-$KAFKA_HOME/run}
PORT=${KAFKA_PORT:-19092}
CPORT=${KAFKA_CONTROLLER_PORT:-19093}
HEAP=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-120}
PY=${PYTHON:-$ROOT/.venv/bin/python}  # needs grizzly_common (scripts/stack.sh install)
[ -x "$PY" ] || PY=python3

fetch() {
  if [ -f "$LIBS/kafka_2.13-$KAFKA_VERSION.jar" ]; then return 0; fi
  local t0=$SECONDS tmp="$LIBS.partial"
  rm -rf "$tmp"
  mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp"
  mv "$tmp" "$LIBS"   # only a complete download becomes the cache
  echo "kafka $KAFKA_VERSION jars fetched in $((SECONDS - t0))s ($(ls "$LIBS" | wc -l) jars)"
}

# server.properties and log4j2.properties are shared with the Kafka image (docker/kafka/run.sh)
write_configs() {
  mkdir -p "$WORK"
  sed -e "s|@HOST@|127.0.0.1|g" -e "s|@PORT@|$PORT|g" -e "s|@CPORT@|$CPORT|g" -e "s|@DATA@|$WORK/data|g" \
    "$ROOT/scripts/kafka/server.properties" > "$WORK/server.properties"
  cp "$ROOT/scripts/kafka/log4j2.properties" "$WORK/log4j2.properties"
}

pid_alive() { [ -f "$WORK/kafka.pid" ] && kill -0 "$(cat "$WORK/kafka.pid")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  fetch
  if pid_alive; then echo "kafka already running (pid $(cat "$WORK/kafka.pid"))"; return 0; fi
  port_open "$PORT" && { echo "port $PORT already in use" >&2; exit 3; }
  write_configs
  local log_opt="-Dlog4j2.configurationFile=$WORK/log4j2.properties" t0=$SECONDS
  # Format only a new data dir: a restart must keep every record (the reference script re-formats always).
  if [ ! -f "$WORK/data/meta.properties" ]; then
    local cid
    cid=$("$PY" -c 'import base64,uuid
while (s := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(s)')
    # static quorum (controller.quorum.voters) => no --standalone (4.1+ rejects the combination)
    java -Xmx256m "$log_opt" -cp "$LIBS/*" kafka.tools.StorageTool format -t "$cid" \
      -c "$WORK/server.properties" > "$WORK/format.out" 2>&1 || { cat "$WORK/format.out" >&2; exit 4; }
  fi
  # shellcheck disable=SC2086
  nohup java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true "$log_opt" \
    -cp "$LIBS/*" kafka.Kafka "$WORK/server.properties" >> "$WORK/broker.out" 2>&1 < /dev/null &
  echo $! > "$WORK/kafka.pid"
  local pid; pid=$(cat "$WORK/kafka.pid")
  until port_open "$PORT"; do
    kill -0 "$pid" 2>/dev/null || { echo "kafka exited:" >&2; tail -40 "$WORK/broker.out" >&2; exit 5; }
    [ $((SECONDS - t0)) -lt "$READY_TIMEOUT" ] || { echo "kafka port not open after ${READY_TIMEOUT}s" >&2; exit 6; }
    sleep 0.2
  done
  # ready = a real metadata round trip that lists the broker, not just an open port
  "$PY" -m grizzly_common.ready kafka "127.0.0.1:$PORT" --timeout "$READY_TIMEOUT" >/dev/null \
    || { echo "kafka not answering metadata" >&2; tail -40 "$WORK/broker.out" >&2; stop >&2; exit 6; }
  echo "kafka $KAFKA_VERSION ready on 127.0.0.1:$PORT in $((SECONDS - t0))s (pid $pid)"
}

stop() {
  pid_alive || { rm -f "$WORK/kafka.pid"; echo "kafka not running"; return 0; }
  local pid; pid=$(cat "$WORK/kafka.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && { echo "kafka did not stop in 30s, killing" >&2; kill -KILL "$pid"; }
  rm -f "$WORK/kafka.pid"; echo "kafka stopped"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if pid_alive; then echo "kafka running (pid $(cat "$WORK/kafka.pid")) on 127.0.0.1:$PORT"; else echo "kafka stopped"; exit 1; fi ;;
  wipe) stop; rm -rf "$WORK/data" ;;
  logs) tail -f "$WORK/broker.out" ;;
  *) echo "usage: $0 fetch|start|stop|restart|status|wipe|logs" >&2; exit 1 ;;
esac
