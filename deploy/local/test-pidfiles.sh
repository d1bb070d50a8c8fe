#!/usr/bin/env bash
# Test of the pid-file identity checks in deploy/local/lib.sh (run by `make test`): stopping
# the local run or an engine never signals a process we did not start, even when a leftover
# pid file names it, and still stops what we did start.
#
# A bystander (a `sleep` started here, standing for a terminal multiplexer or any other
# process that got a recycled pid) is named by stale pid files of every kind: a pid-only file
# of an older version, a file whose start time is not the bystander's, and one whose start
# time matches but whose command line is not the service's. `run.sh stop`, `kafka.sh stop`
# and `clickhouse.sh stop` must leave it alive and remove those files; a real service
# (fake-receivers, started the way run.sh starts services) and a real ClickHouse engine must
# still be stopped; a process of ours that ignores SIGTERM gets SIGKILL after its grace.
# Needs target/debug/fake-receivers (AUDIT_BIN_DIR to use another folder) and the engines'
# download cache (CACHE_DIR). Prints "test-pidfiles: N passed, M failed"; exit 1 on failure.
set -euo pipefail

COMPONENT=test-pidfiles
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Single-node engines only, whatever the caller runs.
unset KAFKA_NODES CH_SHARDS
BIN="${AUDIT_BIN_DIR:-$REPO_ROOT/target/debug}"
[[ -x $BIN/fake-receivers ]] || die "$BIN/fake-receivers is missing: cargo build --workspace --bins"
export CACHE_DIR
TMP=$(mktemp -d)
PASSED=0
FAILED=0
BYSTANDER=""
cleanup() {
  # Only what this script started: the bystander (by its recorded identity) and the engine.
  if [[ -n $BYSTANDER ]] && same_process "$BYSTANDER" "$BYSTANDER_START"; then kill "$BYSTANDER"; fi
  STATE_DIR="$TMP/engines" CH_HTTP_PORT="${CH_HTTP:-0}" CH_TCP_PORT="${CH_TCP:-0}" \
    "$LIB_DIR/clickhouse.sh" stop >/dev/null 2>&1 || true
  rm -rf -- "$TMP"
}
trap cleanup EXIT

check() { # check NAME COMMAND...: COMMAND must succeed
  local name=$1
  shift
  if "$@"; then
    PASSED=$((PASSED + 1))
    say "ok   $name"
  else
    FAILED=$((FAILED + 1))
    say "FAIL $name"
  fi
}
alive() { same_process "$BYSTANDER" "$BYSTANDER_START"; }
gone() { ! same_process "$1" "$2"; } # gone PID START (a zombie counts as gone)
absent() { [[ ! -e $1 ]]; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# stale_pidfile KIND FILE MARKER: a stale pid file naming the bystander. KIND: `legacy` (pid
# only, as older scripts wrote), `other-start` (a start time that is not the bystander's),
# `other-command` (the bystander's start time, but MARKER is not in its command line).
STALE_KINDS=(legacy other-start other-command)
stale_pidfile() {
  mkdir -p "$(dirname "$2")"
  case $1 in
    legacy) printf '%s\n' "$BYSTANDER" >"$2" ;;
    other-start) printf '%s\n%s\n%s\n' "$BYSTANDER" "$((BYSTANDER_START - 1))" "$3" >"$2" ;;
    other-command) printf '%s\n%s\n%s\n' "$BYSTANDER" "$BYSTANDER_START" "$3" >"$2" ;;
  esac
}

sleep 600 &
BYSTANDER=$!
BYSTANDER_START=$(proc_start "$BYSTANDER")

# --- make stop (run.sh stop): stale service pid files, and one real service ----------------
STATE="$TMP/run-state"
service=0
for kind in "${STALE_KINDS[@]}"; do
  service=$((service + 1))
  stale_pidfile "$kind" "$STATE/run/gateway-$service.pid" "$BIN/gateway"
done
ports=()
for _ in 1 2 3 4; do ports+=("$(free_port)"); done
nohup "$BIN/fake-receivers" --hec-port "${ports[0]}" --datadog-port "${ports[1]}" \
  --wazuh-port "${ports[2]}" --webhook-port "${ports[3]}" >"$TMP/fake-receivers.log" 2>&1 &
