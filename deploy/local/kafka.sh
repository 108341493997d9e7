#!/usr/bin/env bash
# Apache Kafka 4.1 as a single KRaft node (broker + controller) from Maven Central jars.
#   deploy/local/kafka.sh start|stop|status
# Listens on 127.0.0.1:${PMM_KAFKA_PORT:-9092} (controller ${PMM_KAFKA_CONTROLLER_PORT:-9093});
# jars, config, data and logs under .local/kafka. A broker already on the port that we did not
# start is accepted as is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HOME_DIR="$ROOT/.local/kafka"
LIBS="$HOME_DIR/libs"
CONF="$HOME_DIR/config"
DATA="$HOME_DIR/data"
LOGS="$HOME_DIR/logs"
PID_FILE="$HOME_DIR/kafka.pid"
PORT="${PMM_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${PMM_KAFKA_CONTROLLER_PORT:-9093}"
POM="$ROOT/deploy/local/kafka/pom.xml"
START_TIMEOUT=90

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

# Small JVM for the command-line tools; the broker gets its own flags.
tool() { java -Xms32m -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$CONF/log4j2-tools.yaml" -cp "$LIBS/*" "$@"; }

fetch_jars() {
  # Re-resolve when the pom changes (its hash is stored beside the jars).
  local want; want=$(sha256sum "$POM" | cut -d' ' -f1)
  if [ -f "$LIBS/.pom.sha256" ] && [ "$(cat "$LIBS/.pom.sha256")" = "$want" ]; then return; fi
  command -v mvn >/dev/null || { echo "kafka: Maven (mvn) is needed to fetch Kafka's jars" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka: Java 17 is needed to run Kafka" >&2; exit 1; }
  echo "kafka: fetching Apache Kafka jars from Maven Central (first time only)..."
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime
  echo "$want" >"$LIBS/.pom.sha256"
}

write_config() {
  mkdir -p "$CONF" "$DATA" "$LOGS"
  cat >"$CONF/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DATA
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.cleaner.enable=true
log.segment.bytes=67108864
PROPS
  cat >"$CONF/log4j2.yaml" <<'LOG'
Configuration:
  Appenders:
    RollingFile:
      name: File
      fileName: "${sys:kafka.logs.dir}/server.log"
      filePattern: "${sys:kafka.logs.dir}/server.log.%i"
      PatternLayout: {pattern: "[%d] %p %m (%c)%n"}
      Policies: {SizeBasedTriggeringPolicy: {size: 20MB}}
      DefaultRolloverStrategy: {max: 3}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: File}]}
    Logger:
      - {name: org.apache.kafka.clients, level: WARN}
      - {name: kafka.request.logger, level: WARN}
LOG
  cat >"$CONF/log4j2-tools.yaml" <<'LOG'
Configuration:
  Appenders:
    Console: {name: Err, target: SYSTEM_ERR, PatternLayout: {pattern: "%p %m%n"}}
  Loggers:
    Root: {level: ERROR, AppenderRef: [{ref: Err}]}
LOG
}

log_tail() {
  echo "--- .local/kafka/logs: last errors, then the tail ---" >&2
  grep -hE '^\[.*\] (ERROR|FATAL)' "$LOGS/server.log" 2>/dev/null | tail -n 5 >&2 || true
  tail -n 25 "$LOGS/kafka.out" "$LOGS/server.log" >&2 2>/dev/null || true
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  # The port first (cheap), then a real metadata request through the admin client.
  until port_open "$PORT" && tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" --list >/dev/null 2>&1; do
    if ! running; then
      echo "kafka: exited during start" >&2; log_tail
      rm -f "$PID_FILE"; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "kafka: not answering on 127.0.0.1:$PORT after ${START_TIMEOUT} s" >&2; log_tail
      exit 1
    fi
    sleep 1
  done
}

start() {
  if running; then
    if port_open "$PORT"; then echo "kafka: already running on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"; return; fi
    echo "kafka: pid $(cat "$PID_FILE") is starting; waiting for it"
    wait_ready; echo "kafka: ready on 127.0.0.1:$PORT"; return
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then echo "kafka: a broker not started by this script listens on 127.0.0.1:$PORT; using it"; return; fi
  fetch_jars
  write_config
  if [ ! -f "$DATA/meta.properties" ]; then
    echo "kafka: formatting storage in .local/kafka/data (first start)"
    local cluster_id
    cluster_id=$(tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONF/server.properties" >"$LOGS/format.out" 2>&1 \
      || { echo "kafka: formatting failed:" >&2; cat "$LOGS/format.out" >&2; exit 1; }
  fi
  echo "kafka: starting on 127.0.0.1:$PORT (logs in .local/kafka/logs/)"
  nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$CONF/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$CONF/server.properties" >"$LOGS/kafka.out" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  wait_ready
  echo "kafka: ready on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"
}

stop() {
  if running; then
    local pid; pid=$(cat "$PID_FILE")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "kafka: still running after 30 s; killing pid $pid" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "kafka: stopped"
  elif port_open "$PORT"; then
    echo "kafka: not started by this script (no pid file); leaving the broker on 127.0.0.1:$PORT alone"
  else
    echo "kafka: not running"
  fi
  rm -f "$PID_FILE"
}

status() {
  if running && port_open "$PORT"; then echo "kafka: running on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"; return 0; fi
  if running; then echo "kafka: pid $(cat "$PID_FILE") alive but 127.0.0.1:$PORT not answering (starting?)"; return 1; fi
  if port_open "$PORT"; then echo "kafka: a broker not started by this script listens on 127.0.0.1:$PORT"; return 0; fi
  echo "kafka: stopped"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
