//! Who is calling. Three kinds of callers, three kinds of credentials, never interchangeable:
//! * [`producer`]: product services publishing events (producer API keys, `ak_…`);
//! * [`operator`]: platform staff changing tenant settings (operator tokens from config);
//! * [`user`]: Owners/Admins reading their organization's log (JWTs from the identity
//!   provider) and Enterprise read-only API tokens (`at_…`).
//!
//! Credentials are compared by SHA-256 in constant time and never logged.

pub mod operator;
pub mod producer;
pub mod user;

use audit_settings::{ApiTokenRecord, ProducerKeyRecord};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use time::OffsetDateTime;

/// The bearer token of a request, if any.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Splits `<prefix>_<12 hex id>_<secret>` into id and secret.
pub fn split_credential<'a>(credential: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = credential.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, secret) = rest.split_at_checked(12)?;
    let secret = secret.strip_prefix('_')?;
    let valid_id = id.chars().all(|c| c.is_ascii_hexdigit());
    (valid_id && secret.len() >= 16).then_some((id, secret))
}

/// A new credential `<prefix>_<id>_<secret>`: returns (id, full credential, stored hash).
pub fn new_credential(prefix: &str) -> (String, String, String) {
    let id = audit_settings::random_id("x")
        .trim_start_matches("x_")
        .to_string();
    let secret = audit_settings::random_token(32);
    let hash = audit_settings::hash_secret(&secret);
    (id.clone(), format!("{prefix}_{id}_{secret}"), hash)
}

/// The stored record of a credential that can be revoked (producer keys, API tokens).
pub trait Revocable: Clone {
    fn revoked_at(&mut self) -> &mut Option<OffsetDateTime>;
    fn revision(&mut self) -> &mut u64;
}

impl Revocable for ProducerKeyRecord {
    fn revoked_at(&mut self) -> &mut Option<OffsetDateTime> {
        &mut self.revoked_at
    }

    fn revision(&mut self) -> &mut u64 {
        &mut self.revision
    }
}

impl Revocable for ApiTokenRecord {
    fn revoked_at(&mut self) -> &mut Option<OffsetDateTime> {
        &mut self.revoked_at
    }

    fn revision(&mut self) -> &mut u64 {
        &mut self.revision
    }
}

/// `record` revoked now, at its next revision, to be stored; `None` when it already is
/// (revoking is idempotent).
pub fn revoked<R: Revocable>(record: &R) -> Option<R> {
    let mut revoked = record.clone();
    if revoked.revoked_at().is_some() {
        return None;
    }
    *revoked.revoked_at() = Some(OffsetDateTime::now_utc());
    *revoked.revision() += 1;
    Some(revoked)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn credentials_round_trip() {
        let (id, full, hash) = new_credential("ak");
        let (parsed_id, secret) = split_credential(&full, "ak").expect("parse");
        assert_eq!(parsed_id, id);
        assert!(audit_settings::secret_matches(secret, &hash));
        assert!(split_credential(&full, "at").is_none());
        assert!(split_credential("ak_short", "ak").is_none());
        assert!(split_credential("ak_zzzzzzzzzzzz_0123456789abcdef0", "ak").is_none());
    }
}
