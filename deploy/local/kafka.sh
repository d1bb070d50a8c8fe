#!/usr/bin/env bash
# A real Apache Kafka 4.x for local runs and tests: one KRaft node (broker+controller
# combined) on 127.0.0.1 by default, or a cluster of KAFKA_NODES such nodes; jars resolved
# from Maven Central (no vendor tarball, no Docker).
#
# Usage: deploy/local/kafka.sh start|stop|status|wait|bootstrap
#        deploy/local/kafka.sh start-node|stop-node|kill-node N     (one node of a cluster)
#        deploy/local/kafka.sh active-controller                     (node id of the quorum leader)
# Knobs (environment):
#   STATE_DIR              state root (default <repo>/.local); node data in $STATE_DIR/kafka-<its port>
#   CACHE_DIR              downloads (default $STATE_DIR/cache): kafka-libs/, m2/
#   KAFKA_PORT             client listener (default 19092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener (default 19093)
#   KAFKA_NODES            1 (default): one node; 3: a cluster whose node N (1-based) listens on
#                          KAFKA_PORT+2(N-1) and KAFKA_CONTROLLER_PORT+2(N-1), all of them
#                          voters of the KRaft quorum, internal topics and defaults at
#                          replication factor 3 with min.insync.replicas=2 (see write_config)
#   KAFKA_HEAP             JVM heap per node (default 512m)
#   KAFKA_READY_TIMEOUT    seconds to wait for readiness (default 90)
# `bootstrap` prints the bootstrap list (every node). `kill-node N` SIGKILLs a node (tests, chaos).
# Extra: `kafka.sh run-class CLASS ARGS...` runs a Kafka CLI class from the resolved jars,
#   e.g. run-class org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:19092 --list
set -euo pipefail

COMPONENT=kafka
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-19093}"
KAFKA_HEAP="${KAFKA_HEAP:-512m}"
KAFKA_READY_TIMEOUT="${KAFKA_READY_TIMEOUT:-90}"
KAFKA_NODES="${KAFKA_NODES:-1}"
[[ $KAFKA_NODES =~ ^[1-9]$ ]] || die "KAFKA_NODES must be 1 to 9 (got '$KAFKA_NODES')"

POM="$LIB_DIR/kafka/pom.xml"
LIBS="$CACHE_DIR/kafka-libs"
M2="$CACHE_DIR/m2"
node_port() { printf '%s' "$((KAFKA_PORT + 2 * ($1 - 1)))"; }
node_controller_port() { printf '%s' "$((KAFKA_CONTROLLER_PORT + 2 * ($1 - 1)))"; }
# Every node, for clients: 127.0.0.1:P1,127.0.0.1:P2,…
CLUSTER_BOOTSTRAP=$(for ((n = 1; n <= KAFKA_NODES; n++)); do printf '127.0.0.1:%s,' "$(node_port "$n")"; done)
CLUSTER_BOOTSTRAP=${CLUSTER_BOOTSTRAP%,}
# The cluster's id lives with node 1 (every node of a cluster is formatted with it).
CLUSTER_ID_FILE="$STATE_DIR/kafka-$KAFKA_PORT/cluster.id"

# select_node N: point the per-node variables at node N.
select_node() {
  NODE=$1
  NODE_PORT=$(node_port "$NODE")
  NODE_CONTROLLER_PORT=$(node_controller_port "$NODE")
  INST="$STATE_DIR/kafka-$NODE_PORT"
  DATA="$INST/data"
  PROPS="$INST/server.properties"
  LOG4J="$INST/log4j2.properties"
  PIDFILE="$INST/kafka.pid"
  LOGFILE="$INST/kafka.log"
  # Our broker's command line always contains its own properties file: that is how we tell
  # it apart from any other java process (and from a recycled pid).
  MARKER="$PROPS"
  BOOTSTRAP="127.0.0.1:$NODE_PORT"
}
select_node 1

