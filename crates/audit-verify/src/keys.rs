//! The public keys (`docs/integrity.md`, "Keys"): the JSON of `GET /v1/integrity/keys`, which
//! the auditor keeps from a channel they trust. Digests are only ever checked against these,
//! never against keys found in the bundle being checked.
//!
//! Signatures are Ed25519 (RFC 8032, pure) over the note bytes, checked with
//! `verify_strict`, which also refuses non-canonical signatures and weak public keys: an honest
//! signer never produces them.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct KeysFile {
    keys: Vec<PublishedKey>,
}

#[derive(Debug, Deserialize)]
struct PublishedKey {
    key_id: String,
    algorithm: String,
    public_key: String,
}

/// Why a keys file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("no keys listed")]
    Empty,
    #[error("key {key_id:?}: {problem}")]
    BadKey { key_id: String, problem: KeyProblem },
}

/// What is wrong with one listed key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("algorithm {0:?} is not supported (only \"ed25519\")")]
    Algorithm(String),
    #[error("public_key is not base64: {0}")]
    NotBase64(base64::DecodeError),
    #[error("public_key has {0} bytes, not 32")]
    Length(usize),
    #[error("public_key is not an Ed25519 point")]
    NotAPoint,
    #[error("listed twice")]
    ListedTwice,
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// `key_id` is not in the auditor's keys.
    UnknownKey,
    /// The signature is not base64 of 64 bytes.
    Malformed,
    /// A well-formed signature that does not verify.
    Invalid,
}

/// The public keys by id.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: HashMap<String, VerifyingKey>,
}

impl KeyRing {
    pub fn from_json(bytes: &[u8]) -> Result<Self, KeysError> {
        let file: KeysFile = serde_json::from_slice(bytes)?;
        if file.keys.is_empty() {
            return Err(KeysError::Empty);
        }
        let mut keys = HashMap::new();
        for published in file.keys {
            let bad_key = |problem: KeyProblem| KeysError::BadKey {
                key_id: published.key_id.clone(),
                problem,
            };
            if published.algorithm != "ed25519" {
                return Err(bad_key(KeyProblem::Algorithm(published.algorithm)));
            }
            let key = decode_public_key(&published.public_key).map_err(bad_key)?;
            if keys.insert(published.key_id.clone(), key).is_some() {
                return Err(bad_key(KeyProblem::ListedTwice));
            }
        }
        Ok(Self { keys })
    }

    /// Checks an Ed25519 signature (base64) over `message` under the key named `key_id`.
    pub fn verify(
        &self,
        key_id: &str,
        message: &[u8],
        signature_base64: &str,
    ) -> Result<(), SignatureProblem> {
        let key = self.keys.get(key_id).ok_or(SignatureProblem::UnknownKey)?;
        let bytes = STANDARD
            .decode(signature_base64)
            .map_err(|_| SignatureProblem::Malformed)?;
        let signature = Signature::from_slice(&bytes).map_err(|_| SignatureProblem::Malformed)?;
        key.verify_strict(message, &signature)
            .map_err(|_| SignatureProblem::Invalid)
    }
}

fn decode_public_key(text: &str) -> Result<VerifyingKey, KeyProblem> {
    let bytes = STANDARD.decode(text).map_err(KeyProblem::NotBase64)?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| KeyProblem::Length(bytes.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyProblem::NotAPoint)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::vectors;

    fn test_keys() -> KeyRing {
        let json = format!(
            r#"{{"keys":[{{"key_id":"{}","algorithm":"ed25519","public_key":"{}"}}]}}"#,
            vectors::KEY_ID,
            vectors::PUBLIC_KEY
        );
        KeyRing::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn the_test_seed_gives_the_documented_public_key() {
        let seed: [u8; 32] = STANDARD.decode(vectors::SEED).unwrap().try_into().unwrap();
        assert_eq!(seed, std::array::from_fn(|index| index as u8 + 1));
        let public = SigningKey::from_bytes(&seed).verifying_key();
        assert_eq!(STANDARD.encode(public.as_bytes()), vectors::PUBLIC_KEY);
    }

    #[test]
    fn the_documented_signature_verifies_under_the_test_key() {
        let keys = test_keys();
        let note = vectors::NOTE.as_bytes();
        assert_eq!(keys.verify("test", note, vectors::SIGNATURE), Ok(()));
    }

    #[test]
    fn another_note_another_key_or_a_garbled_signature_do_not_verify() {
        let keys = test_keys();
        let altered = vectors::NOTE.replace("count: 3", "count: 2");
        let other_signature = STANDARD.encode([7u8; 64]);
        assert_eq!(
            keys.verify("test", altered.as_bytes(), vectors::SIGNATURE),
            Err(SignatureProblem::Invalid)
        );
        assert_eq!(
            keys.verify("k2027", vectors::NOTE.as_bytes(), vectors::SIGNATURE),
            Err(SignatureProblem::UnknownKey)
        );
        assert_eq!(
            keys.verify("test", vectors::NOTE.as_bytes(), "not base64!"),
            Err(SignatureProblem::Malformed)
        );
        assert_eq!(
            keys.verify(
                "test",
                vectors::NOTE.as_bytes(),
                &STANDARD.encode([7u8; 63])
            ),
            Err(SignatureProblem::Malformed)
        );
        assert_ne!(
            keys.verify("test", vectors::NOTE.as_bytes(), &other_signature),
            Ok(())
        );
    }

    #[test]
    fn unusable_keys_files_are_refused_naming_the_key() {
        let refused = |json: &str| KeyRing::from_json(json.as_bytes()).unwrap_err().to_string();
        assert_eq!(refused(r#"{"keys":[]}"#), "no keys listed");
        let rsa = r#"{"keys":[{"key_id":"a","algorithm":"rsa","public_key":"AAAA"}]}"#;
        assert!(refused(rsa).starts_with("key \"a\": algorithm \"rsa\""));
        let short = r#"{"keys":[{"key_id":"b","algorithm":"ed25519","public_key":"AAAA"}]}"#;
        assert_eq!(refused(short), "key \"b\": public_key has 3 bytes, not 32");
        let twice = format!(
            r#"{{"keys":[{0},{0}]}}"#,
            format_args!(
                r#"{{"key_id":"c","algorithm":"ed25519","public_key":"{}"}}"#,
                vectors::PUBLIC_KEY
            )
        );
        assert_eq!(refused(&twice), "key \"c\": listed twice");
        assert!(refused("{\"keys\": [").contains("line 1"));
    }
}
