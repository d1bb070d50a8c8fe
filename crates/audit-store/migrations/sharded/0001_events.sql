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
CREATE TABLE IF NOT EXISTS {database}.events_local
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
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org_id, occurred_at, id)
TTL toDateTime(occurred_at) + toIntervalDay(retention_days)
SETTINGS
    -- Lets a retried INSERT carrying the same insert_deduplication_token be dropped whole.
    non_replicated_deduplication_window = 1000,
    -- Remove expired rows promptly (default is every 4 hours).
    merge_with_ttl_timeout = 3600;

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
CREATE TABLE IF NOT EXISTS {database}.events
AS {database}.events_local
ENGINE = Distributed('{cluster}', {database}, events_local, cityHash64(org_id));
