-- One source for every schema layout (see src/migrations.rs): a `--@ <layouts>` line makes
-- the lines below it, up to the next one, part of those layouts only (`all`: every layout).
-- `{local}` is `_local` in the cluster layouts, `{on_cluster}` ` ON CLUSTER '{cluster}'` in
-- the replicated one; both are empty elsewhere.
--@ single_node
-- The audit events table. One row per event; every read goes through FINAL so that an event
-- inserted twice (a retried batch, a replayed partition, a producer retry with the same id)
-- appears exactly once in results.
--
-- Engine: ReplacingMergeTree(version). Rows with the same sorting key (org_id, occurred_at,
-- id) collapse into one. `version` is derived from `indexed_at` so the *earliest* indexed copy
-- wins: an event already returned by the arrival-ordered feed never reappears later.
--
-- ORDER BY (org_id, occurred_at, id): every read is scoped to one organization and a time
-- range, newest first; the key makes that a contiguous range read in order, and keyset
-- pagination on (occurred_at, id) a seek. The id is last so identical events collapse.
--
-- PARTITION BY month of occurred_at: TTL merges and drops work part by part; a month keeps
-- the partition count small (36 for three years) while expired months go whole.
--
-- TTL: per row, from retention_days, stamped by the indexer from the organization's
-- settings. A retention change rewrites retention_days of the organization's stored rows
-- (ALTER UPDATE), which recomputes their TTL: extending keeps old rows, shortening drops them.
--
-- Skip indexes keep the common filters fast inside an organization's range: bloom filters
-- for exact ids (actor, target, ip, event id), sets for action/category, and an n-gram bloom
-- filter over `search_text` for free-text search.
--
-- Codecs: DoubleDelta for monotonic-ish timestamps, ZSTD for text; `raw` (the canonical
-- JSON, served by the detail view and the JSON export) gets a stronger ZSTD level because
-- it is large and read rarely.
--@ replicated
-- The audit events schema for a ClickHouse cluster: shards for capacity, replicas for
-- availability. Applied by `indexer migrate` when `[clickhouse] layout = "replicated"`.
-- Same columns, codecs, TTL, sorting key and skip indexes as the single-node schema
-- (../0001_events.sql, whose comments explain them); only the distribution differs.
--
-- Placeholders: `{database}` and `{cluster}` are replaced by the migrations tool with
-- `[clickhouse] database` and `cluster`. `{shard}` and `{replica}` are left for the server:
-- they are the `<macros>` of each node, so one statement creates the right replica everywhere.
--
-- Every statement runs ON CLUSTER: it is queued in Keeper and executed by every node of the
-- cluster, so a node added later gets the tables by replaying the queue (or by running
-- `indexer migrate` again: everything is IF NOT EXISTS).
--
-- events_local (one per node): ReplicatedReplacingMergeTree(version). Replicas of a shard
-- share the Keeper path /clickhouse/tables/{shard}/{database}/events_local and copy each
-- other's parts. Replicated tables deduplicate inserted blocks natively (a block hash, or the
-- `insert_deduplication_token` the indexer sends with every batch, kept for the last
-- `replicated_deduplication_window` blocks per partition), so the single-node table's
-- `non_replicated_deduplication_window` setting is not needed here.
--@ sharded
-- The audit events schema for a sharded ClickHouse without replication: shards for capacity.
-- Applied by `indexer migrate` when `[clickhouse] layout = "sharded"`, on every node listed in
-- `shard_urls` (one server per shard). Same columns, codecs, TTL, sorting key, skip indexes
-- and table settings as the single-node schema (../0001_events.sql, whose comments explain
-- them); only the distribution differs. The production shape is the replicated layout
-- (../replicated/), which shards the same way and adds replicas; this one needs no Keeper,
-- which is what lets it run (and be tested) on the local engine.
--
-- Placeholders: `{database}` and `{cluster}` are replaced by the migrations tool. No
-- statement runs ON CLUSTER (that needs Keeper): the tool runs them on each node itself, and
-- applies retention changes to each node's events_local the same way.
--
-- events_local (one per node): the shard's own ReplacingMergeTree.
--@ all
CREATE TABLE IF NOT EXISTS {database}.events{local}{on_cluster}
(
    org_id          LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    id              UUID,
    received_at     DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    indexed_at      DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1)),
    category        LowCardinality(String),
    action          LowCardinality(String),
    outcome         LowCardinality(String),
    actor_type      LowCardinality(String),
    actor_id        String CODEC(ZSTD(1)),
    actor_name      String CODEC(ZSTD(1)),
    actor_email     String CODEC(ZSTD(1)),
    target_types    Array(LowCardinality(String)),
    target_ids      Array(String) CODEC(ZSTD(1)),
    target_names    Array(String) CODEC(ZSTD(1)),
    ip              String CODEC(ZSTD(1)),
    user_agent      String CODEC(ZSTD(1)),
    location        String CODEC(ZSTD(1)),
    request_id      String CODEC(ZSTD(1)),
    metadata        Map(String, String) CODEC(ZSTD(1)),
    source          LowCardinality(String),
    schema_version  UInt8,
    retention_days  UInt16,
    raw             String CODEC(ZSTD(3)),
    search_text     String MATERIALIZED lower(concat_ws(' ', action, actor_id, actor_name, actor_email,
                        arrayStringConcat(target_ids, ' '), arrayStringConcat(target_names, ' '),
                        ip, user_agent, location, request_id,
                        arrayStringConcat(mapKeys(metadata), ' '), arrayStringConcat(mapValues(metadata), ' ')))
                    CODEC(ZSTD(1)),
    version         UInt64 MATERIALIZED 18446744073709551615 - toUInt64(toUnixTimestamp64Milli(indexed_at)),

    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_action action TYPE set(1024) GRANULARITY 4,
    INDEX idx_category category TYPE set(64) GRANULARITY 4,
    INDEX idx_actor_id actor_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_actor_email actor_email TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_target_ids target_ids TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_ip ip TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_indexed_at indexed_at TYPE minmax GRANULARITY 1,
    INDEX idx_search search_text TYPE ngrambf_v1(3, 65536, 3, 0) GRANULARITY 4
)
--@ single_node sharded
ENGINE = ReplacingMergeTree(version)
--@ replicated
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}', version)
--@ all
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org_id, occurred_at, id)
TTL toDateTime(occurred_at) + toIntervalDay(retention_days)
SETTINGS
--@ single_node sharded
    -- Lets a retried INSERT carrying the same insert_deduplication_token be dropped whole.
    non_replicated_deduplication_window = 1000,
