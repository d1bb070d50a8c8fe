-- How each event reached the log, from its canonical JSON: `system` (written by the audit-log
-- service itself), `gateway` (published over the API with a producer key: `source` verified)
-- or `kafka` (produced straight to the topic: `source` only claimed). MATERIALIZED from `raw`,
-- so the insert path is unchanged; rows stored before the field existed read ''.
ALTER TABLE {database}.events
    ADD COLUMN IF NOT EXISTS provenance LowCardinality(String)
    MATERIALIZED JSONExtractString(raw, 'provenance') AFTER source;
