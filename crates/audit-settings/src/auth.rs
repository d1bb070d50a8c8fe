//! Authenticity of the settings topic: every record is tagged by the service that wrote it.
//!
//! Whoever may produce to Kafka could otherwise write a settings record — an `api_token` with
//! a hash of their choosing, a destination pointing at their own host. Kafka ACLs are the
//! first line of defence (only the services may write the settings topic, see `deploy/kafka/`);
//! this is the second: each record carries `settings-auth: v1=<key id>.<tag>`, an HMAC-SHA256
//! over its key and value (tombstones included, as "no value") under a key only the three
//! services hold (`[topics] settings_keys`). Readers ignore a record without a valid tag
//! (`settings_records_refused_total{reason="unauthenticated"}` and an error log).
//!
//! Rotation: the first key signs, every listed key verifies. Prepend a new key on every
//! service, let every record be re-written (any change re-signs its record), then drop the
//! old key.

use audit_runtime::{ConfigError, Secret};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header carrying a record's tag.
pub const HEADER: &str = "settings-auth";

/// Shortest secret accepted, in characters.
const MIN_SECRET_CHARS: usize = 32;

/// Signs and verifies settings records.
#[derive(Clone)]
pub struct SettingsAuth {
    /// (key id, MAC); the first signs.
    keys: Vec<(String, Hmac<Sha256>)>,
}

impl std::fmt::Debug for SettingsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SettingsAuth").field("keys", &ids).finish()
    }
}

/// Why a record's tag was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("no settings-auth header")]
    Missing,
    #[error("malformed settings-auth header")]
    Malformed,
    #[error("signed with a key this service does not hold")]
    UnknownKey,
    #[error("the tag does not match the record")]
    BadTag,
}

impl SettingsAuth {
    /// Checks the `[topics]` section at `key` of a service that reads or writes settings: the
    /// topics, and the settings keys their records are authenticated with.
    pub fn check_topics(topics: &audit_kafka::TopicsConfig, key: &str) -> Result<(), ConfigError> {
        topics.validate(key)?;
        Self::from_config(&topics.settings_keys, &format!("{key}.settings_keys"))?;
        Ok(())
    }

    /// Keys as `key_id:secret` (secrets of at least 32 characters); `field` names the config
    /// key in errors, e.g. `topics.settings_keys`.
    pub fn from_config(keys: &[Secret], field: &str) -> Result<Self, ConfigError> {
        if keys.is_empty() {
            return Err(ConfigError::invalid(
                field,
                "at least one key is required: every settings record is authenticated with it (the same list on the gateway, indexer and forwarder)",
            ));
        }
        let mut parsed: Vec<(String, Hmac<Sha256>)> = Vec::with_capacity(keys.len());
        for (index, entry) in keys.iter().enumerate() {
            let name = format!("{field}[{index}]");
            let Some((id, secret)) = entry.expose().split_once(':') else {
                return Err(ConfigError::invalid(name, "expected `key_id:secret`"));
            };
            let id_ok = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !id_ok {
                return Err(ConfigError::invalid(name, "key id must be [A-Za-z0-9_-]+"));
            }
            if secret.chars().count() < MIN_SECRET_CHARS {
                return Err(ConfigError::invalid(
                    name,
                    format!("the secret must be at least {MIN_SECRET_CHARS} characters"),
                ));
            }
            if parsed.iter().any(|(existing, _)| existing == id) {
                return Err(ConfigError::invalid(
                    name,
                    format!("key id `{id}` is listed twice"),
                ));
            }
            let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
                .map_err(|_| ConfigError::invalid(&name, "unusable key"))?;
            parsed.push((id.to_string(), mac));
        }
        Ok(Self { keys: parsed })
    }

    /// One random key, for tests.
    pub fn ephemeral() -> Self {
        let secret = Secret::new(format!("test:{}", crate::random_token(32)));
        match Self::from_config(std::slice::from_ref(&secret), "test") {
            Ok(auth) => auth,
            Err(error) => unreachable!("a random 43-character secret is valid: {error}"),
        }
    }

    fn mac(mac: &Hmac<Sha256>, key: &str, value: Option<&[u8]>) -> Hmac<Sha256> {
        let mut mac = mac.clone();
        mac.update(b"audit-settings/v1\0");
        mac.update(key.as_bytes());
        mac.update(b"\0");
        match value {
            Some(value) => {
                mac.update(b"\x01");
                mac.update(value);
            }
            None => mac.update(b"\x00"),
        }
        mac
    }

    /// The header value for the record `key` = `value` (`None`: a tombstone).
    pub fn sign(&self, key: &str, value: Option<&[u8]>) -> String {
        let (id, mac) = &self.keys[0];
        let tag = Self::mac(mac, key, value).finalize().into_bytes();
        format!("v1={id}.{}", STANDARD_NO_PAD.encode(tag))
    }