# Resolve the broker's classpath into $LIBS once; again only if the pom changed.
# Serialised with flock because several instances may share one cache.
ensure_libs() {
  local stamp want
  want=$(sha256sum <"$POM" | cut -d' ' -f1)
  stamp="$LIBS/.pom-sha256"
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then return 0; fi
  mkdir -p "$CACHE_DIR"
  exec 8>"$CACHE_DIR/.kafka-libs.lock"
  flock 8
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then exec 8>&-; return 0; fi
  need_cmd mvn maven
  say "resolving jars (first run only)…"
  local t0 build tmp
  t0=$(now)
  # Run Maven on a copy of the pom outside the repo so no target/ lands in the work tree;
  # a project-local repository so nothing depends on ~/.m2.
  build="$CACHE_DIR/kafka-build"
  tmp="$LIBS.tmp.$$"
  rm -rf -- "$build" "$tmp"
  mkdir -p "$build"
  cp -- "$POM" "$build/pom.xml"
  if ! mvn -q -B -f "$build/pom.xml" -Dmaven.repo.local="$M2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" \
    >"$build/mvn.log" 2>&1; then
    tail -n 40 "$build/mvn.log" >&2
    die "Maven could not resolve $POM (full log: $build/mvn.log)"
  fi
  # Fail here, not at broker start, if the entry points are not where we expect them.
  local jar
  jar=$(find "$tmp" -maxdepth 1 -name 'kafka_2.13-*.jar' ! -name '*-test*' | head -n1)
  [[ -n $jar ]] || die "kafka_2.13 jar missing from resolved libs"
  local listing cls
  listing=$(unzip -Z1 "$jar")
  for cls in kafka/Kafka.class kafka/tools/StorageTool.class; do
    grep -qxF "$cls" <<<"$listing" || die "$cls not in $jar"
  done
  printf '%s\n' "$want" >"$tmp/.pom-sha256"
  rm -rf -- "$LIBS"
  mv -- "$tmp" "$LIBS"
  say "resolved $(find "$LIBS" -name '*.jar' | wc -l) jars in $(since "$t0")s ($(basename "$jar" .jar))"
  exec 8>&-
}

ensure_tools() {
  need_cmd java openjdk-17-jre-headless
  need_cmd kcat
  need_cmd unzip
}

# JVM flags as in Kafka's bin/kafka-run-class.sh / kafka-server-start.sh, with a bounded heap.
jvm_opts() {
  JVM_OPTS=(
    "-Xmx$KAFKA_HEAP" "-Xms$KAFKA_HEAP"
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$LOG4J" "-Dkafka.logs.dir=$INST"
  )
}

write_config() {
  mkdir -p "$DATA"
  local quorum replication
  if ((KAFKA_NODES == 1)); then
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:$NODE_CONTROLLER_PORT"
    replication="# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1"
  else
    local n voters=""
    for ((n = 1; n <= KAFKA_NODES; n++)); do voters+="$n@127.0.0.1:$(node_controller_port "$n"),"; done
    quorum="controller.quorum.voters=${voters%,}"
    replication="# A cluster: three copies of everything, two of them in sync before a write is
# acknowledged (acks=all), and never a leader that was not in sync: one node may fail with
# no acknowledged message lost and no pause of ingest beyond the leader election.
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
# A dead node is noticed after 3 s instead of 9 s, so its partitions get new leaders sooner
# (a producer whose leader was SIGKILLed stalls ~5 s instead of ~10 s, measured here).
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500"
  fi
  cat >"$PROPS" <<EOF
# Generated by deploy/local/kafka.sh on each start; edits are overwritten.
# KRaft node $NODE of $KAFKA_NODES: broker and controller in one process, loopback only.
process.roles=broker,controller
node.id=$NODE
$quorum
listeners=PLAINTEXT://127.0.0.1:$NODE_PORT,CONTROLLER://127.0.0.1:$NODE_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$NODE_PORT,CONTROLLER://127.0.0.1:$NODE_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA

# Topics are created explicitly (by the services' code), never by a stray produce/fetch.
auto.create.topics.enable=false
num.partitions=6

$replication
# Fewer partitions than the default 50 so the first consumer group / transaction is quick.
offsets.topic.num.partitions=6
transaction.state.log.num.partitions=6

# Tests join consumer groups often: no 3 s wait before the first rebalance.
group.initial.rebalance.delay.ms=0

# Sized for a 2-core machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.retention.check.interval.ms=300000
EOF
  cat >"$LOG4J" <<'EOF'
# Generated by deploy/local/kafka.sh: everything to stdout, which goes to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = warn
EOF
}

