-- How each event reached the log (see ../0002_provenance.sql), on every shard's events_local
-- and on the Distributed table in front of them. Applied on each node by the migrations tool.
ALTER TABLE {database}.events_local
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
ALTER TABLE {database}.events
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
