-- One source for every schema layout (see src/migrations.rs): a `--@ <layouts>` line makes
-- the lines below it, up to the next one, part of those layouts only (`all`: every layout).
-- `{local}` is `_local` in the cluster layouts, `{on_cluster}` ` ON CLUSTER '{cluster}'` in
-- the replicated one; both are empty elsewhere.
--@ single_node
-- Tamper evidence (docs/integrity.md): the signed window digests of every organization's
-- chain, and the leaves of each window. Both hold hashes, ids and times only — never event
-- content — and outlive the rows they cover (3 years + 30 days, the longest retention plus a
-- margin), so a window stays verifiable after retention removed its events.
--
-- A window re-sealed after a crash that happened before its digest reached Kafka replaces the
-- unpublished one (ReplacingMergeTree on sealed_at); leaves carry their digest's hash, so
-- leftovers of a replaced window are never read as its leaves.
--@ replicated
-- Tamper evidence (docs/integrity.md), replicated layout: the same two tables as the single-node
-- migration 0003, replicated on every node of each shard and sharded by organization like the
-- events (cityHash64(org_id)), so an organization's digests and leaves live beside its events.
-- See migrations/0003_integrity.sql for what the columns mean and why the engine replaces.
--@ sharded
-- Tamper evidence (docs/integrity.md), sharded layout: the same two tables as the single-node
-- migration 0003, on every shard (applied on each node by the migrations tool, no Keeper) and
-- sharded by organization like the events (cityHash64(org_id)), so an organization's digests
-- and leaves live beside its events.
-- See migrations/0003_integrity.sql for what the columns mean and why the engine replaces.
--@ all
CREATE TABLE IF NOT EXISTS {database}.integrity_digests{local}{on_cluster}
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
--@ single_node sharded
ENGINE = ReplacingMergeTree(sealed_at)
--@ replicated
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/integrity_digests_local', '{replica}', sealed_at)
--@ all
ORDER BY (org_id, seq)
TTL toDateTime(sealed_at) + toIntervalDay(1125);
--@ replicated sharded

CREATE TABLE IF NOT EXISTS {database}.integrity_digests{on_cluster}
AS {database}.integrity_digests_local
ENGINE = Distributed('{cluster}', {database}, integrity_digests_local, cityHash64(org_id));
--@ all

CREATE TABLE IF NOT EXISTS {database}.integrity_leaves{local}{on_cluster}
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
--@ single_node sharded
ENGINE = ReplacingMergeTree(sealed_at)
--@ replicated
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/integrity_leaves_local', '{replica}', sealed_at)
--@ all
ORDER BY (org_id, seq, idx)
TTL toDateTime(sealed_at) + toIntervalDay(1125);
--@ replicated sharded

CREATE TABLE IF NOT EXISTS {database}.integrity_leaves{on_cluster}
AS {database}.integrity_leaves_local
ENGINE = Distributed('{cluster}', {database}, integrity_leaves_local, cityHash64(org_id));
