//! Signing keys (held by the indexer only) and the public keys every verifier uses.
//!
//! Configuration: `"<key_id>:<base64 of a 32-byte Ed25519 seed>"`, newest first. The first key
//! signs; every key stays published so digests signed before a rotation keep verifying.
//! Public keys: `"<key_id>:<base64 of the 32-byte public key>"`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One signing key and its id.
pub struct SigningKey {
    pub key_id: String,
    pub(crate) key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, ***)", self.key_id)
    }
}

/// The configured signing keys, newest (signing) first.
#[derive(Debug)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl SigningKeys {
    /// Parses `key_id:base64(seed)` entries; the error names the entry.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        if entries.is_empty() {
            return Err(Error::Key("at least one signing key is needed".into()));
        }
        let mut keys = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let (key_id, seed) = split_entry(entry.as_ref(), index)?;
            let seed: [u8; 32] = decode_32(seed).ok_or_else(|| {
                Error::Key(format!("[{index}]: the seed must be base64 of 32 bytes"))
            })?;
            keys.push(SigningKey {
                key_id: key_id.to_string(),
                key: ed25519_dalek::SigningKey::from_bytes(&seed),
            });
        }
        Ok(Self { keys })
    }

    /// The key new digests are signed with.
    pub fn current(&self) -> &SigningKey {
        // `parse` refuses an empty list.
        &self.keys[0]
    }

    /// Every key's public half, for publication.
    pub fn public_keys(&self) -> PublicKeys {
        PublicKeys {
            keys: self
                .keys
                .iter()
                .map(|key| (key.key_id.clone(), key.key.verifying_key()))
                .collect(),
        }
    }
}

/// Public keys by id.
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: BTreeMap<String, VerifyingKey>,
}

/// One published key (`GET /v1/integrity/keys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    pub key_id: String,
    pub algorithm: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
}

impl PublicKeys {
    /// Parses `key_id:base64(public key)` entries.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let mut keys = BTreeMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let (key_id, public) = split_entry(entry.as_ref(), index)?;
            let bytes = decode_32(public).ok_or_else(|| {
                Error::Key(format!(
                    "[{index}]: the public key must be base64 of 32 bytes"
                ))
            })?;
            let key = VerifyingKey::from_bytes(&bytes)
                .map_err(|_| Error::Key(format!("[{index}]: not an Ed25519 public key")))?;
            keys.insert(key_id.to_string(), key);
        }
        Ok(Self { keys })
    }

    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys as published.
    pub fn published(&self) -> Vec<PublishedKey> {
        self.keys
            .iter()
            .map(|(key_id, key)| PublishedKey {
                key_id: key_id.clone(),
                algorithm: "ed25519".into(),
                public_key: STANDARD.encode(key.as_bytes()),
            })
            .collect()
    }

    /// The keys in configuration form (`key_id:base64`), e.g. for the gateway's config.
    pub fn entries(&self) -> Vec<String> {
        self.published()
            .into_iter()
            .map(|key| format!("{}:{}", key.key_id, key.public_key))
            .collect()
    }
}

fn split_entry(entry: &str, index: usize) -> Result<(&str, &str)> {
    let (key_id, value) = entry
        .split_once(':')
        .ok_or_else(|| Error::Key(format!("[{index}]: expected `key_id:base64`")))?;
    let valid_id = !key_id.is_empty()
        && key_id.len() <= 64
        && key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_id {
        return Err(Error::Key(format!(
            "[{index}]: a key id is 1–64 letters, digits, `-`, `_` or `.`"
        )));
    }
    Ok((key_id, value))
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "k1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

    #[test]
    fn the_first_key_signs_and_all_are_published() {
        let keys = SigningKeys::parse(&["k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=", SEED])
            .expect("keys");
        assert_eq!(keys.current().key_id, "k2");
        let public = keys.public_keys();
        assert_eq!(public.published().len(), 2);
        let reparsed = PublicKeys::parse(&public.entries()).expect("round trip");
        assert_eq!(reparsed.published(), public.published());
    }

    #[test]
    fn bad_entries_name_their_position() {
        for bad in [
            "nocolon",
            "k1:short",
            ":AQID",
            "bad id:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        ] {
            let error = SigningKeys::parse(&[SEED, bad]).unwrap_err().to_string();
            assert!(error.contains("[1]"), "{bad}: {error}");
        }
        assert!(SigningKeys::parse::<&str>(&[]).is_err());
        let debug = format!("{:?}", SigningKeys::parse(&[SEED]).expect("keys"));
        assert!(!debug.contains("AQID"), "{debug}");
    }
}
