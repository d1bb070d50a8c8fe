//! The records on the settings topic. Each value is a whole record (not a patch), so a reader
//! that sees only the latest record per key (after compaction) has the full state.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::crypto::Sealed;
use crate::destination_config::DestinationConfig;

/// One record on the settings topic, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SettingsRecord {
    Org(OrgSettings),
    ProducerKey(ProducerKeyRecord),
    ApiToken(ApiTokenRecord),
    DestinationHealth(DestinationHealth),
}

impl SettingsRecord {
    /// The record's revision, for the kinds that are compare-and-set (every kind but
    /// destination health, which only its own forwarder instance writes).
    pub fn revision(&self) -> Option<u64> {
        match self {
            SettingsRecord::Org(org) => Some(org.revision),
            SettingsRecord::ProducerKey(key) => Some(key.revision),
            SettingsRecord::ApiToken(token) => Some(token.revision),
            SettingsRecord::DestinationHealth(_) => None,
        }
    }

    /// The record's key on the topic (compaction keeps the latest value per key).
    pub fn key(&self) -> String {
        match self {
            SettingsRecord::Org(org) => org_key(&org.org_id),
            SettingsRecord::ProducerKey(key) => producer_key_key(&key.key_id),
            SettingsRecord::ApiToken(token) => api_token_key(&token.token_id),
            SettingsRecord::DestinationHealth(health) => {
                health_key(&health.destination_id, &health.instance)
            }
        }
    }
}

pub fn health_key(destination_id: &str, instance: &str) -> String {
    format!("health/{destination_id}/{instance}")
}

/// Whether a tombstone may delete `key`: only health records are ever deleted (a forwarder
/// instance's, on shutdown or once stale); every other kind is kept (revoked, disabled) so
/// that its revision chain cannot be restarted by deleting it.
pub fn deletable(key: &str) -> bool {
    key.starts_with("health/")
}

/// One forwarder instance's view of one destination's health, published (at most every few
/// seconds, when it changed) so the operator API can show it for the whole fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationHealth {
    pub org_id: String,
    pub destination_id: String,
    /// The forwarder instance reporting.
    pub instance: String,
    /// `healthy`, `retrying` or `paused`.
    pub state: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_failure_at: Option<OffsetDateTime>,
    /// HTTP status (or `timeout`, `connect`) of the last failure.
    #[serde(default)]
    pub last_failure_status: Option<String>,
    /// First bytes of the last failure's response body (never contains our secrets).
    #[serde(default)]
    pub last_failure_excerpt: Option<String>,
    pub consecutive_failures: u64,
    /// Events waiting for this destination on this instance (memory + retry topic).
    pub backlog: u64,
    pub delivered_total: u64,
    pub dead_lettered_total: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the record stops counting (its instance stopped reporting): the operator view
    /// ignores it after that, and forwarders delete it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

impl DestinationHealth {
    /// Whether the record is past its expiry at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

pub fn org_key(org_id: &str) -> String {
    format!("org/{org_id}")
}

pub fn producer_key_key(key_id: &str) -> String {
    format!("producer_key/{key_id}")
}

pub fn api_token_key(token_id: &str) -> String {
    format!("api_token/{token_id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Plan {
    #[default]
    Free,
    Team,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Team => "team",
            Plan::Enterprise => "enterprise",
        }
    }
}

/// One organization's settings. An organization without a record is on the free plan with
/// the free plan's default retention and no destinations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    pub org_id: String,
    pub plan: Plan,
    /// Custom retention in days; `None` means the plan's default.
    #[serde(default)]
    pub retention_days: Option<u16>,
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// Incremented by every change; the API's ETag.
    pub revision: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Who made the last change (operator token name or user id).
    pub updated_by: String,
}

impl OrgSettings {
    pub fn new(org_id: &str, now: OffsetDateTime, by: &str) -> Self {
        Self {
            org_id: org_id.to_string(),
            plan: Plan::Free,
            retention_days: None,
            destinations: Vec::new(),
            revision: 0,
            updated_at: now,
            updated_by: by.to_string(),
        }
    }

    pub fn destination(&self, id: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.id == id)
    }

    pub fn destination_mut(&mut self, id: &str) -> Option<&mut Destination> {
        self.destinations.iter_mut().find(|d| d.id == id)
    }
}

/// A SIEM destination of an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    pub id: String,
    pub name: String,
    /// Set by operators; a plan downgrade turns it off (the destination is kept).
    pub enabled: bool,
    /// Why the destination is disabled or paused, when it is.
    #[serde(default)]
    pub state: DestinationState,
    #[serde(default)]
    pub filters: Filters,
    /// Standard Webhooks signing secrets; every active one signs (rotation overlap).
    #[serde(default)]
    pub signing_secrets: Vec<SigningSecret>,
    /// Type and type-specific settings, e.g. `{"type": "splunk_hec", "url": …}`, typed by
    /// `audit_sinks::registry`.
    pub config: DestinationConfig,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The events' format inside the type's envelope. Left out when native, so records of
    /// destinations that never chose OCSF read the same everywhere.
    #[serde(default, skip_serializing_if = "EventFormat::is_native")]
    pub format: EventFormat,
}