record_pid "$STATE/run/fake-receivers.pid" "$!" "$BIN/fake-receivers"
{ IFS= read -r service_pid && IFS= read -r service_start; } <"$STATE/run/fake-receivers.pid"
ready() { curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${ports[3]}/_fake/stats" 2>/dev/null; }
wait_until ready 30 "$STATE/run/fake-receivers.pid" "$BIN/fake-receivers" "$TMP/fake-receivers.log" ||
  die "fake-receivers did not start"

STATE_DIR="$STATE" "$REPO_ROOT/deploy/local/run.sh" stop >"$TMP/stop.log" 2>&1 ||
  { cat "$TMP/stop.log" >&2; die "run.sh stop failed"; }
check "make stop leaves a process named by stale service pid files alive" alive
for ((n = 1; n <= service; n++)); do
  check "make stop removes the stale gateway-$n.pid (${STALE_KINDS[$((n - 1))]})" absent "$STATE/run/gateway-$n.pid"
done
check "make stop says it did not signal the stale pid" grep -q "pid $BYSTANDER is not the process we started; not signalled" "$TMP/stop.log"
check "make stop still stops a service it started (fake-receivers)" gone "$service_pid" "$service_start"
check "make stop removes the stopped service's pid file" absent "$STATE/run/fake-receivers.pid"

# --- engines: kafka.sh / clickhouse.sh stop with stale pid files --------------------------
ENGINES="$TMP/engines"
KAFKA=$(free_port)
CH_HTTP=$(free_port)
CH_TCP=$(free_port)
kafka_dir="$ENGINES/kafka-$KAFKA"
ch_dir="$ENGINES/clickhouse-$CH_HTTP"
for engine in kafka clickhouse; do
  if [[ $engine == kafka ]]; then
    dir=$kafka_dir marker="$kafka_dir/server.properties"
  else
    dir=$ch_dir marker="--dir $ch_dir "
  fi
  for kind in "${STALE_KINDS[@]}"; do
    stale_pidfile "$kind" "$dir/$engine.pid" "$marker"
    STATE_DIR="$ENGINES" KAFKA_PORT="$KAFKA" CH_HTTP_PORT="$CH_HTTP" CH_TCP_PORT="$CH_TCP" \
      "$LIB_DIR/$engine.sh" stop >"$TMP/$engine-stop.log" 2>&1 ||
      { cat "$TMP/$engine-stop.log" >&2; die "$engine.sh stop failed"; }
    check "$engine.sh stop leaves the process of a stale ($kind) pid file alive" alive
    check "$engine.sh stop removes the stale ($kind) pid file" absent "$dir/$engine.pid"
  done
done

# A real engine started by its script is still stopped by it.
STATE_DIR="$ENGINES" CH_HTTP_PORT="$CH_HTTP" CH_TCP_PORT="$CH_TCP" "$LIB_DIR/clickhouse.sh" start >"$TMP/ch-start.log" 2>&1 ||
  { cat "$TMP/ch-start.log" >&2; die "clickhouse.sh start failed"; }
{ IFS= read -r engine_pid && IFS= read -r engine_start; } <"$ch_dir/clickhouse.pid"
STATE_DIR="$ENGINES" CH_HTTP_PORT="$CH_HTTP" CH_TCP_PORT="$CH_TCP" "$LIB_DIR/clickhouse.sh" stop >/dev/null 2>&1
check "clickhouse.sh stop still stops the engine it started" gone "$engine_pid" "$engine_start"
port_free() { ! port_busy "$1"; }
check "the stopped engine's port is free again" port_free "$CH_HTTP"

# --- escalation: a process of ours that ignores SIGTERM gets SIGKILL after the grace --------
# (an ignored signal disposition survives exec, so this `sleep` itself ignores SIGTERM)
bash -c 'trap "" TERM; exec sleep 601' &
record_pid "$TMP/stubborn.pid" "$!" "sleep 601"
disown # (its SIGKILL is expected: no "Killed" job report)
{ IFS= read -r stubborn_pid && IFS= read -r stubborn_start; } <"$TMP/stubborn.pid"
confirm_started "$TMP/stubborn.pid" "sleep 601" || die "the stubborn process did not start"
stopped=$(terminate "$TMP/stubborn.pid" 1 2>/dev/null) || true
check "terminate reports the process of ours it stopped" test "$stopped" = "$stubborn_pid"
check "terminate stops a process of ours that ignores SIGTERM (SIGKILL after the grace)" \
  gone "$stubborn_pid" "$stubborn_start"
check "and the bystander is still alive at the end" alive

echo "test-pidfiles: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
