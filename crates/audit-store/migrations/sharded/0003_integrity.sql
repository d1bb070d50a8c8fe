-- Tamper evidence (docs/integrity.md), sharded layout: the same two tables as the single-node
-- migration 0003, on every shard (applied on each node by the migrations tool, no Keeper) and
-- sharded by organization like the events (cityHash64(org_id)), so an organization's digests
-- and leaves live beside its events.
-- See migrations/0003_integrity.sql for what the columns mean and why the engine replaces.
CREATE TABLE IF NOT EXISTS {database}.integrity_digests_local
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

CREATE TABLE IF NOT EXISTS {database}.integrity_digests
AS {database}.integrity_digests_local
ENGINE = Distributed('{cluster}', {database}, integrity_digests_local, cityHash64(org_id));

CREATE TABLE IF NOT EXISTS {database}.integrity_leaves_local
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

CREATE TABLE IF NOT EXISTS {database}.integrity_leaves
AS {database}.integrity_leaves_local
ENGINE = Distributed('{cluster}', {database}, integrity_leaves_local, cityHash64(org_id));
