#!/bin/bash
# Start one KRaft node. Ports by env (KAFKA_PORT 9092, KAFKA_CONTROLLER_PORT 9093, KAFKA_HOST 127.0.0.1), and like
# the official apache/kafka image every other KAFKA_<NAME> variable sets a broker property (KAFKA_NUM_PARTITIONS
# -> num.partitions; "__" -> "_", "___" -> "-"). CLUSTER_ID fixes the cluster id (else a random one at format).
set -euo pipefail
LIBS=/opt/kafka/libs
PORT=${KAFKA_PORT:-9092}
CPORT=${KAFKA_CONTROLLER_PORT:-9093}
HOST=${KAFKA_HOST:-127.0.0.1}
DATA=${KAFKA_DATA:-/var/lib/kafka/data}
CONF=${KAFKA_CONFIG_FILE:-/tmp/server.properties}
LOG_OPT=-Dlog4j2.configurationFile=/opt/kafka/log4j2.properties

# the same template as scripts/kafka.sh (scripts/kafka/server.properties, copied in by scripts/containers.sh)
sed -e "s|@HOST@|$HOST|g" -e "s|@PORT@|$PORT|g" -e "s|@CPORT@|$CPORT|g" -e "s|@DATA@|$DATA|g" \
  /opt/kafka/server.properties.template > "$CONF"

# KAFKA_* overrides (the last value of a key wins when Java reads the file)
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_PORT|KAFKA_CONTROLLER_PORT|KAFKA_HOST|KAFKA_DATA|KAFKA_CONFIG_FILE|KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_VERSION|KAFKA_HOME|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS) continue ;;
  esac
  key=${name#KAFKA_}; key=${key,,}; key=${key//___/-}; key=${key//__/@}; key=${key//_/.}; key=${key//@/_}
  printf '%s=%s\n' "$key" "$value" >> "$CONF"
done < <(env | grep '^KAFKA_[A-Z0-9_]*=' || true)

log_dir=$(sed -n 's/^log\.dirs=//p' "$CONF" | tail -1); log_dir=${log_dir%%,*}
if [ ! -f "$log_dir/meta.properties" ]; then
  cid=${CLUSTER_ID:-}
  while [ -z "$cid" ] || [ "${cid:0:1}" = - ]; do  # 22-char URL-safe base64 of a random UUID, without a JVM start
    hex=$(tr -d '-' < /proc/sys/kernel/random/uuid)
    # shellcheck disable=SC2059
    cid=$(printf "$(sed 's/../\\x&/g' <<<"$hex")" | base64 | tr '+/' '-_' | tr -d '=\n')
  done
  mkdir -p "$log_dir"
  # static quorum (controller.quorum.voters) => no --standalone
  java -Xmx256m "$LOG_OPT" -cp "$LIBS/*" kafka.tools.StorageTool format --ignore-formatted -t "$cid" -c "$CONF"
fi
# shellcheck disable=SC2086
exec java ${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
  ${KAFKA_OPTS:-} "$LOG_OPT" -cp "$LIBS/*" kafka.Kafka "$CONF"
