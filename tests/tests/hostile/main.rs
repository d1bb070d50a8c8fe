//! The hostile-input suite: for each boundary of the system, the worst single inputs we know
//! of, on the real Kafka broker and ClickHouse engine. Every case asserts two things: the
//! input gets a clear, bounded answer (an error, a dead letter or a parked event with its
//! reason, a failure recorded in health, a 429) — or, for an attempt to make the log say
//! something false, that it is refused — and the pipeline keeps indexing and forwarding other
//! organizations' events afterwards.
//!
//! One module per boundary:
//!
//! | module | boundary |
//! |---|---|
//! | [`backfill`] | producers sending history (HTTP and straight to Kafka), rows the storage engine refuses, a stalled indexer |
//! | [`receivers`] | what a customer's destination (SIEM, webhook) answers the forwarder and the gateway's test-event path |
//! | [`http_ingest`] | one HTTP request: bodies that never end or are too big, floods from one key, slow connections |
//! | [`import`] | a producer importing years of history: bad lines, re-sends, a second import, a stalled body |
//! | [`http_producers`] | a producer key choosing server-owned fields or the platform's own category |
//! | [`kafka_producers`] | a producer straight to Kafka backdating, claiming verification, forging internal events, sending shapes only serde would read |
//! | [`settings_topic`] | a Kafka client injecting, rewriting, deleting or replaying settings records |
//! | [`operators`] | concurrent settings writers and automatic pauses, credentials and URLs, API-token audit, stale health |
//! | [`readers`] | another application's tokens, truncated cursors, the operations endpoints, trust settings |
//! | [`read_load`] | one tenant's expensive searches and slow or abandoned exports, reads past their engine bounds |
//!
//! No test asserts timings; memory is asserted only as "did not grow by hundreds of MB".

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod backfill;
mod common;
mod http_ingest;
mod http_producers;
mod import;
mod kafka_producers;
mod operators;
mod pipeline;
mod read_load;
mod readers;
mod receivers;
mod settings_topic;
