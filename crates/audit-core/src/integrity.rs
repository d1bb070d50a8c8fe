//! Integrity tags on the events topic: proof that a message was validated by the gateway.
//!
//! The gateway validates every event it accepts and writes its canonical JSON. Consumers
//! (indexer, forwarder) must validate messages that product teams produce *straight* to Kafka,
//! but re-validating the gateway's own messages is wasted work — and a header saying "from
//! the gateway" could be set by anyone. So the gateway adds `audit-integrity: v1=<tag>`, an
//! HMAC-SHA256 of the message value under a key shared by the gateway and the consumers.
//! A consumer that verifies the tag decodes the canonical event directly; any other message
//! (no tag, wrong tag, no key configured) goes through the full validator.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The message header carrying the tag.
pub const HEADER: &str = "audit-integrity";

/// Signs and verifies integrity tags with one shared key.
#[derive(Clone)]
pub struct IntegrityKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrityKey(***)")
    }
}

impl IntegrityKey {
    /// A key from the shared secret (at least 32 bytes of text).
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < 32 {
            return Err("must be at least 32 characters".into());
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .map_err(|error| error.to_string())?;
        Ok(Self { mac })
    }

    /// The header value for a message value.
    pub fn tag(&self, payload: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(payload);
        format!("v1={}", STANDARD_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// Whether `header` is this key's tag of `payload` (constant-time comparison).
    pub fn verify(&self, payload: &[u8], header: &[u8]) -> bool {
        let Some(tag) = header.strip_prefix(b"v1=") else {
            return false;
        };
        let Ok(tag) = STANDARD_NO_PAD.decode(tag) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.verify_slice(&tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tags_verify_only_the_same_payload_and_key() {
        let key = IntegrityKey::new("0123456789abcdef0123456789abcdef").expect("key");
        let tag = key.tag(b"{\"id\":1}");
        assert!(key.verify(b"{\"id\":1}", tag.as_bytes()));
        assert!(!key.verify(b"{\"id\":2}", tag.as_bytes()));
        let other = IntegrityKey::new("fedcba9876543210fedcba9876543210").expect("key");
        assert!(!other.verify(b"{\"id\":1}", tag.as_bytes()));
        assert!(!key.verify(b"{\"id\":1}", b"v1=forged"));
        assert!(!key.verify(b"{\"id\":1}", b""));
        assert!(IntegrityKey::new("short").is_err());
    }
}
