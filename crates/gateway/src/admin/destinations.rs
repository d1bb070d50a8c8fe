//! SIEM destinations of an organization: create, read (masked), update, delete, rotate the
//! signing secret, resume after a pause, send a test event.
//!
//! Secrets (HEC token, Datadog API key, Wazuh password, signing secrets) are write-only:
//! sealed before they are stored, masked in every response, never logged.
//!
//! This file holds the handlers and the rules they share (the plan must allow streaming, a
//! change answers with the stored view). What operators send is in `input`, how it is
//! checked and its secrets sealed in `validate`, the masked view in `view`.

mod input;
mod validate;
mod view;

use std::sync::Arc;

use audit_settings::{
    Destination, DestinationState, OrgSettings, Plan, SettingsView, SigningSecret,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use time::OffsetDateTime;

use super::schemas::DestinationView;
use super::{DestinationPath, IfMatch};
use super::{OperatorAuth, OrgChange, update_org};
use crate::App;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::openapi::{
    BadRequest, Conflict, Forbidden, JsonBodyRefused, NotFound, OrgPath, SettingsChange,
};
pub use input::{ConfigInput, CreateDestination, RotateSecret, UpdateDestination};
pub use validate::check_signing_secret;
use validate::{build_config, check_filters, invalid};
pub use view::{MASK, rfc3339, view};

fn require_streaming(app: &App, org: &OrgSettings) -> ApiResult<()> {
    if !app.config.plans.policy(org.plan).streaming {
        return Err(invalid(
            "plan",
            format!(
                "SIEM destinations require the Enterprise plan; organization `{}` is on `{}`",
                org.org_id,
                org.plan.as_str()
            ),
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("destination `{id}` not found"))
}

/// The destination `id` of `org_id` in `settings` (404 when either is unknown).
pub(super) fn find<'a>(
    settings: &'a SettingsView,
    org_id: &str,
    id: &str,
) -> ApiResult<&'a Destination> {
    let org = settings
        .org(org_id)
        .ok_or_else(|| ApiError::NotFound(format!("organization `{org_id}` has no settings")))?;
    org.destination(id).ok_or_else(|| not_found(id))
}

/// The destination `id` of `org`, for changing it.
fn find_mut<'a>(org: &'a mut OrgSettings, id: &str) -> ApiResult<&'a mut Destination> {
    org.destination_mut(id).ok_or_else(|| not_found(id))
}

/// The masked view of destination `id` in freshly stored settings.
fn stored_view(org: &OrgSettings, id: &str) -> ApiResult<Value> {
    org.destination(id).map(view).ok_or_else(|| {
        ApiError::Internal(format!("destination `{id}` not visible after the write"))
    })
}

fn new_signing_secret(
    app: &App,
    secret: &str,
    context: (&str, &str),
    now: OffsetDateTime,
) -> SigningSecret {
    let id = audit_settings::random_id("whk");
    let (org_id, destination_id) = context;
    SigningSecret {
        secret: app.secrets.seal(
            secret,
            &Destination::signing_seal_context(org_id, destination_id, &id),
        ),
        id,
        created_at: now,
        expires_at: None,
    }
}

