#!/usr/bin/env bash
# `make soak`: the whole system for SOAK_MINUTES (default 10) under mixed load and chaos —
# 2 gateways, 2 indexers, 2 forwarders, fake SIEM receivers, Kafka and ClickHouse on their own
# ports and state (.local/soak) — then a per-event ledger (saved to .local/soak/results.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export STATE_DIR="$ROOT/.local/soak" CACHE_DIR="${CACHE_DIR:-$ROOT/.local/cache}"
export KAFKA_PORT=59192 KAFKA_CONTROLLER_PORT=59193 CH_HTTP_PORT=58223 CH_TCP_PORT=59200 KAFKA_HEAP=768m
say() { printf 'soak: %s\n' "$*"; }

WITH_BROWSER=0 deploy/local/prereqs.sh
say "building release binaries…"
cargo build --release --workspace --bins --quiet
deploy/local/infra.sh down >/dev/null 2>&1 || true
rm -rf "$STATE_DIR/kafka-$KAFKA_PORT" "$STATE_DIR/clickhouse-$CH_HTTP_PORT"
trap 'deploy/local/infra.sh down >/dev/null 2>&1 || true' EXIT
deploy/local/infra.sh up
"$ROOT/target/release/soak" --minutes "${SOAK_MINUTES:-10}" --kafka "127.0.0.1:$KAFKA_PORT" \
  --clickhouse "http://127.0.0.1:$CH_HTTP_PORT" --state-dir "$STATE_DIR" --bin-dir "$ROOT/target/release" \
  | tee "$STATE_DIR/results.md"
