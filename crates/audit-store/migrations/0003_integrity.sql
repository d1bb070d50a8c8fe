-- Tamper evidence (docs/integrity.md): the signed window digests of every organization's
-- chain, and the leaves of each window. Both hold hashes, ids and times only — never event
-- content — and outlive the rows they cover (3 years + 30 days, the longest retention plus a
-- margin), so a window stays verifiable after retention removed its events.
--
-- A window re-sealed after a crash that happened before its digest reached Kafka replaces the
-- unpublished one (ReplacingMergeTree on sealed_at); leaves carry their digest's hash, so
-- leftovers of a replaced window are never read as its leaves.
CREATE TABLE IF NOT EXISTS {database}.integrity_digests
(
    org_id          LowCardinality(String),
    seq             UInt64,
    partition       Int32,
    first_offset    Int64,
    end_offset      Int64,
    sealed_at       DateTime64(3, 'UTC'),
    count           UInt64,
    retention_days  UInt16,
    hash            String,
    note            String,
    key_id          LowCardinality(String),
    signature       String
)
ENGINE = ReplacingMergeTree(sealed_at)
ORDER BY (org_id, seq)
TTL toDateTime(sealed_at) + toIntervalDay(1125);

CREATE TABLE IF NOT EXISTS {database}.integrity_leaves
(
    org_id          LowCardinality(String),
    seq             UInt64,
    idx             UInt32,
    digest_hash     String,
    leaf            FixedString(32),
    id              UUID,
    occurred_at     DateTime64(3, 'UTC'),
    sealed_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(sealed_at)
ORDER BY (org_id, seq, idx)
TTL toDateTime(sealed_at) + toIntervalDay(1125);
