//! The hostile-input suite, organized by boundary. Every case sends the worst single input we
//! could think of for its boundary and asserts two things on the real Kafka and ClickHouse:
//! the input gets a clear, bounded answer (an error status with a body, a dead letter with its
//! reason, a 429…) — or, for an attempt to make the log say something false, that it is
//! refused — and the pipeline keeps indexing (and forwarding) other organizations' events
//! afterwards.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod backfill;
mod common;
mod http_producers;
mod kafka_producers;
mod operators;
mod pipeline;
mod readers;
mod settings_topic;
