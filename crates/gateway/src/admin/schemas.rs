//! The operator API's response bodies as OpenAPI schemas.
//!
//! The handlers build these bodies from the settings model (`audit_settings`), which knows
//! nothing of OpenAPI; the shapes are described here, beside the handlers, and the
//! Schemathesis suite (tests/tests/openapi.rs) checks every response against them.

#![allow(dead_code)] // schema descriptions: read by the OpenAPI derive, never constructed

use serde_json::Value;
use utoipa::ToSchema;

/// A plan.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PlanName {
    Free,
    Team,
    Enterprise,
}

/// How a destination receives each event: `native` (the stored event, contract v1) or
/// `ocsf` (an OCSF object).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum FormatName {
    Native,
    Ocsf,
}

/// Which events a destination receives; empty lists mean "all".
#[derive(ToSchema)]
pub struct DestinationFilters {
    /// Categories to forward.
    #[schema(max_items = 100)]
    pub categories: Option<Vec<String>>,
    /// Actions to forward, exact (`user.login.failed`) or prefix (`user.*`).
    #[schema(max_items = 100)]
    pub actions: Option<Vec<String>>,
    /// Actions never to forward, exact or prefix.
    #[schema(max_items = 100)]
    pub exclude_actions: Option<Vec<String>>,
    /// Also forward the organization's signed integrity digests (`audit_log.integrity.sealed`
    /// events); off by default.
    pub integrity_digests: Option<bool>,
}

#[derive(ToSchema)]
pub struct RetentionBounds {
    pub min: u16,
    pub max: u16,
}

/// An organization's settings (secrets masked). `ETag` carries the revision.
#[derive(ToSchema)]
pub struct OrgView {
    pub org_id: String,
    pub plan: PlanName,
    /// Effective retention in days.
    pub retention_days: u16,
    #[schema(pattern = "^(custom|plan_default)$")]
    pub retention_source: String,
    pub retention_bounds: RetentionBounds,
    /// Whether the plan streams to SIEM destinations (Enterprise).
    pub streaming: bool,
    pub destinations: Vec<DestinationView>,
    pub revision: u64,
    #[schema(format = DateTime)]
    pub updated_at: String,
    pub updated_by: String,
}

/// A signing secret of a destination (masked).
#[derive(ToSchema)]
pub struct SigningSecretView {
    pub id: String,
    /// Always `********`.
    pub secret: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it stops signing (set on the previous secret by a rotation).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// The forwarder's operational state of a destination.
#[derive(ToSchema)]
pub struct DestinationStateView {
    /// `active` or `paused`.
    #[schema(pattern = "^(active|paused)$")]
    pub status: String,
    /// When it was paused (`paused`).
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// Why it was paused (`paused`).
    pub reason: Option<String>,
}

/// A SIEM destination (secrets masked).
#[derive(ToSchema)]
pub struct DestinationView {
    pub id: String,
    pub name: String,
    /// `splunk_hec`, `datadog`, `wazuh` or `webhook`.
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    /// Enabled and not paused.
    pub active: bool,
    pub state: DestinationStateView,
    pub filters: DestinationFilters,
    /// The type's settings (`type` and its fields), secrets shown as `********`.
    #[schema(value_type = Object)]
    pub config: Value,
    pub signing_secrets: Vec<SigningSecretView>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A ClickHouse mutation applying a retention change to stored rows.
#[derive(ToSchema)]
pub struct RetentionMutation {
    pub id: String,
    pub command: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub parts_to_do: i64,
    pub done: bool,
    pub latest_fail_reason: String,
}

/// Effective retention and the progress of its application to stored rows.
#[derive(ToSchema)]
pub struct RetentionView {
    pub org_id: String,
    pub retention_days: u16,
    pub applied_to_stored_rows: bool,
    pub mutations: Vec<RetentionMutation>,
}

/// What the destination answered to a test event.
#[derive(ToSchema)]
pub struct TestDelivery {
    pub destination_id: String,
    pub delivered: bool,
    pub outcome: String,
    /// The HTTP status, or what stopped the request (`config`, `timeout`, …).
    pub status: String,
    pub latency_ms: u64,
    pub response_excerpt: String,
    /// Absent when the destination's settings could not be used (`misconfigured`).
    pub webhook_id: Option<String>,
    pub event_id: Option<String>,
}

#[derive(ToSchema)]
pub struct LastFailure {
    #[schema(format = DateTime)]
    pub at: Option<String>,
    pub status: Option<String>,
    pub response_excerpt: Option<String>,
}

#[derive(ToSchema)]
pub struct InstanceHealth {
    pub instance: String,
    pub state: String,
    pub consecutive_failures: u64,
    pub backlog: u64,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

/// A pause of a destination.
#[derive(ToSchema)]
pub struct PausedView {
    #[schema(format = DateTime)]
    pub since: String,
    pub reason: String,
}

/// A destination's delivery health, over every forwarder instance's report.
#[derive(ToSchema)]
pub struct DestinationHealthView {
    pub destination_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    /// Why and since when it is paused; `null` when it is not.
    pub paused: Option<PausedView>,
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    pub last_failure: Option<LastFailure>,
    pub consecutive_failures: u64,
    pub backlog: u64,
    pub delivered_total: u64,
    pub dead_lettered_total: u64,
    pub instances: Vec<InstanceHealth>,
}
