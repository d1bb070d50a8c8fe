#!/usr/bin/env bash
# The test command (`make test`): installs what the suites need on a fresh machine, starts
# one real Kafka broker and one real ClickHouse engine for the whole run (on their own ports
# and state, beside any `make run` instance), runs every suite, and stops them again.
# The last line is the total: "tests: N passed, N failed".
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

log() { printf 'test: %s\n' "$*"; }
started=$(date +%s)

deploy/local/prereqs.sh

# Fresh engine state for every run: tests must not depend on leftovers.
deploy/local/infra.sh down >/dev/null 2>&1 || true
rm -rf "$STATE_DIR/kafka-$KAFKA_PORT" "$STATE_DIR/clickhouse-$CH_HTTP_PORT" "$STATE_DIR/runs"
mkdir -p "$STATE_DIR"
cleanup() { deploy/local/infra.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

log "building (one build for the binaries and every test target)…"
cargo build --workspace --bins --tests --quiet &
build=$!
deploy/local/infra.sh up
wait "$build"

OUT="$STATE_DIR/cargo-test.log"
log "running the suites (unit + integration on the real engines)…"
set +e
cargo test --workspace --all-targets --quiet ${TEST_FILTER:-} -- --test-threads="${TEST_THREADS:-3}" 2>&1 | tee "$OUT"
cargo_status=${PIPESTATUS[0]}
set -e

passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$OUT" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$OUT" | awk '{s+=$1} END {print s+0}')
if [[ $cargo_status -ne 0 && $failed -eq 0 ]]; then failed=1; fi
log "finished in $(( $(date +%s) - started ))s; service logs of each test are in $STATE_DIR/runs/"
echo "tests: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
