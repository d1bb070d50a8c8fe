//! Kafka plumbing shared by the gateway, the indexer and the forwarder.
//!
//! Delivery rules that every service relies on live here, in one place:
//! * producers are idempotent with `acks=all` and key messages by organization with the
//!   Java-compatible `murmur2_random` partitioner (product teams may produce with either client);
//! * consumers never auto-commit nor auto-store offsets: offsets move only after the downstream
//!   (ClickHouse, a destination, a retry topic) acknowledged;
//! * dead letters keep the original key and bytes and say why in headers;
//! * a message of the events topic is decoded by one set of rules ([`decode`]);
//! * every group consumer is one polling thread with one loop and one rebalance protocol
//!   ([`consumer`]), its offsets kept by one tracker ([`offsets`]).

pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod decode;
pub mod error;
pub mod events;
pub mod offsets;
pub mod probe;
pub mod stats;
pub mod topics;

pub use config::{ConsumerTuning, KafkaConfig, ProducerTuning};
pub use dead_letter::{DeadLetter, DeadLetterWriter, header_str};
pub use decode::{DecodeError, Decoded, EventDecoder, EventHead, MessageParts, Path, TaggedRead};
pub use error::{Error, Result};
pub use events::{broker_time, event_headers};
pub use probe::spawn_kafka_probe;
pub use stats::{StatsContext, enable_statistics, log_client_error};
pub use topics::{TopicsConfig, ensure_topics};
