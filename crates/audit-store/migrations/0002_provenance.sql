-- One source for every schema layout (see src/migrations.rs): a `--@ <layouts>` line makes
-- the lines below it, up to the next one, part of those layouts only (`all`: every layout).
-- `{local}` is `_local` in the cluster layouts, `{on_cluster}` ` ON CLUSTER '{cluster}'` in
-- the replicated one; both are empty elsewhere.
--@ single_node
-- How each event reached the log, from its canonical JSON: `system` (written by the audit-log
-- service itself), `gateway` (published over the API with a producer key: `source` verified)
-- or `kafka` (produced straight to the topic: `source` only claimed). MATERIALIZED from `raw`,
-- so the insert path is unchanged; rows stored before the field existed read ''.
--@ replicated
-- How each event reached the log (see ../0002_provenance.sql), on the replicated tables and
-- on the Distributed table in front of them.
--@ sharded
-- How each event reached the log (see ../0002_provenance.sql), on every shard's events_local
-- and on the Distributed table in front of them. Applied on each node by the migrations tool.
--@ all
ALTER TABLE {database}.events{local}{on_cluster}
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
--@ replicated sharded
ALTER TABLE {database}.events{on_cluster}
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
