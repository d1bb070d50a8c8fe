//! Tenant settings: one source of truth that every instance of every service follows live.
//!
//! **Where it lives.** A compacted, single-partition Kafka topic (`audit.settings.v1`) keyed by
//! record (`org/{org_id}`, `producer_key/{id}`, `api_token/{id}`, `health/{destination}/{instance}`),
//! each value the full current record (JSON), a tombstone only to delete a health record. Every instance reads the topic from the beginning
//! at start (and reports ready only when it has reached the end it saw), then follows it, so a
//! change reaches every running instance within about a second and no extra database is needed:
//! the pipeline already depends on Kafka, the volume is tiny, and compaction keeps the topic
//! as small as the current state. One partition gives every reader the same order.
//!
//! **Trust.** Kafka ACLs let only the services write this topic; in addition every record is
//! authenticated by the service that wrote it ([`auth`]: an HMAC in a header, tombstones
//! included, under `[topics] settings_keys`), and readers ignore any other record.
//!
//! **Writes** come from the gateway's operator API (and the forwarder, when it pauses a failing
//! destination): the writer waits until its own follower has applied the record, so a response
//! reflects the change (read-your-writes). Records carry a revision and every writer
//! compare-and-sets on it: readers apply a record only if it continues its key's revision
//! chain ([`ledger`]), so of two writers racing for the same revision the first in topic order
//! wins on every reader and the second learns it lost (the operator API answers 412, the
//! forwarder re-reads and re-applies its pause). The gateway re-writes a key's applied record
//! when a refused one ended up last, so compaction keeps the right one.
//!
//! **Secrets** (destination tokens, passwords, signing secrets) are sealed with AES-256-GCM
//! under an operator-provided key before they are written ([`crypto`]); the topic never holds
//! them in plain text, and the API never returns them.

pub mod auth;
pub mod crypto;
pub mod destination_config;
pub mod error;
pub mod ledger;
pub mod model;
pub mod outbound;
pub mod plans;
pub mod store;

pub use auth::SettingsAuth;
pub use crypto::{SealKeys, Sealed, SecretBox};
pub use destination_config::DestinationConfig;
pub use error::{Error, Result};
pub use model::{
    ApiTokenRecord, Destination, DestinationHealth, DestinationState, EventFormat, Filters,
    INTEGRITY_SEALED, OrgSettings, Plan, ProducerKeyRecord, SettingsRecord, SigningSecret,
};
pub use outbound::{AddressRefused, OutboundPolicy, UrlRefused};
pub use plans::{NotRetained, PlanPolicy, PlansConfig, RetentionOutOfBounds};
pub use store::{SettingsStore, SettingsView};

/// SHA-256 of a credential's secret part, hex encoded: how keys and tokens are stored.
pub fn hash_secret(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored hash in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    use subtle::ConstantTimeEq;
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buffer = vec![0u8; bytes];
    rand::fill(&mut buffer[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buffer)
}

/// A short random id with a prefix, e.g. `dst_3f9c1a7b2e4d`.
pub fn random_id(prefix: &str) -> String {
    let mut buffer = [0u8; 6];
    rand::fill(&mut buffer);
    format!("{prefix}_{}", hex::encode(buffer))
}
