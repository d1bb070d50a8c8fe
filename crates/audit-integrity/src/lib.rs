//! Tamper evidence for the audit log: the building blocks of `docs/integrity.md`.
//!
//! * [`merkle`] — the leaf of an event (`SHA-256(0x00 || bytes)`) and RFC 6962 trees, roots and
//!   audit paths over a window's leaves.
//! * [`note`] — the digest note of one organization's window: its canonical text, Ed25519
//!   signature and chaining hash.
//! * [`keys`] — signing keys (the indexer's only) and published public keys.
//! * [`check`] — verification of a chain of digests and of events against their leaves, used by
//!   the gateway's verification API. (The standalone `audit-verify` command is written
//!   separately from the document, not from this crate, so that a bug here cannot hide in both.)

pub mod check;
pub mod keys;
pub mod merkle;
pub mod note;
#[cfg(test)]
mod vectors;

pub use keys::{PublicKeys, PublishedKey, SigningKey, SigningKeys};
pub use merkle::{Hash, audit_path, leaf, root, verify_path};
pub use note::{Note, SignedDigest, digest_hash};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("digest note: {0}")]
    Note(String),
    #[error("signature: {0}")]
    Signature(String),
    #[error("key {0}")]
    Key(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
