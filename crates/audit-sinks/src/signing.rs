//! Standard Webhooks signatures on every request to every destination.
//!
//! Headers: `webhook-id` (stable for the same batch content, so receivers can deduplicate a
//! resent batch), `webhook-timestamp` (unix seconds of this attempt) and `webhook-signature`:
//! one `v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>` per signing secret in force,
//! space-separated, so receivers keep verifying while a secret is rotated. The key of a
//! `whsec_<base64>` secret is its base64-decoded part. Secrets are kept as key bytes only and
//! never appear in `Debug` output or logs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// One opened signing secret and when it stops signing.
#[derive(Clone)]
pub struct SigningKey {
    key: Vec<u8>,
    expires_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a stored signing secret cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SigningSecretError {
    #[error("signing secret is not `whsec_` + standard base64")]
    NotBase64,
    #[error("signing secret is empty")]
    Empty,
}

impl SigningKey {
    /// Parses a `whsec_<base64>` secret (the prefix is optional, as in the reference libraries).
    pub fn parse(
        secret: &str,
        expires_at: Option<OffsetDateTime>,
    ) -> Result<Self, SigningSecretError> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SigningSecretError::NotBase64)?;
        if key.is_empty() {
            return Err(SigningSecretError::Empty);
        }
        Ok(Self { key, expires_at })
    }

    fn active_at(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_none_or(|expires| expires > now)
    }
}

/// Signs request bodies with every key in force.
#[derive(Debug, Clone, Default)]
pub struct Signer {
    keys: Vec<SigningKey>,
}

/// The three Standard Webhooks header values of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
}

impl Signer {
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self { keys }
    }

    /// Whether at least one key signs at `now`.
    pub fn has_active_key(&self, now: OffsetDateTime) -> bool {
        self.keys.iter().any(|key| key.active_at(now))
    }

    /// `request` with `body`, signed now under `message_id`: every destination's requests
    /// carry the three Standard Webhooks headers.
    pub fn signed(
        &self,
        request: reqwest::RequestBuilder,
        message_id: &str,
        body: bytes::Bytes,
    ) -> reqwest::RequestBuilder {
        let signature = self.sign(message_id, OffsetDateTime::now_utc(), &body);
        request
            .header(HEADER_ID, signature.id)
            .header(HEADER_TIMESTAMP, signature.timestamp)
            .header(HEADER_SIGNATURE, signature.signature)
            .body(body)
    }

    /// The headers for `body`, sent under `id` at `now`.
    pub fn sign(&self, id: &str, now: OffsetDateTime, body: &[u8]) -> SignatureHeaders {
        let timestamp = now.unix_timestamp().to_string();
        let signatures: Vec<String> = self
            .keys
            .iter()
            .filter(|key| key.active_at(now))
            .map(|key| format!("v1,{}", signature(&key.key, id, &timestamp, body)))
            .collect();
        SignatureHeaders {
            id: id.to_string(),
            timestamp,
            signature: signatures.join(" "),
        }
    }
}

/// `base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
pub fn signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `webhook-id` of a batch: derived from the destination and the ids of the events it
/// carries, so the same content resent (after a timeout, a crash, a retry) has the same id.
pub fn batch_message_id<'a>(
    destination_id: &str,
    event_ids: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(destination_id.as_bytes());
    for id in event_ids {
        hasher.update(b"\n");
        hasher.update(id.as_bytes());
    }
    format!("msg_{}", hex::encode(&hasher.finalize()[..16]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The test vector of PROTOCOLS.md (from the Standard Webhooks specification).
    #[test]
    fn reproduces_the_standard_webhooks_test_vector() {
        let key = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", None)
            .expect("the vector's secret parses");
        let signer = Signer::new(vec![key]);
        let now = OffsetDateTime::from_unix_timestamp(1_649_367_553).expect("timestamp");
        let headers = signer.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            now,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(headers.id, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk");
        assert_eq!(headers.timestamp, "1649367553");
        assert_eq!(
            headers.signature,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn signs_with_every_key_in_force_during_rotation() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("timestamp");
        let old = SigningKey::parse(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Some(now + time::Duration::hours(1)),
        )
        .expect("old");
        let expired = SigningKey::parse(
            "whsec_c2VjcmV0LXRoYXQtaGFzLWV4cGlyZWQtYWxyZWFkeQ==",
            Some(now - time::Duration::seconds(1)),
        )
        .expect("expired");
        let new = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", None).expect("new");
        let signer = Signer::new(vec![old, expired, new]);
        let headers = signer.sign("msg_1", now, b"[]");
        let signatures: Vec<&str> = headers.signature.split(' ').collect();
        assert_eq!(signatures.len(), 2, "{}", headers.signature);
        assert!(signatures.iter().all(|s| s.starts_with("v1,")));
        assert!(signer.has_active_key(now));
        assert!(!Signer::default().has_active_key(now));
    }

    #[test]
    fn batch_ids_are_stable_and_content_bound() {
        let first = batch_message_id("dst_1", ["a", "b"]);
        assert_eq!(first, batch_message_id("dst_1", ["a", "b"]));
        assert_ne!(first, batch_message_id("dst_2", ["a", "b"]));
        assert_ne!(first, batch_message_id("dst_1", ["a"]));
        assert_ne!(first, batch_message_id("dst_1", ["b", "a"]));
        assert!(first.starts_with("msg_"));
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let key = SigningKey::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", None).expect("key");
        assert!(!format!("{key:?}").contains("C2FV"));
        assert!(SigningKey::parse("whsec_###", None).is_err());
    }
}