# The cluster id, created once (node 1's folder keeps it for every node).
ensure_cluster_id() {
  local id
  mkdir -p "$(dirname "$CLUSTER_ID_FILE")"
  if [[ -s $CLUSTER_ID_FILE ]]; then
    cat -- "$CLUSTER_ID_FILE"
    return 0
  fi
  # Same shape as Kafka's Uuid.randomUuid(): 16 random bytes, base64url without padding;
  # never starting with '-' (Kafka refuses such ids on the command line).
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id != -* && ${#id} -eq 22 ]] && break
  done
  printf '%s\n' "$id" >"$CLUSTER_ID_FILE"
  printf '%s' "$id"
}

# Format the log dir once: a standalone (single-voter) KRaft quorum, or a node of the
# cluster's fixed voters (every node with the same cluster id).
ensure_formatted() {
  [[ -f $DATA/meta.properties ]] && return 0
  local id standalone=()
  ((KAFKA_NODES == 1)) && standalone=(--standalone)
  id=$(ensure_cluster_id)
  say "formatting $DATA (cluster id $id; first start only)…"
  jvm_opts
  if ! java "${JVM_OPTS[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format \
    "${standalone[@]}" -t "$id" -c "$PROPS" >"$INST/format.log" 2>&1; then
    cat "$INST/format.log" >&2
    die "formatting the log dir failed"
  fi
}

# Ready = the node answers a real metadata request listing every node of the cluster.
# (__readiness_probe does not exist and is not auto-created: the request still round-trips.)
ready() {
  local md
  md=$(kcat -b "$BOOTSTRAP" -L -t __readiness_probe -m 2 2>/dev/null) || return 1
  grep -qE "^ *$KAFKA_NODES brokers:" <<<"$md"
}

# wait_node N: wait until node N is ready (fails if it exits first).
wait_node() {
  local t0
  t0=$(now)
  select_node "$1"
  wait_until ready "$KAFKA_READY_TIMEOUT" "$PIDFILE" "$MARKER" "$LOGFILE" || return 1
  say "ready on $BOOTSTRAP in $(since "$t0")s"
}

cmd_wait() {
  local n
  need_cmd kcat
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    wait_node "$n" || die "broker on $BOOTSTRAP not ready"
  done
}

# launch_node N: start node N unless it runs, without waiting for readiness (the nodes of a
# cluster become ready together, once a majority of the quorum is up).
launch_node() {
  local pid
  select_node "$1"
  mkdir -p "$INST"
  # One start/stop at a time per instance. The lock fd is closed for the broker (9>&-)
  # so the broker does not hold it.
  exec 9>"$INST/.lock"
  flock 9
  if pid=$(owned_pid "$PIDFILE" "$MARKER"); then
    say "already running (pid $pid) on $BOOTSTRAP"
    exec 9>&-
    return 0
  fi
  forget_stale "$PIDFILE" "$MARKER" || true
  local p
  for p in "$NODE_PORT" "$NODE_CONTROLLER_PORT"; do
    if ! port_free_soon "$p"; then
      port_owner "$p" >&2
      die "port 127.0.0.1:$p is taken by another process (not this instance: no live pid in $PIDFILE); pick other KAFKA_PORT/KAFKA_CONTROLLER_PORT or stop it"
    fi
  done
  write_config
  ensure_formatted
  jvm_opts
  rotate_log "$LOGFILE"
  # setsid: own session, so a Ctrl-C or hang-up of the caller's terminal does not reach it.
  # In a non-interactive script the job is not a group leader, so nohup and setsid both
  # exec in place and $! is the java pid (checked right below).
  nohup setsid java "${JVM_OPTS[@]}" -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    >"$LOGFILE" 2>&1 </dev/null 9>&- &
  pid=$!
  record_pid "$PIDFILE" "$pid" "$MARKER" || die "the broker (pid $pid) exited right after launch"
  if ! confirm_started "$PIDFILE" "$MARKER"; then
    log_tail "$LOGFILE"
    abandon_launch "$PIDFILE"
    die "the broker (pid $pid) exited right after launch"
  fi
  say "started node $NODE: pid $pid (log $LOGFILE)"
  exec 9>&-
}

cmd_start() {
  local n t0
  t0=$(now)
  ensure_tools
  ensure_libs
  if ((KAFKA_NODES == 1)); then
    launch_node 1
  else
    ensure_cluster_id >/dev/null
    # Concurrently: formatting a node's log dir is a JVM start of its own.
    if ! in_parallel launch_node "$KAFKA_NODES"; then
      cmd_stop >/dev/null 2>&1 || true
      die "a node of the cluster did not start (see above)"
    fi
  fi
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    if ! wait_node "$n"; then
      # Do not leave a half-started broker (or cluster) behind.
      cmd_stop >/dev/null 2>&1 || true
      die "broker did not become ready on $BOOTSTRAP"
    fi
  done
  ((KAFKA_NODES == 1)) || say "cluster of $KAFKA_NODES ready on $CLUSTER_BOOTSTRAP in $(since "$t0")s"
}

# start-node N: (re)start one node and wait until it is ready.
cmd_start_node() {
  ensure_tools
  ensure_libs
  launch_node "$1"
  wait_node "$1" || die "broker did not become ready on $BOOTSTRAP"
}

# stop_node N [KILL]: stop node N if it runs (SIGTERM = controlled shutdown: the broker
# flushes and closes its logs; KILL = a crash, for tests and chaos).
stop_node() {
  select_node "$1"
  stop_locked "$INST" "$PIDFILE" "$MARKER" "${2:-TERM}"
}

cmd_stop() {
  local n pidfiles=() t0
  if ((KAFKA_NODES == 1)); then
    stop_node 1
    return 0
  fi
  # Every node at once: a node stopped alone waits for the others' quorum in its controlled
  # shutdown, while all of them together shut down in a few seconds.
  t0=$(now)
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    select_node "$n"
    [[ -e $PIDFILE ]] && pidfiles+=("$PIDFILE")
  done
  terminate_all 30 "${pidfiles[@]}"
  say "stopped $KAFKA_NODES nodes in $(since "$t0")s"
}

cmd_status() {
  local pid n rc=0
  for ((n = 1; n <= KAFKA_NODES; n++)); do
    select_node "$n"
    if pid=$(owned_pid "$PIDFILE" "$MARKER"); then
      say "running (pid $pid) on $BOOTSTRAP, data $INST"
    else
      say "stopped ($BOOTSTRAP)"
      rc=3
    fi
  done
  return "$rc"
}

# The node id of the KRaft quorum's leader (the active controller), asked of any live node.
cmd_active_controller() {
  local out
  out=$(run_class org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$CLUSTER_BOOTSTRAP" \
    describe --status) || die "no answer from the quorum on $CLUSTER_BOOTSTRAP"
  sed -n 's/^LeaderId:[[:space:]]*\([0-9][0-9]*\).*/\1/p' <<<"$out" | grep . || die "no LeaderId in: $out"
}

run_class() {
  [[ $# -ge 1 ]] || die "usage: $0 run-class CLASS [ARGS...]"
  ensure_tools
  ensure_libs
  local tmp_log4j="$CACHE_DIR/kafka-cli-log4j2.properties"
  # CLIs log warnings only, to stderr.
  printf '%s\n' 'status = warn' 'appender.err.type = Console' 'appender.err.name = STDERR' \
    'appender.err.target = SYSTEM_ERR' 'appender.err.layout.type = PatternLayout' \
    'appender.err.layout.pattern = %p %m (%c)%n' 'rootLogger.level = warn' \
    'rootLogger.appenderRef.err.ref = STDERR' >"$tmp_log4j"
  java -Xmx256m -Djava.awt.headless=true "-Dlog4j2.configurationFile=$tmp_log4j" \
    -cp "$LIBS/*" "$@"
}

node_arg() {
  [[ ${1:-} =~ ^[1-9]$ && $1 -le $KAFKA_NODES ]] || die "usage: $0 start-node|stop-node|kill-node N (1..$KAFKA_NODES)"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  bootstrap) printf '%s\n' "$CLUSTER_BOOTSTRAP" ;;
  start-node) node_arg "${2:-}"; cmd_start_node "$2" ;;
  stop-node) node_arg "${2:-}"; stop_node "$2" ;;
  kill-node) node_arg "${2:-}"; stop_node "$2" KILL ;;
  active-controller) cmd_active_controller ;;
  run-class) shift; run_class "$@" ;;
  *)
    echo "usage: $0 start|stop|status|wait|bootstrap|start-node N|stop-node N|kill-node N|active-controller|run-class CLASS [ARGS...]" >&2
    exit 2
    ;;
esac