/// Add a SIEM destination (Enterprise)
///
/// Secrets in `config` (HEC token, Datadog API key, Wazuh password) and the signing secret are
/// write-only: sealed, then masked in every response. Recorded in the organization's log.
#[utoipa::path(post, path = "/v1/admin/orgs/{org}/destinations", tag = "admin", operation_id = "createDestination",
    params(OrgPath, IfMatch),
    request_body = CreateDestination,
    responses(
        (status = 201, description = "Created", body = DestinationView),
        SettingsChange, JsonBodyRefused, Forbidden,
    ),
    security(("operator_token" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CreateDestination>,
) -> ApiResult<Response> {
    if input.name.trim().is_empty() || input.name.len() > 200 {
        return Err(invalid("name", "must be 1–200 characters"));
    }
    check_filters(&app, &input.filters)?;
    let signing_secret = input.signing_secret.ok_or_else(|| {
        invalid(
            "signing_secret",
            "is required (generate one with `whsec_` + base64 of 32 random bytes)",
        )
    })?;
    check_signing_secret("signing_secret", &signing_secret)?;
    let destination_id = audit_settings::random_id("dst");
    let context = (org_id.as_str(), destination_id.as_str());
    let config = build_config(&app, input.config, None, context)?;
    let now = OffsetDateTime::now_utc();
    let destination = Destination {
        id: destination_id.clone(),
        name: input.name,
        enabled: input.enabled,
        state: DestinationState::Active,
        filters: input.filters,
        signing_secrets: vec![new_signing_secret(&app, &signing_secret, context, now)],
        config,
        created_at: now,
        format: input.format,
    };
    let created = destination.clone();
    let (org, _) = update_org(&app, &operator, &org_id, &headers, |org| {
        require_streaming(&app, org)?;
        org.destinations.push(destination);
        Ok(OrgChange::new("audit_log.destination.created")
            .target("destination", &created.id, Some(&created.name))
            .meta("destination_type", created.config.type_name())
            .meta("format", created.format.as_str())
            .meta("enabled", created.enabled.to_string()))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(stored_view(&org, &destination_id)?),
    )
        .into_response())
}

/// A destination (secrets masked)
#[utoipa::path(get, path = "/v1/admin/orgs/{org}/destinations/{destination}", tag = "admin", operation_id = "getDestination",
    params(OrgPath, DestinationPath),
    responses(
        (status = 200, description = "The destination", body = DestinationView),
        BadRequest, NotFound,
    ),
    security(("operator_token" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    OperatorAuth(_operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let settings = app.settings.view();
    Ok(Json(view(find(&settings, &org_id, &destination_id)?)))
}

/// Change a destination
///
/// Absent fields keep their value; a secret absent from `config` keeps the stored one.
#[utoipa::path(patch, path = "/v1/admin/orgs/{org}/destinations/{destination}", tag = "admin", operation_id = "updateDestination",
    params(OrgPath, DestinationPath, IfMatch),
    request_body = UpdateDestination,
    responses(
        (status = 200, description = "The destination after the change", body = DestinationView),
        SettingsChange, JsonBodyRefused, Forbidden, NotFound,
    ),
    security(("operator_token" = [])))]
pub async fn update(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<UpdateDestination>,
) -> ApiResult<Json<Value>> {
    if let Some(filters) = &input.filters {
        check_filters(&app, filters)?;
    }
    let context = (org_id.as_str(), destination_id.as_str());
    let (org, _) = update_org(&app, &operator, &org_id, &headers, |org| {
        let streaming = app.config.plans.policy(org.plan).streaming;
        let plan = org.plan;
        let destination = find_mut(org, &destination_id)?;
        let mut change = OrgChange::new("audit_log.destination.updated").target("destination", &destination_id, Some(&destination.name));
        if let Some(name) = input.name {
            if name.trim().is_empty() || name.len() > 200 {
                return Err(invalid("name", "must be 1–200 characters"));
            }
            destination.name = name;
        }
        if let Some(enabled) = input.enabled {
            if enabled && !streaming {
                return Err(invalid(
                    "enabled",
                    format!("SIEM destinations require the Enterprise plan; the organization is on `{}`", plan.as_str()),
                ));
            }
            change = change.meta("enabled", enabled.to_string());
            destination.enabled = enabled;
        }
        if let Some(filters) = input.filters {
            change = change.meta("filters", serde_json::to_string(&filters).unwrap_or_default());
            destination.filters = filters;
        }
        if let Some(config) = input.config {
            destination.config = build_config(&app, config, Some(&destination.config), context)?;
            change = change.meta("config", "updated");
        }
        if let Some(format) = input.format {
            change = change.meta("format", format.as_str());
            destination.format = format;
        }
        Ok(change)
    })
    .await?;
    Ok(Json(stored_view(&org, &destination_id)?))
}

/// Delete a destination
#[utoipa::path(delete, path = "/v1/admin/orgs/{org}/destinations/{destination}", tag = "admin", operation_id = "deleteDestination",
    params(OrgPath, DestinationPath, IfMatch),
    responses(
        (status = 204, description = "Deleted"),
        SettingsChange, NotFound,
    ),
    security(("operator_token" = [])))]
