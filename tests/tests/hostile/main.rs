//! Hostile input, by boundary: each test tries to make the log say something false (or to
//! read what it must not) the way an adversary at that boundary would, on the real Kafka
//! broker and ClickHouse engine, asserts that the attempt is refused, and that other
//! organizations' events keep flowing afterwards.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod http_producers;
mod kafka_producers;
mod operators;
mod pipeline;
mod readers;
mod settings_topic;
