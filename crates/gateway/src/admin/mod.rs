//! The operator API: tenant settings (plan, retention, destinations) and producer keys.
//!
//! Authenticated with operator tokens (`[operators]`), never with producer keys or user
//! tokens. Every change is written to the settings topic (read back before answering, so
//! the response reflects it everywhere this gateway looks) and recorded as an audit event in
//! the organization's own log. Updates accept `If-Match: "<revision>"` to refuse changes
//! made against a stale read (412).

pub mod delivery;
pub mod destinations;
pub mod keys;
pub mod orgs;
pub mod schemas;

use std::sync::Arc;

use audit_settings::{OrgSettings, SettingsRecord};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::App;
use crate::auth::operator::{self, Operator};
use crate::error::{ApiError, ApiResult};
use crate::meta;

/// Extracts an authenticated operator.
#[derive(Debug)]
pub struct OperatorAuth(pub Operator);

impl FromRequestParts<Arc<App>> for OperatorAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        operator::authenticate(&parts.headers, &app.config.operators.tokens).map(OperatorAuth)
    }
}

pub fn router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(orgs::get, orgs::update))
        .routes(routes!(orgs::retention))
        .routes(routes!(destinations::create))
        .routes(routes!(
            destinations::get,
            destinations::update,
            destinations::delete
        ))
        .routes(routes!(destinations::rotate_secret))
        .routes(routes!(destinations::resume))
        .routes(routes!(delivery::test))
        .routes(routes!(delivery::health))
        .routes(routes!(keys::create, keys::list))
        .routes(routes!(keys::revoke))
}

/// `If-Match` of the settings updates.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatch {
    /// The settings revision the change was made against (the `ETag` of a read, e.g.
    /// `"7"`): 412 when they changed since. Absent: no check.
    #[param(rename = "If-Match", value_type = String, required = false, pattern = r#"^\s*(W/)?"?[0-9]{1,19}"?\s*$"#)]
    #[allow(dead_code)] // read by the derive
    pub if_match: Option<String>,
}

/// The destination named in the path (after the organization's).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DestinationPath {
    /// Destination id (`dst_…`)
    #[param(max_length = 200)]
    #[allow(dead_code)] // read by the derive
    pub destination: String,
}

/// What a settings change did, for its audit event.
#[derive(Debug)]
pub struct OrgChange {
    action: &'static str,
    targets: Vec<(String, String, Option<String>)>,
    metadata: Vec<(String, String)>,
}

impl OrgChange {
    pub fn new(action: &'static str) -> Self {
        Self {
            action,
            targets: Vec::new(),
            metadata: Vec::new(),
        }
    }

    pub fn target(mut self, kind: &str, id: &str, name: Option<&str>) -> Self {
        self.targets
            .push((kind.into(), id.into(), name.map(str::to_string)));
        self
    }

    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }
}

/// Checks an organization id the way the event contract does.
pub fn check_org_id(org_id: &str) -> ApiResult<()> {
    let valid = !org_id.is_empty()
        && org_id.len() <= 128
        && org_id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && org_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if !valid {
        return Err(ApiError::bad_request("org", "not a valid organization id"));
    }
    Ok(())
}

/// The one read-modify-write path for organization settings: load (or create) the record,
/// check `If-Match`, apply `change`, bump the revision, write (compare-and-set on the
/// revision: a concurrent change that won is a 412 and this one is not applied), read back,
/// record the audit event.
pub async fn update_org(
    app: &App,
    operator: &Operator,
    org_id: &str,
    headers: &HeaderMap,
    change: impl FnOnce(&mut OrgSettings) -> ApiResult<OrgChange>,
) -> ApiResult<(Arc<OrgSettings>, OrgChange)> {
    check_org_id(org_id)?;
    let now = OffsetDateTime::now_utc();
    let current = app.settings.view().org(org_id).cloned();
    let mut org = current
        .as_deref()
        .cloned()
        .unwrap_or_else(|| OrgSettings::new(org_id, now, &operator.name));
    if let Some(expected) = if_match(headers)?
        && expected != org.revision
    {
        return Err(ApiError::PreconditionFailed(format!(
            "the settings changed since revision {expected}; they are now at revision {}",
            org.revision
        )));
    }
    let described = change(&mut org)?;
    org.revision += 1;
    org.updated_at = now;
    org.updated_by = operator.name.clone();
    let view = app.settings.put(&SettingsRecord::Org(org)).await?;
    let stored = view
        .org(org_id)
        .cloned()
        .ok_or_else(|| ApiError::Internal("settings write not visible".into()))?;
    tracing::info!(org_id, action = described.action, operator = %operator.name, revision = stored.revision, "settings changed");

    let mut event = meta::event(
        org_id,
        described.action,
        meta::operator_actor(&operator.name),
        headers,
    )
    .meta("revision", stored.revision.to_string());
    for (kind, id, name) in &described.targets {
        event = event.target(kind, id, name.as_deref());
    }
    for (key, value) in &described.metadata {
        event = event.meta(key, value.clone());
    }
    meta::record(app, event).await?;
    Ok((stored, described))
}

/// `If-Match: "7"` (or `7`) → Some(7).
fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .unwrap_or("")
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    text.parse::<u64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match", "must be the settings revision, e.g. \"7\""))
}
