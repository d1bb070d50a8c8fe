//! Sealing secrets at rest: AES-256-GCM with a key the operator provides.
//!
//! A sealed value is `v1.<key id>.<nonce>.<ciphertext>` (base64url). The associated data binds
//! it to where it belongs (e.g. `org_acme/dst_1/token`), so a sealed value copied into another
//! organization's record does not open. Several keys may be configured: the first seals, all
//! open, which is how the key is rotated.

use std::collections::HashMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use audit_runtime::{ConfigError, Secret};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A sealed secret as stored on the settings topic. Its `Debug` does not print the ciphertext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(…)")
    }
}

impl Sealed {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` has the form of a sealed value (`v1.<key id>.<nonce>.<ciphertext>`):
    /// what a view masks when it cannot tell a secret field by its name.
    pub fn looks_sealed(text: &str) -> bool {
        text.starts_with("v1.") && text.split('.').count() == 4
    }
}

/// The `[settings.encryption]` config: keys as `id:base64(32 bytes)`, the first one active.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealKeys {
    /// Keys as `key_id:<base64 of 32 random bytes>`; the first seals, all of them open.
    pub keys: Vec<Secret>,
}

/// Seals and opens secrets.
#[derive(Clone)]
pub struct SecretBox {
    active: String,
    ciphers: HashMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("active", &self.active)
            .finish()
    }
}

impl SecretBox {
    pub fn from_config(config: &SealKeys, section: &str) -> Result<Self, ConfigError> {
        let mut ciphers = HashMap::new();
        let mut active = None;
        for (index, entry) in config.keys.iter().enumerate() {
            let key_name = format!("{section}.keys[{index}]");
            let Some((id, key)) = entry.expose().split_once(':') else {
                return Err(ConfigError::invalid(
                    key_name,
                    "expected `key_id:<base64 32 bytes>`",
                ));
            };
            if id.is_empty()
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(ConfigError::invalid(
                    key_name,
                    "key id must be [A-Za-z0-9_-]+",
                ));
            }
            let bytes = STANDARD
                .decode(key.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(key.trim()))
                .map_err(|_| ConfigError::invalid(&key_name, "key is not valid base64"))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| ConfigError::invalid(&key_name, "key must be exactly 32 bytes"))?;
            active.get_or_insert_with(|| id.to_string());
            ciphers.insert(id.to_string(), cipher);
        }
        let Some(active) = active else {
            return Err(ConfigError::invalid(
                format!("{section}.keys"),
                "at least one encryption key is required to seal destination secrets",
            ));
        };
        Ok(Self { active, ciphers })
    }

    /// A box with one random key, for tests.
    pub fn ephemeral() -> Self {
        let key: [u8; 32] = rand::random();
        let config = SealKeys {
            keys: vec![Secret::new(format!("test:{}", STANDARD.encode(key)))],
        };
        match Self::from_config(&config, "test") {
            Ok(secret_box) => secret_box,
            Err(error) => unreachable!("a random 32-byte key is valid: {error}"),
        }
    }

    pub fn seal(&self, plaintext: &str, context: &str) -> Sealed {
        let nonce: [u8; 12] = rand::random();
        let cipher = &self.ciphers[&self.active];
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        // AES-GCM encryption fails only for inputs of gigabytes, far beyond any secret.
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        Sealed(format!(
            "v1.{}.{}.{}",
            self.active,
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(ciphertext)
        ))
    }

    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Secret> {
        let mut parts = sealed.0.split('.');
        let (Some("v1"), Some(key_id), Some(nonce), Some(ciphertext), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Error::Crypto("not a sealed value".into()));
        };
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| Error::Crypto(format!("sealed with unknown key `{key_id}`")))?;
        let nonce = URL_SAFE_NO_PAD
            .decode(nonce)
            .map_err(|_| Error::Crypto("bad nonce".into()))?;
        if nonce.len() != 12 {
            return Err(Error::Crypto("bad nonce".into()));
        }
        let ciphertext = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| Error::Crypto("bad ciphertext".into()))?;
        let payload = Payload {
            msg: &ciphertext,
            aad: context.as_bytes(),
        };
        let plaintext = cipher
            .decrypt(Nonce::from_slice(&nonce), payload)
            .map_err(|_| Error::Crypto("authentication failed (wrong key or context)".into()))?;
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| Error::Crypto("not UTF-8".into()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn seals_and_opens_bound_to_context() {
        let secret_box = SecretBox::ephemeral();
        let sealed = secret_box.seal("hec-token-123", "org_a/dst_1/token");
        assert!(!sealed.as_str().contains("hec-token-123"));
        assert_eq!(
            secret_box
                .open(&sealed, "org_a/dst_1/token")
                .expect("open")
                .expose(),
            "hec-token-123"
        );
        assert!(secret_box.open(&sealed, "org_b/dst_1/token").is_err());
        assert!(
            SecretBox::ephemeral()
                .open(&sealed, "org_a/dst_1/token")
                .is_err()
        );
        assert_ne!(
            sealed,
            secret_box.seal("hec-token-123", "org_a/dst_1/token"),
            "nonces differ"
        );
    }

    #[test]
    fn rotation_opens_with_older_keys() {
        let old = SealKeys {
            keys: vec![Secret::new(format!("k1:{}", STANDARD.encode([1u8; 32])))],
        };
        let rotated = SealKeys {
            keys: vec![
                Secret::new(format!("k2:{}", STANDARD.encode([2u8; 32]))),
                Secret::new(format!("k1:{}", STANDARD.encode([1u8; 32]))),
            ],
        };
        let sealed = SecretBox::from_config(&old, "s")
            .expect("box")
            .seal("x", "c");
        let new_box = SecretBox::from_config(&rotated, "s").expect("box");
        assert_eq!(new_box.open(&sealed, "c").expect("open").expose(), "x");
        assert!(new_box.seal("y", "c").as_str().starts_with("v1.k2."));
    }

    #[test]
    fn bad_keys_name_the_key() {
        let config = SealKeys {
            keys: vec![Secret::new("k1:c2hvcnQ=".to_string())],
        };
        let error = SecretBox::from_config(&config, "settings.encryption")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("settings.encryption.keys[0]") && error.contains("32 bytes"),
            "{error}"
        );
        let error = SecretBox::from_config(&SealKeys::default(), "settings.encryption")
            .unwrap_err()
            .to_string();
        assert!(error.contains("settings.encryption.keys"), "{error}");
    }
}
