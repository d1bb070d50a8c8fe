#!/usr/bin/env bash
# The test command (`make test`): installs what the suites need on a fresh machine, starts
# one real Kafka broker and one real ClickHouse engine for the whole run (on their own ports
# and state, beside any `make run` instance), and the cluster topology for the cluster suite
# (tests/tests/cluster/: a 3-node KRaft Kafka and a 2-shard ClickHouse, same scripts), runs
# every suite, and stops them again.
# The output ends with cargo test's own summary lines (one "test result:" per target); the
# engines are stopped quietly after it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# TEST_STATE_DIR and TEST_*_PORT let two test runs share a machine.
export STATE_DIR="${TEST_STATE_DIR:-$ROOT/.local/test}"
export CACHE_DIR="${CACHE_DIR:-$ROOT/.local/cache}"
export KAFKA_PORT="${TEST_KAFKA_PORT:-29092}" KAFKA_CONTROLLER_PORT="${TEST_KAFKA_CONTROLLER_PORT:-29093}"
export CH_HTTP_PORT="${TEST_CH_HTTP_PORT:-28123}" CH_TCP_PORT="${TEST_CH_TCP_PORT:-29000}"
export AUDIT_TEST_KAFKA="127.0.0.1:$KAFKA_PORT" AUDIT_TEST_CLICKHOUSE="http://127.0.0.1:$CH_HTTP_PORT"
export AUDIT_TEST_RUNS_DIR="$STATE_DIR/runs"
# The cluster: Kafka nodes on KAFKA_PORT+0/2/4 (controllers +1), ClickHouse shards on
# CH_HTTP_PORT+0/1 (native TCP CH_TCP_PORT+0/1). The suite reads where it is from these.
export AUDIT_TEST_CLUSTER_STATE_DIR="$STATE_DIR/cluster"
export AUDIT_TEST_CLUSTER_KAFKA_PORT="${TEST_CLUSTER_KAFKA_PORT:-29192}"
export AUDIT_TEST_CLUSTER_KAFKA_CONTROLLER_PORT="${TEST_CLUSTER_KAFKA_CONTROLLER_PORT:-29193}"
export AUDIT_TEST_CLUSTER_CH_HTTP_PORT="${TEST_CLUSTER_CH_HTTP_PORT:-28223}"
export AUDIT_TEST_CLUSTER_CH_TCP_PORT="${TEST_CLUSTER_CH_TCP_PORT:-29200}"
export AUDIT_TEST_CLUSTER_CH_CLUSTER=audit_shards
cluster_infra() {
  STATE_DIR="$AUDIT_TEST_CLUSTER_STATE_DIR" KAFKA_NODES=3 KAFKA_HEAP=320m \
    KAFKA_PORT="$AUDIT_TEST_CLUSTER_KAFKA_PORT" KAFKA_CONTROLLER_PORT="$AUDIT_TEST_CLUSTER_KAFKA_CONTROLLER_PORT" \
    CH_SHARDS=2 CH_HTTP_PORT="$AUDIT_TEST_CLUSTER_CH_HTTP_PORT" CH_TCP_PORT="$AUDIT_TEST_CLUSTER_CH_TCP_PORT" \
    CH_CLUSTER="$AUDIT_TEST_CLUSTER_CH_CLUSTER" deploy/local/infra.sh "$1"
}

log() { printf 'test: %s\n' "$*"; }

deploy/local/prereqs.sh
# The independent OCSF validator of crates/audit-core/tests/ocsf_schema.rs (its venv, once).
deploy/local/ocsf-validator.sh install

# Fresh engine state for every run: tests must not depend on leftovers.
deploy/local/infra.sh down >/dev/null 2>&1 || true
cluster_infra down >/dev/null 2>&1 || true
rm -rf "$STATE_DIR/kafka-$KAFKA_PORT" "$STATE_DIR/clickhouse-$CH_HTTP_PORT" "$STATE_DIR/runs" "$AUDIT_TEST_CLUSTER_STATE_DIR"
mkdir -p "$STATE_DIR"
cleanup() {
  deploy/local/infra.sh down >/dev/null 2>&1 || true
  cluster_infra down >/dev/null 2>&1 || true
}
trap cleanup EXIT

log "building (one build for the binaries and every test target)…"
cargo build --workspace --bins --tests --quiet &
build=$!
cluster_infra up >"$STATE_DIR/cluster-up.log" 2>&1 &
cluster=$!
deploy/local/infra.sh up
if ! wait "$cluster"; then
  cat "$STATE_DIR/cluster-up.log" >&2
  log "the cluster did not start"
  exit 1
fi
log "cluster up: $(tail -n 1 "$STATE_DIR/cluster-up.log")"
wait "$build"

log "installing the OpenAPI tools (schemathesis, openapi-spec-validator) into the venv…"
deploy/local/apitools.sh ensure >/dev/null

log "checking the local scripts: stale pid files never make them signal another process…"
scripts_rc=0
deploy/local/test-pidfiles.sh || scripts_rc=$?

log "running the suites (unit + integration on the real engines); service logs of each test go to $STATE_DIR/runs/…"
# --no-fail-fast: one failing suite must not hide the results of the others.
cargo_rc=0
cargo test --workspace --all-targets --no-fail-fast --quiet ${TEST_FILTER:-} -- --test-threads="${TEST_THREADS:-3}" || cargo_rc=$?
if ((scripts_rc != 0)); then
  log "FAILED: deploy/local/test-pidfiles.sh (its output is above the suites')"
fi
exit $((cargo_rc != 0 ? cargo_rc : scripts_rc))
