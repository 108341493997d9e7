#!/usr/bin/env bash
# Apache Kafka 4.1 as a single KRaft node (broker + controller) from Maven Central jars.
#   deploy/local/kafka.sh start|stop|status|credentials
#
# Environment (defaults in brackets):
#   PMM_KAFKA_SECURITY         plaintext | scram  [DEFAULT_SECURITY below]
#   PMM_KAFKA_STATE_DIR        config, data, logs, TLS files, credentials  [.local/kafka]
#   PMM_KAFKA_PORT             client listener (PLAINTEXT, or SASL_PLAINTEXT with scram)  [9092]
#   PMM_KAFKA_TLS_PORT         SASL_SSL listener (scram only)  [9094]
#   PMM_KAFKA_CONTROLLER_PORT  KRaft controller listener  [9093]
#   PMM_KAFKA_HEAP             broker heap  [768m]
#
# With scram: SASL/SCRAM-SHA-512 on the client listeners, the StandardAuthorizer with
# allow.everyone.if.no.acl.found=false, super users admin (SCRAM, bootstrapped at format time)
# and controller (PLAIN on the controller listener, which only this node uses). A local CA and a
# broker certificate (127.0.0.1, localhost) are made with openssl on first start; the admin's
# client properties are written to <state>/credentials/admin.properties (librdkafka/kcat format;
# admin-tls.properties for the TLS listener) and admin-java.properties (Java client and Kafka's
# own tools); the CA is <state>/tls/ca.pem. Auto-creation of topics stays on: with ACLs only a
# principal with Create may trigger it (the admin; no service, no organisation).
# A state directory formatted without SCRAM is migrated once (its admin credential is added
# through a short plaintext start), so no data is lost.
#
# The jars are shared by every state directory (.local/kafka/libs). A broker already on the port
# that we did not start is accepted as is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HOME_DIR="${PMM_KAFKA_STATE_DIR:-$ROOT/.local/kafka}"
LIBS="$ROOT/.local/kafka/libs"
CONF="$HOME_DIR/config"
DATA="$HOME_DIR/data"
LOGS="$HOME_DIR/logs"
TLS="$HOME_DIR/tls"
CREDS="$HOME_DIR/credentials"
PID_FILE="$HOME_DIR/kafka.pid"
# The one switch of the local default (make test, make run); PMM_KAFKA_SECURITY overrides it.
DEFAULT_SECURITY=scram
SECURITY="${PMM_KAFKA_SECURITY:-$DEFAULT_SECURITY}"
PORT="${PMM_KAFKA_PORT:-9092}"
TLS_PORT="${PMM_KAFKA_TLS_PORT:-9094}"
CONTROLLER_PORT="${PMM_KAFKA_CONTROLLER_PORT:-9093}"
HEAP="${PMM_KAFKA_HEAP:-768m}"
POM="$ROOT/deploy/local/kafka/pom.xml"
START_TIMEOUT=90
case "$SECURITY" in plaintext|scram) ;; *) echo "kafka: PMM_KAFKA_SECURITY is plaintext or scram, not $SECURITY" >&2; exit 2 ;; esac

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

# Secrets of this state directory, made once: passwords of the admin and controller principals
# and of the broker's keystore (never committed: the state directory is git-ignored).
make_secrets() {
  mkdir -p "$CONF" "$CREDS"; chmod 700 "$CONF" "$CREDS"
  if [ ! -f "$CONF/secrets.env" ]; then
    umask 077
    {
      echo "ADMIN_PASSWORD=$(openssl rand -hex 24)"
      echo "CONTROLLER_PASSWORD=$(openssl rand -hex 24)"
      echo "KEYSTORE_PASSWORD=$(openssl rand -hex 24)"
    } >"$CONF/secrets.env"
  fi
  # shellcheck disable=SC1091
  . "$CONF/secrets.env"
}

# A local CA and a broker certificate for 127.0.0.1/localhost, in a PKCS12 keystore.
make_tls() {
  [ -f "$TLS/broker.p12" ] && return
  command -v openssl >/dev/null || { echo "kafka: openssl is needed for the TLS listener" >&2; exit 1; }
  mkdir -p "$TLS"
  echo "kafka: making a local CA and broker certificate in $TLS"
  (
    cd "$TLS"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.pem \
      -subj "/CN=PMM local Kafka CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -sha256 -keyout broker.key -out broker.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 -days 825 \
      -extfile broker.ext -out broker.pem 2>/dev/null
    openssl pkcs12 -export -in broker.pem -inkey broker.key -certfile ca.pem -name broker \
      -out broker.p12.tmp -passout "pass:$KEYSTORE_PASSWORD"
    mv broker.p12.tmp broker.p12
    chmod 644 ca.pem
    rm -f broker.csr broker.ext
  )
}

