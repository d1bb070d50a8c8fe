//! Operator tokens: platform staff, configured as SHA-256 hashes in `[operators]`.

use axum::http::HeaderMap;

use crate::config::OperatorToken;
use crate::error::ApiError;

/// An authenticated operator.
#[derive(Debug, Clone)]
pub struct Operator {
    pub name: String,
}

pub fn authenticate(headers: &HeaderMap, tokens: &[OperatorToken]) -> Result<Operator, ApiError> {
    let token = super::bearer_token(headers).ok_or_else(|| {
        ApiError::Unauthorized("missing operator token (Authorization: Bearer …)".into())
    })?;
    // Check every configured token (constant-time each) so timing does not reveal which matched.
    let mut matched = None;
    for candidate in tokens {
        if audit_settings::secret_matches(token, &candidate.sha256.to_ascii_lowercase()) {
            matched = Some(candidate.name.clone());
        }
    }
    matched
        .map(|name| Operator { name })
        .ok_or_else(|| ApiError::Unauthorized("invalid operator token".into()))
}
