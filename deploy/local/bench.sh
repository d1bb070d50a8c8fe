#!/usr/bin/env bash
# `make bench`: builds release binaries, starts a bench instance of Kafka and ClickHouse (own
# ports and state under .local/bench), runs every benchmark and prints one table, also saved
# to .local/bench/results.md with a description of the machine (paste it into BENCHMARKS.md).
#   BENCH=ingest|indexer|read|forwarder make bench   runs one group; BENCH_SECONDS sets durations;
#   BENCH_SKIP_BUILD=1 uses the release binaries already built.
#   BENCH=scale make bench   (not in the default run: ~15 min) measures how per-tenant costs grow:
#   settings start-up with up to 100,000 organizations, the forwarder with up to 5,000
#   destinations across 2,000 organizations (BENCHMARKS.md, "Scale on paper").
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
export STATE_DIR="$ROOT/.local/bench" CACHE_DIR="${CACHE_DIR:-$ROOT/.local/cache}"
export KAFKA_PORT=59092 KAFKA_CONTROLLER_PORT=59093 CH_HTTP_PORT=58123 CH_TCP_PORT=59000 KAFKA_HEAP=1g
SECONDS_PER_RUN="${BENCH_SECONDS:-20}"
GROUPS_TO_RUN="${BENCH:-ingest indexer read forwarder}"
say() { printf 'bench: %s\n' "$*"; }

WITH_BROWSER=0 deploy/local/prereqs.sh
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  say "building release binaries (first build ≈ 10 min on 2 cores)…"
  cargo build --release --workspace --bins --quiet
fi

deploy/local/infra.sh down >/dev/null 2>&1 || true
# Kafka starts empty every run (pre-filled topics are large); ClickHouse keeps the generated
# read dataset between runs, the other benchmark databases are dropped.
rm -rf "$STATE_DIR/kafka-$KAFKA_PORT"
trap 'deploy/local/infra.sh down >/dev/null 2>&1 || true' EXIT
deploy/local/infra.sh up
for db in $(curl -sS "http://127.0.0.1:$CH_HTTP_PORT/" --data "SELECT name FROM system.databases WHERE name LIKE 'bench\\_%' AND name NOT LIKE 'bench\\_read%' FORMAT TSVRaw"); do
  curl -sS "http://127.0.0.1:$CH_HTTP_PORT/" --data "DROP DATABASE $db" >/dev/null
done

RESULTS="$STATE_DIR/results.md"
BENCH_BIN="$ROOT/target/release/bench"
common=(--kafka "127.0.0.1:$KAFKA_PORT" --clickhouse "http://127.0.0.1:$CH_HTTP_PORT" --bin-dir "$ROOT/target/release" --log-dir "$STATE_DIR/logs" --seconds "$SECONDS_PER_RUN")
{
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -sr)"
  echo "Toolchain: $(rustc --version); Kafka 4.4.0 (single KRaft node, same machine); ClickHouse $(curl -sS "http://127.0.0.1:$CH_HTTP_PORT/" --data 'SELECT version()') (chdb-core, same machine)"
  echo "Date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
} >"$RESULTS"
tables=()
for group in $GROUPS_TO_RUN; do
  say "running: $group"
  out="$STATE_DIR/$group.md"
  case $group in
    ingest | indexer | read) "$BENCH_BIN" "${common[@]}" "$group" | tee "$out" ;;
    scale)
      "$ROOT/target/release/bench-scale" --kafka "127.0.0.1:$KAFKA_PORT" --clickhouse "http://127.0.0.1:$CH_HTTP_PORT" \
        --bin-dir "$ROOT/target/release" --log-dir "$STATE_DIR/logs" | tee "$out"
      ;;
    forwarder)
      if [[ -x $ROOT/target/release/bench-forwarder ]]; then
        "$ROOT/target/release/bench-forwarder" --brokers "127.0.0.1:$KAFKA_PORT" --bin-dir "$ROOT/target/release" | tee "$out"
      else
        say "bench-forwarder not built; skipping"
        continue
      fi
      ;;
    *) say "unknown group $group"; exit 2 ;;
  esac
  tables+=("$out")
done
# One table: the header once, then every row.
first=1
for table in "${tables[@]}"; do
  if ((first)); then
    grep '^|' "$table" >>"$RESULTS"
    first=0
  else
    grep '^|' "$table" | tail -n +3 >>"$RESULTS"
  fi
done
echo
cat "$RESULTS"
