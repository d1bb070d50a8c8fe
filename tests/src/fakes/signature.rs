//! A Standard Webhooks verifier, written independently of the forwarder's signer (from the
//! specification), as a receiver would: the three headers present, the timestamp within the
//! tolerance, and at least one `v1,` signature matching one of the receiver's secrets
//! (compared in constant time).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;

#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<Vec<u8>>,
    tolerance: Duration,
}

/// A verified request's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub webhook_id: String,
    pub timestamp: i64,
    /// How many `v1,` signatures the request carried (several during a secret rotation).
    pub signatures: usize,
}

impl Verifier {
    /// `secrets` as `whsec_<base64>`; the reference libraries' tolerance is 5 minutes.
    pub fn new(secrets: &[&str]) -> Self {
        let keys = secrets
            .iter()
            .map(|secret| {
                STANDARD
                    .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                    .expect("a whsec_ secret")
            })
            .collect();
        Self {
            keys,
            tolerance: Duration::from_secs(300),
        }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Verified, String> {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or_else(|| format!("missing {name}"))
        };
        let id = text("webhook-id")?;
        let timestamp_text = text("webhook-timestamp")?;
        let signatures = text("webhook-signature")?;
        let timestamp: i64 = timestamp_text
            .parse()
            .map_err(|_| "webhook-timestamp is not a number".to_string())?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if (now - timestamp).unsigned_abs() > self.tolerance.as_secs() {
            return Err(format!(
                "timestamp {timestamp} outside the tolerance (now {now})"
            ));
        }
        let mut count = 0;
        let mut matched = false;
        for signature in signatures.split(' ') {
            let Some(encoded) = signature.strip_prefix("v1,") else {
                continue;
            };
            count += 1;
            let Ok(expected) = STANDARD.decode(encoded) else {
                continue;
            };
            for key in &self.keys {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp_text.as_bytes());
                mac.update(b".");
                mac.update(body);
                if mac.verify_slice(&expected).is_ok() {
                    matched = true;
                }
            }
        }
        if !matched {
            return Err(format!("no valid v1 signature among {count}"));
        }
        Ok(Verified {
            webhook_id: id,
            timestamp,
            signatures: count,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn accepts_the_specification_vector_shape_and_refuses_tampering() {
        let verifier = Verifier::new(&["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]);
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .to_string();
        let key = STANDARD.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("msg_1.{now}.").as_bytes());
        mac.update(body);
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "msg_1".parse().unwrap());
        headers.insert("webhook-timestamp", now.parse().unwrap());
        headers.insert(
            "webhook-signature",
            format!("v1,bm9wZQ== v1,{signature}").parse().unwrap(),
        );
        let verified = verifier.verify(&headers, body).unwrap();
        assert_eq!(verified.signatures, 2);
        assert!(verifier.verify(&headers, b"tampered").is_err());
        headers.insert("webhook-timestamp", "1649367553".parse().unwrap());
        assert!(verifier.verify(&headers, body).is_err(), "stale timestamp");
    }
}