# Client properties of the admin principal: librdkafka/kcat format and Java format.
write_admin_credentials() {
  umask 077
  cat >"$CREDS/admin.properties" <<PROPS
bootstrap.servers=127.0.0.1:$PORT
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.username=admin
sasl.password=$ADMIN_PASSWORD
PROPS
  cat >"$CREDS/admin-tls.properties" <<PROPS
bootstrap.servers=127.0.0.1:$TLS_PORT
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.username=admin
sasl.password=$ADMIN_PASSWORD
ssl.ca.location=$TLS/ca.pem
PROPS
  cat >"$CREDS/admin-java.properties" <<PROPS
bootstrap.servers=127.0.0.1:$PORT
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
PROPS
}

common_config() {
  cat <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
log.dirs=$DATA
num.partitions=3
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=-1
log.cleaner.enable=true
log.segment.bytes=67108864
PROPS
}

plaintext_config() {
  common_config
  cat <<PROPS
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
auto.create.topics.enable=true
PROPS
}

scram_config() {
  common_config
  cat <<PROPS
listeners=SASL_PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$TLS_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$TLS_PORT
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$ADMIN_PASSWORD";
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="$CONTROLLER_PASSWORD" user_controller="$CONTROLLER_PASSWORD";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$KEYSTORE_PASSWORD
auto.create.topics.enable=true
PROPS
}

# $1: plaintext or scram
write_config() {
  mkdir -p "$CONF" "$DATA" "$LOGS"
  umask 077
  if [ "$1" = scram ]; then scram_config >"$CONF/server.properties"; else plaintext_config >"$CONF/server.properties"; fi
  umask 022
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
  echo "--- $LOGS: last errors, then the tail ---" >&2
  grep -hE '^\[.*\] (ERROR|FATAL)' "$LOGS/server.log" 2>/dev/null | tail -n 5 >&2 || true
  tail -n 25 "$LOGS/kafka.out" "$LOGS/server.log" >&2 2>/dev/null || true
}

# $1: plaintext or scram (how to talk to the broker)
admin_args() {
  if [ "$1" = scram ]; then echo "--command-config $CREDS/admin-java.properties"; fi
}

# $1: plaintext or scram
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  # The port first (cheap), then a real metadata request through the admin client.
  # shellcheck disable=SC2046
  until port_open "$PORT" && tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" $(admin_args "$1") --list >/dev/null 2>&1; do
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

launch() {
  nohup java -Xms256m "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$LOGS" -Dlog4j2.configurationFile="$CONF/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$CONF/server.properties" >"$LOGS/kafka.out" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
}

format_storage() {
  echo "kafka: formatting storage in $DATA (first start)"
  local cluster_id scram=()
  cluster_id=$(tool kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  if [ "$SECURITY" = scram ]; then scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$ADMIN_PASSWORD]"); fi
  tool kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$CONF/server.properties" "${scram[@]}" >"$LOGS/format.out" 2>&1 \
    || { echo "kafka: formatting failed:" >&2; cat "$LOGS/format.out" >&2; exit 1; }
  if [ "$SECURITY" = scram ]; then touch "$CREDS/.scram-admin"; fi
}

# Data formatted without SCRAM: add the admin's credential through one short plaintext start.
migrate_to_scram() {
  echo "kafka: adding the admin's SCRAM credential to existing data (one plaintext start)"
  write_config plaintext
  launch
  wait_ready plaintext
  tool kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$PORT" --alter --entity-type users --entity-name admin \
    --add-config "SCRAM-SHA-512=[password=$ADMIN_PASSWORD]" >"$LOGS/migrate.out" 2>&1 \
    || { echo "kafka: adding the admin credential failed:" >&2; cat "$LOGS/migrate.out" >&2; stop; exit 1; }
  stop >/dev/null
  touch "$CREDS/.scram-admin"
}

start() {
  if running; then
    if port_open "$PORT"; then echo "kafka: already running on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"; return; fi
    echo "kafka: pid $(cat "$PID_FILE") is starting; waiting for it"
    wait_ready "$SECURITY"; echo "kafka: ready on 127.0.0.1:$PORT"; return
  fi
  rm -f "$PID_FILE"
  if port_open "$PORT"; then echo "kafka: a broker not started by this script listens on 127.0.0.1:$PORT; using it"; return; fi
  fetch_jars
  if [ "$SECURITY" = scram ]; then
    make_secrets; make_tls; write_admin_credentials
  else
    rm -f "$CREDS"/*.properties  # no stale credentials (the admin's, the services')
  fi
  write_config "$SECURITY"
  if [ ! -f "$DATA/meta.properties" ]; then
    format_storage
  elif [ "$SECURITY" = scram ] && [ ! -f "$CREDS/.scram-admin" ]; then
    migrate_to_scram
    write_config scram
  fi
  echo "kafka: starting on 127.0.0.1:$PORT ($SECURITY; logs in $LOGS)"
  launch
  wait_ready "$SECURITY"
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
  credentials) echo "$CREDS" ;;
  *) echo "usage: $0 start|stop|status|credentials" >&2; exit 2 ;;
esac
