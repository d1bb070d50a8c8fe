#!/usr/bin/env bash
# Creates the pipeline's Kafka topics with the standard Kafka CLI (for clusters without the
# Strimzi Topic Operator; deploy/kafka/topics.yaml holds the same definitions as KafkaTopic
# resources). Idempotent: missing topics are created, existing ones get their configs set
# again; partition counts of existing topics are compared, never changed (see below).
#
# Usage: deploy/kafka/create-topics.sh [--dry-run]
# Environment:
#   BOOTSTRAP           bootstrap servers (required), e.g. kafka-0.kafka:9092
#   COMMAND_CONFIG      client properties file for TLS/SASL (passed as --command-config)
#   PARTITIONS          partitions of the events, dead-letter and retry topics (default 24)
#   REPLICATION_FACTOR  default 3
#   MIN_ISR             min.insync.replicas (default 2; use 1 with a single broker)
#   KAFKA_TOPICS        the topics CLI (default kafka-topics.sh; e.g.
#                       "deploy/local/kafka.sh run-class org.apache.kafka.tools.TopicCommand")
#   KAFKA_CONFIGS       the configs CLI (default kafka-configs.sh; e.g.
#                       "deploy/local/kafka.sh run-class org.apache.kafka.tools.ConfigCommand")
#
# Then set `[topics] create = false` on the services, with events_partitions and
# replication_factor matching these values.
set -euo pipefail

DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  "") ;;
  *)
    echo "usage: $0 [--dry-run]" >&2
    exit 2
    ;;
esac

: "${BOOTSTRAP:?set BOOTSTRAP to the bootstrap servers, e.g. BOOTSTRAP=kafka:9092}"
PARTITIONS="${PARTITIONS:-24}"
REPLICATION_FACTOR="${REPLICATION_FACTOR:-3}"
MIN_ISR="${MIN_ISR:-2}"
read -r -a TOPICS_CLI <<<"${KAFKA_TOPICS:-kafka-topics.sh}"
read -r -a CONFIGS_CLI <<<"${KAFKA_CONFIGS:-kafka-configs.sh}"

CLIENT_ARGS=(--bootstrap-server "$BOOTSTRAP")
if [[ -n ${COMMAND_CONFIG:-} ]]; then
  CLIENT_ARGS+=(--command-config "$COMMAND_CONFIG")
fi

WEEK_MS=604800000   # 7 days
MONTH_MS=2592000000 # 30 days

run() {
  if ((DRY_RUN)); then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@"
  fi
}

# The partition count of an existing topic, or nothing when it does not exist (describing a
# missing topic fails: that is the answer, not an error).
partitions_of() {
  local description
  description=$("${TOPICS_CLI[@]}" "${CLIENT_ARGS[@]}" --describe --topic "$1" 2>/dev/null) || true
  sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' <<<"$description" | head -n 1
}

# ensure_topic NAME PARTITIONS CONFIG…: create it if missing, then (re)apply its configs.
ensure_topic() {
  local name=$1 partitions=$2
  shift 2
  local configs=("$@") create_args=() existing=""
  for config in "${configs[@]}"; do
    create_args+=(--config "$config")
  done
  ((DRY_RUN)) || existing=$(partitions_of "$name")
  if [[ -z $existing ]]; then
    echo "creating $name (partitions $partitions, replication factor $REPLICATION_FACTOR)" >&2
    run "${TOPICS_CLI[@]}" "${CLIENT_ARGS[@]}" --create --if-not-exists --topic "$name" \
      --partitions "$partitions" --replication-factor "$REPLICATION_FACTOR" "${create_args[@]}"
  else
    # Adding partitions remaps keys (organizations) to partitions and breaks per-org order
    # for the messages in flight: an operator's decision, never this script's.
    if ((existing != partitions)); then
      echo "warning: $name has $existing partitions, $partitions wanted; left as it is" \
        "(raise it with: ${TOPICS_CLI[*]} --alter --topic $name --partitions N)" >&2
    fi
    echo "updating the configs of $name" >&2
  fi
  local joined
  joined=$(IFS=,; echo "${configs[*]}")
  run "${CONFIGS_CLI[@]}" "${CLIENT_ARGS[@]}" --alter --entity-type topics --entity-name "$name" \
    --add-config "$joined"
}

# Keep in step with deploy/kafka/topics.yaml and crates/audit-kafka/src/topics.rs.
ensure_topic audit.events.v1 "$PARTITIONS" \
  cleanup.policy=delete retention.ms=$WEEK_MS min.insync.replicas="$MIN_ISR" \
  message.timestamp.type=LogAppendTime
ensure_topic audit.events.dlq.v1 "$PARTITIONS" \
  cleanup.policy=delete retention.ms=$MONTH_MS min.insync.replicas="$MIN_ISR"
ensure_topic audit.forwarder.retry.v1 "$PARTITIONS" \
  cleanup.policy=delete retention.ms=$WEEK_MS min.insync.replicas="$MIN_ISR"
ensure_topic audit.integrity.v1 "$PARTITIONS" \
  cleanup.policy=delete retention.ms=97200000000 min.insync.replicas="$MIN_ISR"
ensure_topic audit.settings.v1 1 \
  cleanup.policy=compact min.compaction.lag.ms=0 segment.ms=3600000 min.insync.replicas="$MIN_ISR"

if ((!DRY_RUN)); then
  "${TOPICS_CLI[@]}" "${CLIENT_ARGS[@]}" --describe --topics-with-overrides \
    --topic 'audit\..*'
fi