pub async fn delete(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    update_org(&app, &operator, &org_id, &headers, |org| {
        let before = org.destinations.len();
        let name = org.destination(&destination_id).map(|d| d.name.clone());
        org.destinations.retain(|d| d.id != destination_id);
        if org.destinations.len() == before {
            return Err(not_found(&destination_id));
        }
        Ok(OrgChange::new("audit_log.destination.deleted").target(
            "destination",
            &destination_id,
            name.as_deref(),
        ))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotate a destination's signing secret
///
/// The new secret signs at once; the previous ones keep signing for `overlap_secs`.
#[utoipa::path(post, path = "/v1/admin/orgs/{org}/destinations/{destination}/rotate-secret", tag = "admin", operation_id = "rotateDestinationSecret",
    params(OrgPath, DestinationPath, IfMatch),
    request_body = RotateSecret,
    responses(
        (status = 200, description = "The destination with its secrets", body = DestinationView),
        SettingsChange, JsonBodyRefused, NotFound,
    ),
    security(("operator_token" = [])))]
pub async fn rotate_secret(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<RotateSecret>,
) -> ApiResult<Json<Value>> {
    check_signing_secret("signing_secret", &input.signing_secret)?;
    if !(0..=30 * 24 * 3600).contains(&input.overlap_secs) {
        return Err(invalid(
            "overlap_secs",
            "must be between 0 and 2592000 (30 days)",
        ));
    }
    let context = (org_id.as_str(), destination_id.as_str());
    let now = OffsetDateTime::now_utc();
    let (org, _) = update_org(&app, &operator, &org_id, &headers, |org| {
        let destination = find_mut(org, &destination_id)?;
        let overlap_end = now + time::Duration::seconds(input.overlap_secs);
        for secret in &mut destination.signing_secrets {
            let expires = secret
                .expires_at
                .map_or(overlap_end, |at| at.min(overlap_end));
            secret.expires_at = Some(expires);
        }
        // Drop secrets that expired long ago; keep the record small.
        destination
            .signing_secrets
            .retain(|s| s.expires_at.is_none_or(|at| at > now));
        let fresh = new_signing_secret(&app, &input.signing_secret, context, now);
        let fresh_id = fresh.id.clone();
        destination.signing_secrets.push(fresh);
        Ok(OrgChange::new("audit_log.destination.secret_rotated")
            .target("destination", &destination_id, Some(&destination.name))
            .meta("new_secret_id", fresh_id)
            .meta("overlap_secs", input.overlap_secs.to_string()))
    })
    .await?;
    Ok(Json(stored_view(&org, &destination_id)?))
}

/// Resume a paused destination
#[utoipa::path(post, path = "/v1/admin/orgs/{org}/destinations/{destination}/resume", tag = "admin", operation_id = "resumeDestination",
    params(OrgPath, DestinationPath, IfMatch),
    responses(
        (status = 200, description = "The destination, active again", body = DestinationView),
        SettingsChange, Forbidden, NotFound, Conflict,
    ),
    security(("operator_token" = [])))]
pub async fn resume(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let (org, _) = update_org(&app, &operator, &org_id, &headers, |org| {
        require_streaming(&app, org)?;
        let destination = find_mut(org, &destination_id)?;
        let was = std::mem::take(&mut destination.state);
        let reason = match was {
            DestinationState::Paused { reason, .. } => reason,
            DestinationState::Active => {
                return Err(ApiError::Conflict("the destination is not paused".into()));
            }
        };
        Ok(OrgChange::new("audit_log.destination.resumed")
            .target("destination", &destination_id, Some(&destination.name))
            .meta("paused_reason", reason))
    })
    .await?;
    Ok(Json(stored_view(&org, &destination_id)?))
}

/// On a downgrade to a plan without streaming, destinations are disabled (kept).
pub fn disable_for_plan(org: &mut OrgSettings, plan: Plan) -> usize {
    let mut disabled = 0;
    for destination in &mut org.destinations {
        if destination.enabled {
            destination.enabled = false;
            disabled += 1;
        }
    }
    if disabled > 0 {
        tracing::info!(org_id = %org.org_id, plan = plan.as_str(), disabled, "plan without streaming: destinations disabled");
    }
    disabled
}
