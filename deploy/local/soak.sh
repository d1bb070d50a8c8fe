#!/usr/bin/env bash
# `make soak`: the whole system for SOAK_MINUTES (default 10) under mixed load and chaos —
# 2 gateways, 2 indexers, 2 forwarders, fake SIEM receivers, Kafka and ClickHouse on their own
# ports and state (.local/soak) — then a per-event ledger (saved to .local/soak/results.md).
# SOAK_CLUSTER=1 runs it on the cluster topology: a 3-node Kafka (topics at RF 3, min ISR 2)
# and 2 ClickHouse shards (the sharded layout), with chaos on a broker and a shard
# (.local/soak-cluster, results in .local/soak-cluster/results.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export CACHE_DIR="${CACHE_DIR:-$ROOT/.local/cache}"
if [[ ${SOAK_CLUSTER:-0} == 1 ]]; then
  # Below the ephemeral port range: a node restarted by the chaos must get its port back.
  export STATE_DIR="$ROOT/.local/soak-cluster" KAFKA_NODES=3 KAFKA_HEAP=512m CH_SHARDS=2 CH_CLUSTER=audit_shards
  export KAFKA_PORT=26092 KAFKA_CONTROLLER_PORT=26093 CH_HTTP_PORT=26123 CH_TCP_PORT=26900
else
  export STATE_DIR="$ROOT/.local/soak"
  export KAFKA_PORT=59192 KAFKA_CONTROLLER_PORT=59193 CH_HTTP_PORT=58223 CH_TCP_PORT=59200 KAFKA_HEAP=768m
fi
say() { printf 'soak: %s\n' "$*"; }

WITH_BROWSER=0 deploy/local/prereqs.sh
say "building release binaries…"
cargo build --release --workspace --bins --quiet
deploy/local/infra.sh down >/dev/null 2>&1 || true
rm -rf "$STATE_DIR"/kafka-* "$STATE_DIR"/clickhouse-*
trap 'deploy/local/infra.sh down >/dev/null 2>&1 || true' EXIT
deploy/local/infra.sh up
topology=(--kafka "$(deploy/local/kafka.sh bootstrap)" --clickhouse "http://127.0.0.1:$CH_HTTP_PORT")
if [[ ${SOAK_CLUSTER:-0} == 1 ]]; then
  topology+=(--cluster --shard-urls "$(deploy/local/clickhouse.sh urls)")
fi
"$ROOT/target/release/soak" --minutes "${SOAK_MINUTES:-10}" "${topology[@]}" \
  --state-dir "$STATE_DIR" --bin-dir "$ROOT/target/release" | tee "$STATE_DIR/results.md"
