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
CREATE TABLE IF NOT EXISTS {database}.events
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