    /// Whether `header` is a valid tag of the record `key` = `value` under one of the keys
    /// (constant-time comparison of the full tag).
    pub fn verify(
        &self,
        key: &str,
        value: Option<&[u8]>,
        header: Option<&[u8]>,
    ) -> Result<(), Unauthenticated> {
        let header = header.ok_or(Unauthenticated::Missing)?;
        let rest = header
            .strip_prefix(b"v1=")
            .ok_or(Unauthenticated::Malformed)?;
        let dot = rest
            .iter()
            .position(|byte| *byte == b'.')
            .ok_or(Unauthenticated::Malformed)?;
        let (id, tag) = (&rest[..dot], &rest[dot + 1..]);
        let tag = STANDARD_NO_PAD
            .decode(tag)
            .map_err(|_| Unauthenticated::Malformed)?;
        let (_, mac) = self
            .keys
            .iter()
            .find(|(known, _)| known.as_bytes() == id)
            .ok_or(Unauthenticated::UnknownKey)?;
        Self::mac(mac, key, value)
            .verify_slice(&tag)
            .map_err(|_| Unauthenticated::BadTag)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn auth(keys: &[&str]) -> SettingsAuth {
        let keys: Vec<Secret> = keys.iter().map(|k| Secret::new((*k).to_string())).collect();
        SettingsAuth::from_config(&keys, "topics.settings_keys").expect("keys")
    }

    const K1: &str = "k1:0123456789abcdef0123456789abcdef";
    const K2: &str = "k2:fedcba9876543210fedcba9876543210";

    #[test]
    fn records_and_tombstones_verify_only_as_signed() {
        let auth = auth(&[K1]);
        let tag = auth.sign("api_token/t1", Some(b"{\"a\":1}"));
        assert!(
            auth.verify("api_token/t1", Some(b"{\"a\":1}"), Some(tag.as_bytes()))
                .is_ok()
        );
        assert_eq!(
            auth.verify("api_token/t1", Some(b"{\"a\":2}"), Some(tag.as_bytes())),
            Err(Unauthenticated::BadTag)
        );
        assert_eq!(
            auth.verify("api_token/t2", Some(b"{\"a\":1}"), Some(tag.as_bytes())),
            Err(Unauthenticated::BadTag),
            "bound to its key"
        );
        assert_eq!(
            auth.verify("api_token/t1", None, Some(tag.as_bytes())),
            Err(Unauthenticated::BadTag),
            "a record's tag does not delete it"
        );
        let tombstone = auth.sign("org/a", None);
        assert!(
            auth.verify("org/a", None, Some(tombstone.as_bytes()))
                .is_ok()
        );
        assert_eq!(
            auth.verify("org/a", Some(b""), Some(tombstone.as_bytes())),
            Err(Unauthenticated::BadTag),
            "a tombstone differs from an empty value"
        );
        assert_eq!(
            auth.verify("org/a", None, None),
            Err(Unauthenticated::Missing)
        );
        assert_eq!(
            auth.verify("org/a", None, Some(b"v1=k1")),
            Err(Unauthenticated::Malformed)
        );
        for cut in 0..tag.len() {
            assert!(
                auth.verify(
                    "api_token/t1",
                    Some(b"{\"a\":1}"),
                    Some(&tag.as_bytes()[..cut])
                )
                .is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn the_first_key_signs_and_every_key_verifies() {
        let old = auth(&[K1]);
        let rotating = auth(&[K2, K1]);
        let by_old = old.sign("org/a", Some(b"x"));
        assert!(
            rotating
                .verify("org/a", Some(b"x"), Some(by_old.as_bytes()))
                .is_ok()
        );
        let by_new = rotating.sign("org/a", Some(b"x"));
        assert!(by_new.starts_with("v1=k2."));
        assert_eq!(
            old.verify("org/a", Some(b"x"), Some(by_new.as_bytes())),
            Err(Unauthenticated::UnknownKey)
        );
        assert_eq!(
            auth(&["k1:ffffffffffffffffffffffffffffffffffff"]).verify(
                "org/a",
                Some(b"x"),
                Some(by_old.as_bytes())
            ),
            Err(Unauthenticated::BadTag),
            "same id, other secret"
        );
    }

    #[test]
    fn bad_configuration_names_the_key() {
        for (keys, needle) in [
            (vec![], "topics.settings_keys"),
            (vec!["nocolon"], "topics.settings_keys[0]"),
            (vec!["k1:short"], "32 characters"),
            (vec!["k 1:0123456789abcdef0123456789abcdef"], "key id"),
            (vec![K1, K1], "listed twice"),
        ] {
            let keys: Vec<Secret> = keys.iter().map(|k| Secret::new((*k).to_string())).collect();
            let error = SettingsAuth::from_config(&keys, "topics.settings_keys")
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{needle}: {error}");
        }
    }
}
