-- How each event reached the log (see ../0002_provenance.sql), on the replicated tables and
-- on the Distributed table in front of them.
ALTER TABLE {database}.events_local ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
ALTER TABLE {database}.events ON CLUSTER '{cluster}'
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
