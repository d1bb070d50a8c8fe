#!/usr/bin/env bash
# Bring the local infrastructure (real Kafka broker + real ClickHouse engine) up or down.
#
# Usage: deploy/local/infra.sh up|down|status
# Knobs are those of kafka.sh and clickhouse.sh (STATE_DIR, CACHE_DIR, KAFKA_PORT,
# KAFKA_CONTROLLER_PORT, KAFKA_NODES, KAFKA_HEAP, KAFKA_READY_TIMEOUT, CH_HTTP_PORT, CH_TCP_PORT,
# CH_SHARDS, CH_CLUSTER, CH_OPS_PASSWORD, CH_READY_TIMEOUT). A test instance beside the dev
# one, e.g.:
#   STATE_DIR=/tmp/x KAFKA_PORT=29092 KAFKA_CONTROLLER_PORT=29093 \
#     CH_HTTP_PORT=28123 CH_TCP_PORT=29000 deploy/local/infra.sh up
# The cluster topology (a 3-node Kafka and 2 ClickHouse shards) with KAFKA_NODES=3 CH_SHARDS=2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Resolve STATE_DIR once (relative to the caller's cwd) so both services agree on it. The
# other knobs reach kafka.sh and clickhouse.sh unchanged through the environment.
STATE_DIR="$(realpath -m -- "${STATE_DIR:-$HERE/../../.local}")"
export STATE_DIR

T0=$EPOCHREALTIME
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# both ACTION: run kafka.sh and clickhouse.sh ACTION concurrently (they are independent;
# this roughly halves a cold start), then report each one's outcome.
both() {
  local action=$1 kpid cpid krc=0 crc=0
  "$HERE/kafka.sh" "$action" &
  kpid=$!
  "$HERE/clickhouse.sh" "$action" &
  cpid=$!
  wait "$kpid" || krc=$?
  wait "$cpid" || crc=$?
  BOTH_RC=("$krc" "$crc")
}

case "${1:-}" in
  up)
    echo "infra: starting kafka and clickhouse (state in $STATE_DIR)…"
    both start
    if [[ ${BOTH_RC[0]} -ne 0 || ${BOTH_RC[1]} -ne 0 ]]; then
      echo "infra: FAILED after $(elapsed)s (kafka rc=${BOTH_RC[0]}, clickhouse rc=${BOTH_RC[1]}); 'deploy/local/infra.sh down' stops whatever did start" >&2
      exit 1
    fi
    echo "infra: up in $(elapsed)s"
    ;;
  down)
    both stop
    if [[ ${BOTH_RC[0]} -ne 0 || ${BOTH_RC[1]} -ne 0 ]]; then
      echo "infra: stop FAILED (kafka rc=${BOTH_RC[0]}, clickhouse rc=${BOTH_RC[1]})" >&2
      exit 1
    fi
    echo "infra: down in $(elapsed)s"
    ;;
  status)
    # Exit 0 only if both run (3 = at least one is stopped), like the per-service scripts.
    rc=0
    "$HERE/kafka.sh" status || rc=3
    "$HERE/clickhouse.sh" status || rc=3
    exit "$rc"
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