--@ all
    -- Remove expired rows promptly (default is every 4 hours).
    merge_with_ttl_timeout = 3600;
--@ replicated

-- events (one per node, no data of its own): the table every service reads and the indexer
-- inserts into, under the same name as on a single node.
--
-- Sharding key cityHash64(org_id): all rows of one organization live on one shard. That is
-- what keeps the single-node semantics correct on a cluster:
-- * FINAL collapses duplicates only among rows of the same shard; an event's copies (retried
--   batches, replays) share its org_id, so they always meet on the same shard.
-- * Every read filters by org_id, so a query touches one shard's data (the other shards
--   answer from their primary key at once), and keyset pagination stays ordered.
-- * A retention change (`ALTER TABLE events_local ON CLUSTER … UPDATE retention_days …
--   WHERE org_id = …`) rewrites rows of one shard; the TTL then expires them there.
-- The cost: a very large organization is bound to one shard's capacity. Add shards for the
-- number of organizations, replicas for availability and read throughput.
--
-- Inserts through this table are split by the sharding key and forwarded to one replica of
-- each shard, which replicates them. Give the indexer's ClickHouse user
-- `distributed_foreground_insert = 1` so an INSERT returns only once the shards have the
-- rows (the indexer commits Kafka offsets after that); the batch's
-- insert_deduplication_token travels with each shard's part of the block.
--@ sharded

-- events (one per node, no data of its own): the table every service reads and the indexer
-- inserts into, under the same name as on a single node.
--
-- Sharding key cityHash64(org_id), as in the replicated layout: all rows of an organization
-- live on one shard, so every copy of an event (a retried batch, a re-read after a crash or
-- a rebalance) meets its other copies on the same shard, where FINAL and merges collapse them.
-- Reads filter by org_id, and the services set optimize_skip_unused_shards, so a read goes to
-- the owning shard only (and keeps answering while another shard is down).
--
-- The indexer inserts with distributed_foreground_insert = 1 (set by the store itself on
-- cluster layouts): an INSERT returns only once every shard stored its rows, and fails if a
-- shard is down — then nothing of the batch is committed in Kafka and the whole batch is
-- re-read and inserted again (the rows a healthy shard already took collapse with their new
-- copies). The asynchronous mode (rows queued on the receiving node's disk for a shard that
-- is down) is not used: the queue is one node's unreplicated disk, and the Kafka offsets would
-- be committed before the rows reached their shard.
--@ replicated sharded
CREATE TABLE IF NOT EXISTS {database}.events{on_cluster}
AS {database}.events_local
ENGINE = Distributed('{cluster}', {database}, events_local, cityHash64(org_id));
