-- One source for every schema layout (see src/migrations.rs and 0003_integrity.sql).
--@ single_node
-- Tamper evidence, packed (docs/integrity.md): one row per sealed window holding its leaves,
-- their event ids and times as parallel arrays, in leaf order. A row per leaf made sealing
-- cost as much to store as the events it covers; a row per window is a few bytes per leaf.
-- Windows sealed before this migration stay in integrity_leaves and are still read.
--
-- Like the digests, a window re-sealed after a crash that happened before its digest reached
-- Kafka replaces the unpublished one (ReplacingMergeTree on sealed_at); rows carry their
-- digest's hash, so a replaced window's leftovers are never read as its leaves.
--@ replicated
-- Tamper evidence, packed (docs/integrity.md), replicated layout: the single-node table of
-- migration 0004, replicated on every node of each shard and sharded by organization like the
-- events (cityHash64(org_id)). See migrations/0004_packed_leaves.sql for why.
--@ sharded
-- Tamper evidence, packed (docs/integrity.md), sharded layout: the single-node table of
-- migration 0004 on every shard (applied on each node by the migrations tool, no Keeper),
-- sharded by organization like the events (cityHash64(org_id)).
-- See migrations/0004_packed_leaves.sql for why.
--@ all
CREATE TABLE IF NOT EXISTS {database}.integrity_windows{local}{on_cluster}
(
    org_id          LowCardinality(String),
    seq             UInt64,
    digest_hash     String,
    sealed_at       DateTime64(3, 'UTC'),
    leaves          Array(FixedString(32)),
    ids             Array(UUID),
    occurred        Array(DateTime64(3, 'UTC'))
)
--@ single_node sharded
ENGINE = ReplacingMergeTree(sealed_at)
--@ replicated
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/integrity_windows_local', '{replica}', sealed_at)
--@ all
ORDER BY (org_id, seq)
TTL toDateTime(sealed_at) + toIntervalDay(1125);
--@ replicated sharded

CREATE TABLE IF NOT EXISTS {database}.integrity_windows{on_cluster}
AS {database}.integrity_windows_local
ENGINE = Distributed('{cluster}', {database}, integrity_windows_local, cityHash64(org_id));
