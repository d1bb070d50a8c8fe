//! The hostile-input suite: for each boundary of the system, the worst single inputs we know
//! of, on the real Kafka broker and ClickHouse engine. Every case asserts two things: the
//! input gets a clear, bounded answer (an error, a dead letter or a parked event with its
//! reason, a failure recorded in health, a 429), and the pipeline keeps indexing and
//! forwarding other organizations' events afterwards.
//!
//! One module per boundary:
//!
//! | module | boundary |
//! |---|---|
//! | [`backfill`] | producers sending history (HTTP and straight to Kafka), rows the storage engine refuses, a stalled indexer |
//! | [`receivers`] | what a customer's destination (SIEM, webhook) answers the forwarder and the gateway's test-event path |
//!
//! No test asserts timings; memory is asserted only as "did not grow by hundreds of MB".

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod backfill;
mod common;
mod receivers;
