#!/usr/bin/env bash
# Prove a running instance (deploy/local/infra.sh up) really works, end to end, with
# independent clients: kcat for Kafka, curl for ClickHouse's HTTP interface.
#   - Kafka: create a topic with Kafka's own admin tool, produce a keyed message, consume
#     it back, check auto-creation is off; then delete the topic.
#   - ClickHouse: TTL + ReplacingMergeTree, insert_deduplication_token on a plain MergeTree
#     with non_replicated_deduplication_window, and the read-only ops_reader user; then
#     drop the scratch database.
# Same knobs as infra.sh. Exit 0 and "smoke: N passed, 0 failed" when all checks pass.
set -euo pipefail

COMPONENT=smoke
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-19092}"
CH_HTTP_PORT="${CH_HTTP_PORT:-18123}"
CH_OPS_PASSWORD="${CH_OPS_PASSWORD:-ops_reader_local}"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
URL="http://127.0.0.1:$CH_HTTP_PORT/"
RUN="smoke_$$_$RANDOM"
PASSED=0
FAILED=0

check() { # check NAME EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then
    PASSED=$((PASSED + 1))
    say "ok   $1"
  else
    FAILED=$((FAILED + 1))
    say "FAIL $1: expected [$2], got [$3]"
  fi
}
ch() { curl -sS --noproxy '*' "$URL${2:-}" --data-binary "$1"; }
ch_code() { [[ $1 =~ \(([A-Z_]+)\) ]] && printf '%s' "${BASH_REMATCH[1]}"; } # "(READONLY)" -> READONLY
ch_ops() { curl -sS --noproxy '*' -u "ops_reader:$CH_OPS_PASSWORD" "$URL" --data-binary "$1"; }

# --- Kafka -----------------------------------------------------------------------------
topic="_$RUN"
"$LIB_DIR/kafka.sh" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
  --create --topic "$topic" --partitions 3 --replication-factor 1 >/dev/null
msg="hello-$RUN"
printf '%s\n' "$msg" | kcat -b "$BOOTSTRAP" -P -t "$topic" -k org-1 -X partitioner=murmur2_random
got=$(kcat -b "$BOOTSTRAP" -C -t "$topic" -o beginning -e -q -f '%k=%s\n')
check "kafka: produce+consume through a topic made by kafka-topics" "org-1=$msg" "$got"
rc=0
# (librdkafka waits 30 s for a topic to "propagate" by default; 2 s is plenty here.)
printf 'x\n' | kcat -b "$BOOTSTRAP" -P -t "_${RUN}_absent" \
  -X topic.metadata.propagation.max.ms=2000 2>/dev/null || rc=$?
check "kafka: producing to a missing topic fails (auto.create.topics.enable=false)" "1" "$rc"
"$LIB_DIR/kafka.sh" run-class org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
  --delete --topic "$topic" >/dev/null

# --- ClickHouse ------------------------------------------------------------------------
db="$RUN"
ch "CREATE DATABASE $db"
ch "CREATE TABLE $db.events (org_id UInt64, id UUID, occurred_at DateTime64(3), retention_days UInt16,
    payload String, version UInt64)
    ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, id)
    TTL toDateTime(occurred_at) + toIntervalDay(retention_days)"
ch "INSERT INTO $db.events VALUES
    (1, '00000000-0000-0000-0000-000000000001', now64(3), 30, 'v1', 1),
    (1, '00000000-0000-0000-0000-000000000001', now64(3), 30, 'v2', 2),
    (2, '00000000-0000-0000-0000-000000000002', now64(3) - INTERVAL 10 DAY, 1, 'old', 1)"
ch "ALTER TABLE $db.events MATERIALIZE TTL SETTINGS mutations_sync = 2"
check "clickhouse: ReplacingMergeTree FINAL keeps the latest version, TTL drops expired rows" \
  "1	v2" "$(ch "SELECT org_id, payload FROM $db.events FINAL ORDER BY org_id")"

ch "CREATE TABLE $db.dedup (x UInt64) ENGINE = MergeTree ORDER BY x
    SETTINGS non_replicated_deduplication_window = 100"
ch "INSERT INTO $db.dedup VALUES (1), (2)" "?insert_deduplication_token=batch-1"
ch "INSERT INTO $db.dedup VALUES (1), (2)" "?insert_deduplication_token=batch-1"
check "clickhouse: the same insert_deduplication_token twice inserts once" \
  "2" "$(ch "SELECT count() FROM $db.dedup")"

check "clickhouse: ops_reader can SELECT" "2" "$(ch_ops "SELECT count() FROM $db.dedup")"
check "clickhouse: ops_reader may set query settings (readonly=2)" \
  "1" "$(curl -sS --noproxy '*' -u "ops_reader:$CH_OPS_PASSWORD" "${URL}?max_threads=1" \
    --data-binary "SELECT getSetting('max_threads')")"
out=$(ch_ops "INSERT INTO $db.dedup VALUES (3)" || true)
check "clickhouse: ops_reader INSERT refused" "READONLY" "$(ch_code "$out")"
out=$(ch_ops "DROP TABLE $db.dedup" || true)
check "clickhouse: ops_reader DDL refused" "READONLY" "$(ch_code "$out")"
check "clickhouse: wrong password refused" "403" \
  "$(curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' -u ops_reader:wrong "$URL" --data-binary 'SELECT 1')"
ch "DROP DATABASE $db SYNC"

echo "smoke: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
