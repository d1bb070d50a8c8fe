//! The forwarder end to end, on the real Kafka broker, with the real gateway creating the
//! destinations and the fake SIEM receivers (tests/src/fakes) on the other side.
//!
//! Retry schedules are shortened through `FORWARDER__…` variables so that a 30 s outage test
//! takes about 40 s. No test asserts timings: each waits (bounded) for an outcome.
//!
//! One module per concern:
//!
//! | module | what it checks |
//! |---|---|
//! | [`routing`] | only Enterprise organizations reach their own destinations, through their filters |
//! | [`outage`] | a receiver down for 30 s; misconfigured or failing destinations paused, audited, resumed |
//! | [`dead_letter`] | a poison event dead-lettered alone, and replayed |
//! | [`vendors`] | throttling, token expiry, oversized batches, partial failures, indexer acks |
//! | [`crash`] | SIGKILL mid-stream; forwarders added and removed mid-stream |
//!
//! [`common`] holds the forwarder process and the helpers they share.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod common;
mod crash;
mod dead_letter;
mod outage;
mod routing;
mod vendors;