/// How a destination receives each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    /// The event as it is stored (contract v1), byte for byte.
    #[default]
    Native,
    /// The event as an OCSF object (`audit_core::ocsf`).
    Ocsf,
}

impl EventFormat {
    pub fn is_native(&self) -> bool {
        *self == EventFormat::Native
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Native => "native",
            EventFormat::Ocsf => "ocsf",
        }
    }
}

impl Destination {
    /// The associated data sealing a secret field of this destination (see [`crate::crypto`]),
    /// e.g. `org_acme/dst_1a2b/config.token`: binds the ciphertext to org, destination and field.
    pub fn seal_context(org_id: &str, destination_id: &str, field: &str) -> String {
        format!("{org_id}/{destination_id}/{field}")
    }

    /// The associated data sealing the credential `field` of a destination sending to
    /// `endpoint` (each type says which, `audit_sinks::registry`): the credential opens only
    /// for that endpoint, so a record whose URL was changed without the credential being given
    /// again cannot send it elsewhere.
    pub fn credential_seal_context(
        org_id: &str,
        destination_id: &str,
        field: &str,
        endpoint: &str,
    ) -> String {
        format!(
            "{}\n{endpoint}",
            Self::seal_context(org_id, destination_id, field)
        )
    }

    /// The seal context of one signing secret.
    pub fn signing_seal_context(org_id: &str, destination_id: &str, secret_id: &str) -> String {
        Self::seal_context(org_id, destination_id, &format!("signing/{secret_id}"))
    }

    /// Opens the signing secrets in force at `now` (`whsec_…` strings), for signing.
    pub fn open_signing_secrets(
        &self,
        org_id: &str,
        secrets: &crate::SecretBox,
        now: OffsetDateTime,
    ) -> crate::Result<Vec<audit_runtime::Secret>> {
        self.active_signing_secrets(now)
            .map(|s| {
                secrets.open(
                    &s.secret,
                    &Self::signing_seal_context(org_id, &self.id, &s.id),
                )
            })
            .collect()
    }

    /// Whether events should be delivered to it now.
    pub fn is_active(&self) -> bool {
        self.enabled && matches!(self.state, DestinationState::Active)
    }

    /// The signing secrets in force at `now` (not expired).
    pub fn active_signing_secrets(
        &self,
        now: OffsetDateTime,
    ) -> impl Iterator<Item = &SigningSecret> {
        self.signing_secrets
            .iter()
            .filter(move |secret| secret.expires_at.is_none_or(|expires| expires > now))
    }
}

/// Operational state recorded on the settings topic so every forwarder instance agrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum DestinationState {
    #[default]
    Active,
    /// Paused by the forwarder after failing continuously, or because it is misconfigured;
    /// events are kept on the retry path until an operator resumes it.
    Paused {
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
        reason: String,
    },
}

/// Which events a destination receives. Empty lists mean "all".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Filters {
    /// Categories to forward; empty = all.
    pub categories: Vec<String>,
    /// Actions to forward, exact (`user.login.failed`) or prefix (`user.*`); empty = all.
    pub actions: Vec<String>,
    /// Actions never to forward (noise), exact or prefix.
    pub exclude_actions: Vec<String>,
    /// Also forward the organization's signed integrity digests (one
    /// `audit_log.integrity.sealed` event per sealed window, docs/integrity.md), so the
    /// organization holds its chain outside our storage. Off by default; the lists above do
    /// not select these events, only `exclude_actions` can drop them.
    pub integrity_digests: bool,
}

/// The action of the events carrying a signed integrity digest.
pub const INTEGRITY_SEALED: &str = "audit_log.integrity.sealed";

impl Filters {
    pub fn matches(&self, category: &str, action: &str) -> bool {
        if action == INTEGRITY_SEALED {
            return self.integrity_digests
                && !self
                    .exclude_actions
                    .iter()
                    .any(|p| action_matches(p, action));
        }
        let category_ok =
            self.categories.is_empty() || self.categories.iter().any(|c| c == category);
        let action_ok =
            self.actions.is_empty() || self.actions.iter().any(|p| action_matches(p, action));
        let excluded = self
            .exclude_actions
            .iter()
            .any(|p| action_matches(p, action));
        category_ok && action_ok && !excluded
    }
}

/// `user.*` matches `user.login.failed`; anything else must match exactly.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSecret {
    pub id: String,
    /// The sealed `whsec_…` secret.
    pub secret: Sealed,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it stops signing (set on the old secret when a new one is rotated in).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// A producer API key: the secret part is stored only as its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducerKeyRecord {
    pub key_id: String,
    /// 1 when created, incremented by every change (revocation).
    #[serde(default)]
    pub revision: u64,
    /// The producing service, e.g. `billing-api`; becomes the events' `source`.
    pub name: String,
    pub secret_sha256: String,
    /// Categories this key may publish; `*` means every non-internal category.
    pub categories: Vec<String>,
    /// Organizations this key may publish for; `None` means any.
    #[serde(default)]
    pub orgs: Option<Vec<String>>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// An organization-scoped, read-only API token (Enterprise), stored as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenRecord {
    pub token_id: String,
    /// 1 when created, incremented by every change (revocation).
    #[serde(default)]
    pub revision: u64,
    pub org_id: String,
    pub name: String,
    pub secret_sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
