#!/usr/bin/env bash
# Grants the pipeline's Kafka ACLs with the standard Kafka CLI (for clusters without the
# Strimzi User Operator; deploy/kafka/users.yaml holds the same ACLs as KafkaUser resources).
# Least privilege: each service gets what it needs, product producers may write the events
# topic and nothing else, operators' tooling may read. Idempotent (adding an existing ACL is a
# no-op). The broker must authenticate clients (SASL or mTLS) and run an authorizer
# (KRaft: authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer),
# otherwise ACLs are not enforced.
#
# Usage: deploy/kafka/create-acls.sh [--dry-run]
# Environment:
#   BOOTSTRAP        bootstrap servers (required)
#   COMMAND_CONFIG   client properties of an admin principal (passed as --command-config)
#   GATEWAY_PRINCIPAL, INDEXER_PRINCIPAL, FORWARDER_PRINCIPAL, OPERATOR_PRINCIPAL
#                    defaults User:audit-gateway, User:audit-indexer, User:audit-forwarder,
#                    User:audit-operator
#   PRODUCER_PRINCIPALS  space-separated principals of product teams producing straight to
#                    Kafka (default User:audit-producer-billing)
#   KAFKA_ACLS       the ACL CLI (default kafka-acls.sh; e.g.
#                    "deploy/local/kafka.sh run-class org.apache.kafka.tools.AclCommand")
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
GATEWAY="${GATEWAY_PRINCIPAL:-User:audit-gateway}"
INDEXER="${INDEXER_PRINCIPAL:-User:audit-indexer}"
FORWARDER="${FORWARDER_PRINCIPAL:-User:audit-forwarder}"
OPERATOR="${OPERATOR_PRINCIPAL:-User:audit-operator}"
read -r -a PRODUCERS <<<"${PRODUCER_PRINCIPALS:-User:audit-producer-billing}"
read -r -a ACLS_CLI <<<"${KAFKA_ACLS:-kafka-acls.sh}"

CLIENT_ARGS=(--bootstrap-server "$BOOTSTRAP")
if [[ -n ${COMMAND_CONFIG:-} ]]; then
  CLIENT_ARGS+=(--command-config "$COMMAND_CONFIG")
fi

# Keep in step with deploy/kafka/topics.yaml.
EVENTS=audit.events.v1
DEAD_LETTER=audit.events.dlq.v1
RETRY=audit.forwarder.retry.v1
SETTINGS=audit.settings.v1
DIGESTS=audit.integrity.v1

run() {
  if ((DRY_RUN)); then
    printf '%q ' "$@"
    printf '\n'
  else
    "$@" >/dev/null
  fi
}

# allow PRINCIPAL RESOURCE-ARGS… -- OPERATION…
allow() {
  local principal=$1
  shift
  local resource=() operations=()
  while [[ $1 != -- ]]; do
    resource+=("$1")
    shift
  done
  shift
  for operation in "$@"; do
    operations+=(--operation "$operation")
  done
  echo "allow $principal ${resource[*]}: $*" >&2
  run "${ACLS_CLI[@]}" "${CLIENT_ARGS[@]}" --add --allow-principal "$principal" \
    "${resource[@]}" "${operations[@]}"
}

# The gateway: ingest and its own audit_log events; tenant settings (operator API).
allow "$GATEWAY" --topic "$EVENTS" -- Write Describe DescribeConfigs
allow "$GATEWAY" --topic "$SETTINGS" -- Read Write Describe
allow "$GATEWAY" --group gateway-settings-reader -- Read
# Follows the published integrity digests (verification against the anchor), read only.
allow "$GATEWAY" --topic "$DIGESTS" -- Read Describe
allow "$GATEWAY" --group gateway-digests-reader -- Read
allow "$GATEWAY" --cluster -- IdempotentWrite

# The indexer: reads events and settings, writes dead letters. Never writes settings.
allow "$INDEXER" --topic "$EVENTS" -- Read Describe DescribeConfigs
allow "$INDEXER" --group indexer -- Read
allow "$INDEXER" --topic "$DEAD_LETTER" -- Write Describe
allow "$INDEXER" --topic "$SETTINGS" -- Read Describe
allow "$INDEXER" --group indexer-settings-reader -- Read
# Publishes the integrity digests; writes audit_log.integrity.sealed events for
# organizations whose destinations ask for digests.
allow "$INDEXER" --topic "$DIGESTS" -- Write Describe
allow "$INDEXER" --topic "$EVENTS" -- Write
allow "$INDEXER" --cluster -- IdempotentWrite

# The forwarder: reads events, writes its own audit_log events (pauses); the retry and
# dead-letter topics (replay reads dead letters); pauses and health on the settings topic.
allow "$FORWARDER" --topic "$EVENTS" -- Read Write Describe DescribeConfigs
allow "$FORWARDER" --group forwarder -- Read
allow "$FORWARDER" --topic "$RETRY" -- Read Write Describe
allow "$FORWARDER" --group forwarder-retry -- Read
allow "$FORWARDER" --topic "$DEAD_LETTER" -- Read Write Describe
allow "$FORWARDER" --group forwarder-replay-reader -- Read
allow "$FORWARDER" --topic "$SETTINGS" -- Read Write Describe
allow "$FORWARDER" --group forwarder-settings-reader -- Read
allow "$FORWARDER" --cluster -- IdempotentWrite

# Product teams producing straight to Kafka: the events topic, write only.
for producer in "${PRODUCERS[@]}"; do
  allow "$producer" --topic "$EVENTS" -- Write Describe
  allow "$producer" --cluster -- IdempotentWrite
done

# Operators' tooling: read everything of the pipeline (groups audit-ops-*), write nothing.
allow "$OPERATOR" --topic audit. --resource-pattern-type prefixed -- Read Describe DescribeConfigs
allow "$OPERATOR" --group audit-ops- --resource-pattern-type prefixed -- Read

if ((!DRY_RUN)); then
  "${ACLS_CLI[@]}" "${CLIENT_ARGS[@]}" --list --topic "$EVENTS"
fi
