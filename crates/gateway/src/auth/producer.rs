//! Producer API keys: `Authorization: Bearer ak_<id>_<secret>` (or `X-Api-Key`).
//! Each key is scoped to categories (and optionally organizations).

use audit_core::{AuditEvent, Catalogue};
use audit_settings::{ProducerKeyRecord, SettingsView};
use axum::http::HeaderMap;
use std::sync::Arc;

use crate::error::ApiError;

/// An authenticated producer.
#[derive(Debug, Clone)]
pub struct Producer {
    pub record: Arc<ProducerKeyRecord>,
}

pub const PREFIX: &str = "ak";

pub fn authenticate(headers: &HeaderMap, view: &SettingsView) -> Result<Producer, ApiError> {
    let credential = super::bearer_token(headers)
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .ok_or_else(|| {
            ApiError::Unauthorized("missing producer API key (Authorization: Bearer ak_…)".into())
        })?;
    let invalid = || ApiError::Unauthorized("invalid or revoked producer API key".into());
    let (key_id, secret) = super::split_credential(credential, PREFIX).ok_or_else(invalid)?;
    let record = view.producer_keys.get(key_id).ok_or_else(invalid)?;
    if record.revoked_at.is_some() || !audit_settings::secret_matches(secret, &record.secret_sha256)
    {
        return Err(invalid());
    }
    Ok(Producer {
        record: record.clone(),
    })
}

impl Producer {
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// Whether this key may publish `event`; the error names the rule that refused it.
    /// (Internal categories never reach this check: the validator refuses them to every
    /// producer; a key naming one, from before that rule, still cannot publish it.)
    pub fn check_scope(&self, event: &AuditEvent, catalogue: &Catalogue) -> Result<(), ScopeError> {
        let record = &self.record;
        if catalogue
            .category(&event.category)
            .is_some_and(|c| c.internal)
        {
            return Err(ScopeError::InternalCategory {
                category: event.category.clone(),
            });
        }
        let named = record.categories.iter().any(|c| c == &event.category);
        let wildcard = record.categories.iter().any(|c| c == "*");
        if !(named || wildcard) {
            return Err(ScopeError::Category {
                key: record.name.clone(),
                allowed: record.categories.clone(),
                category: event.category.clone(),
            });
        }
        if let Some(orgs) = &record.orgs
            && !orgs.iter().any(|org| org == &event.org_id)
        {
            return Err(ScopeError::Organization {
                key: record.name.clone(),
                allowed: orgs.clone(),
                org_id: event.org_id.clone(),
            });
        }
        Ok(())
    }
}

/// Why a producer key may not publish an event (answered as `forbidden` at `$`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("category `{category}` is internal: only the audit-log service itself writes it")]
    InternalCategory { category: String },
    #[error("key `{key}` may publish categories [{}]; `{category}` is not among them", .allowed.join(", "))]
    Category {
        key: String,
        allowed: Vec<String>,
        category: String,
    },
    #[error("key `{key}` may publish for organizations [{}]; `{org_id}` is not among them", .allowed.join(", "))]
    Organization {
        key: String,
        allowed: Vec<String>,
        org_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_refusals_name_the_rule() {
        let category = ScopeError::Category {
            key: "billing-api".into(),
            allowed: vec!["billing".into(), "authentication".into()],
            category: "admin".into(),
        };
        assert_eq!(
            category.to_string(),
            "key `billing-api` may publish categories [billing, authentication]; `admin` is not among them"
        );
        let organization = ScopeError::Organization {
            key: "billing-api".into(),
            allowed: vec!["org_a".into()],
            org_id: "org_b".into(),
        };
        assert_eq!(
            organization.to_string(),
            "key `billing-api` may publish for organizations [org_a]; `org_b` is not among them"
        );
        let internal = ScopeError::InternalCategory {
            category: "audit_log".into(),
        };
        assert_eq!(
            internal.to_string(),
            "category `audit_log` is internal: only the audit-log service itself writes it"
        );
    }
}
