//! SIEM destinations of an organization: create, read (masked), update, delete, rotate the
//! signing secret, resume after a pause, send a test event.
//!
//! Secrets (HEC token, Datadog API key, Wazuh password, signing secrets) are write-only:
//! sealed before they are stored, masked in every response, never logged.

use std::sync::Arc;

use audit_settings::model::{DatadogSettings, SplunkHecSettings, WazuhSettings, WebhookSettings};
use audit_settings::{
    Destination, DestinationKind, DestinationState, EventFormat, Filters, OrgSettings, Plan,
    Sealed, SigningSecret,
};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::IfMatch;
use super::schemas::{DestinationFilters, DestinationView};
use super::{OperatorAuth, OrgChange, update_org};
use crate::App;
use crate::error::{ApiError, ApiJson, ApiResult, ErrorResponse, RetryLater};
use crate::openapi::OrgPath;
use utoipa::ToSchema;

/// Shown instead of a secret.
pub const MASK: &str = "********";

/// Datadog sites accepted (PROTOCOLS.md).
pub const DATADOG_SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// Type-specific settings as sent by operators; secrets in plain text, optional on update
/// (absent = keep the stored one).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigInput {
    SplunkHec {
        url: String,
        token: Option<String>,
        index: Option<String>,
        source: Option<String>,
        sourcetype: Option<String>,
        host: Option<String>,
        #[serde(default)]
        indexer_ack: bool,
        max_batch_bytes: Option<usize>,
    },
    Datadog {
        site: String,
        url: Option<String>,
        api_key: Option<String>,
        service: Option<String>,
        ddsource: Option<String>,
        ddtags: Option<String>,
    },
    Wazuh {
        url: String,
        username: String,
        password: Option<String>,
        requests_per_minute: Option<u32>,
    },
    Webhook {
        url: String,
        max_batch_events: Option<usize>,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDestination {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    #[schema(value_type = DestinationFilters, required = false)]
    pub filters: Filters,
    /// Standard Webhooks secret `whsec_<base64 of 24–64 random bytes>`.
    #[schema(required = true, pattern = "^whsec_[A-Za-z0-9+/]{32,86}={0,2}$")]
    pub signing_secret: Option<String>,
    pub config: ConfigInput,
    /// `native` (default) or `ocsf`: how each event is written inside the type's envelope.
    #[serde(default)]
    #[schema(value_type = super::schemas::FormatName, required = false)]
    pub format: EventFormat,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestination {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub enabled: Option<bool>,
    #[schema(value_type = DestinationFilters, required = false)]
    pub filters: Option<Filters>,
    pub config: Option<ConfigInput>,
    #[schema(value_type = Option<super::schemas::FormatName>)]
    pub format: Option<EventFormat>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]{32,86}={0,2}$")]
    pub signing_secret: String,
    /// How long the previous secret keeps signing, in seconds (default one day).
    #[serde(default = "default_overlap")]
    #[schema(minimum = 0, maximum = 2592000)]
    pub overlap_secs: i64,
}

fn default_overlap() -> i64 {
    24 * 3600
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
    audit_settings::Error::invalid(field, reason).into()
}

/// Checks a `whsec_` secret (PROTOCOLS.md: 24–64 random bytes, base64).
pub fn check_signing_secret(field: &str, secret: &str) -> ApiResult<()> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| invalid(field, "must start with `whsec_`"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid(field, "the part after `whsec_` must be standard base64"))?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(invalid(
            field,
            format!("must hold 24–64 random bytes, not {}", bytes.len()),
        ));
    }
    Ok(())
}

/// Validates the input and seals its secrets, merging with `existing` on update.
fn build_config(
    app: &App,
    input: ConfigInput,
    existing: Option<&DestinationKind>,
    context: (&str, &str),
) -> ApiResult<DestinationKind> {
    let policy = &app.config.outbound;
    let check_url = |field: &str, url: &str| -> ApiResult<()> {
        policy
            .check_url(url)
            .map(|_| ())
            .map_err(|refused| invalid(field, refused.to_string()))
    };
    let (org_id, destination_id) = context;
    let kept_endpoint = existing.map(DestinationKind::endpoint);
    // A credential is sealed for the endpoint it is sent to: when the endpoint changes, the
    // stored one cannot follow it (it would not open), so it must be given again.
    let seal = |field: &str,
                plain: Option<String>,
                kept: Option<&Sealed>,
                endpoint: &str|
     -> ApiResult<Sealed> {
        match (plain, kept) {
            (Some(plain), _) if plain.trim().is_empty() => Err(invalid(field, "must not be empty")),
            (Some(plain), _) => Ok(app.secrets.seal(
                &plain,
                &Destination::credential_seal_context(org_id, destination_id, field, endpoint),
            )),
            (None, Some(kept)) if kept_endpoint.as_deref() == Some(endpoint) => Ok(kept.clone()),
            (None, Some(_)) => Err(invalid(
                field,
                "is required when the destination's URL changes: a stored credential is bound to the URL it was given for",
            )),
            (None, None) => Err(invalid(field, "is required")),
        }
    };
    let kind = match input {
        ConfigInput::SplunkHec {
            url,
            token,
            index,
            source,
            sourcetype,
            host,
            indexer_ack,
            max_batch_bytes,
        } => {
            check_url("config.url", &url)?;
            if let Some(bytes) = max_batch_bytes
                && !(1024..=838_860_800).contains(&bytes)
            {
                return Err(invalid(
                    "config.max_batch_bytes",
                    "must be between 1024 and 838860800",
                ));
            }
            let kept = match existing {
                Some(DestinationKind::SplunkHec(settings)) => Some(&settings.token),
                _ => None,
            };
            let token = seal("config.token", token, kept, &url)?;
            DestinationKind::SplunkHec(SplunkHecSettings {
                url,
                token,
                index,
                source,
                sourcetype,
                host,
                indexer_ack,
                max_batch_bytes,
            })
        }
        ConfigInput::Datadog {
            site,
            url,
            api_key,
            service,
            ddsource,
            ddtags,
        } => {
            if !DATADOG_SITES.contains(&site.as_str()) {
                return Err(invalid(
                    "config.site",
                    format!("unknown Datadog site; one of {}", DATADOG_SITES.join(", ")),
                ));
            }
            if let Some(url) = &url {
                check_url("config.url", url)?;
            }
            let kept = match existing {
                Some(DestinationKind::Datadog(settings)) => Some(&settings.api_key),
                _ => None,
            };
            let endpoint = DatadogSettings::endpoint(&site, url.as_deref());
            let api_key = seal("config.api_key", api_key, kept, &endpoint)?;
            DestinationKind::Datadog(DatadogSettings {
                site,
                url,
                api_key,
                service,
                ddsource,
                ddtags,
            })
        }
        ConfigInput::Wazuh {
            url,
            username,
            password,
            requests_per_minute,
        } => {
            check_url("config.url", &url)?;
            if username.trim().is_empty() {
                return Err(invalid("config.username", "must not be empty"));
            }
            if requests_per_minute == Some(0) {
                return Err(invalid("config.requests_per_minute", "must be positive"));
            }
            let kept = match existing {
                Some(DestinationKind::Wazuh(settings)) => Some(&settings.password),
                _ => None,
            };
            let password = seal("config.password", password, kept, &url)?;
            DestinationKind::Wazuh(WazuhSettings {
                url,
                username,
                password,
                requests_per_minute,
            })
        }
        ConfigInput::Webhook {
            url,
            max_batch_events,
        } => {
            check_url("config.url", &url)?;
            if max_batch_events == Some(0) {
                return Err(invalid("config.max_batch_events", "must be positive"));
            }
            DestinationKind::Webhook(WebhookSettings {
                url,
                max_batch_events,
            })
        }
    };
    if let Some(existing) = existing
        && existing.type_name() != kind.type_name()
    {
        return Err(invalid(
            "config.type",
            "the type of a destination cannot change; create a new one",
        ));
    }
    Ok(kind)
}

fn check_filters(app: &App, filters: &Filters) -> ApiResult<()> {
    let catalogue = app.validator.catalogue();
    for (index, category) in filters.categories.iter().enumerate() {
        if catalogue.category(category).is_none() {
            return Err(invalid(
                format!("filters.categories[{index}]"),
                format!("unknown category `{category}`"),
            ));
        }
    }
    for (field, patterns) in [
        ("actions", &filters.actions),
        ("exclude_actions", &filters.exclude_actions),
    ] {
        for (index, pattern) in patterns.iter().enumerate() {
            let known = match pattern.strip_suffix('*') {
                Some(prefix) => !prefix.is_empty(),
                None => catalogue.category_of(pattern).is_some(),
            };
            if !known {
                return Err(invalid(
                    format!("filters.{field}[{index}]"),
                    format!("`{pattern}` is neither a known action nor a prefix like `user.*`"),
                ));
            }
        }
    }
    Ok(())
}

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

/// The masked public view of a destination.
pub fn view(destination: &Destination) -> Value {
    let mut config = serde_json::to_value(&destination.config).unwrap_or(Value::Null);
    for secret_field in ["token", "api_key", "password"] {
        if let Some(value) = config.get_mut(secret_field) {
            *value = json!(MASK);
        }
    }
    let secrets: Vec<Value> = destination
        .signing_secrets
        .iter()
        .map(|s| json!({"id": s.id, "secret": MASK, "created_at": rfc3339(s.created_at), "expires_at": s.expires_at.map(rfc3339)}))
        .collect();
    json!({
        "id": destination.id,
        "name": destination.name,
        "type": destination.config.type_name(),
        "enabled": destination.enabled,
        "active": destination.is_active(),
        "state": destination.state,
        "filters": destination.filters,
        "config": config,
        "format": destination.format,
        "signing_secrets": secrets,
        "created_at": rfc3339(destination.created_at),
    })
}

/// The destination `id` of `org`, for changing it.
fn find_mut<'a>(org: &'a mut OrgSettings, id: &str) -> ApiResult<&'a mut Destination> {
    org.destination_mut(id)
        .ok_or_else(|| ApiError::NotFound(format!("destination `{id}` not found")))
}

/// The masked view of destination `id` in freshly stored settings.
fn stored_view(org: &OrgSettings, id: &str) -> ApiResult<Value> {
    org.destination(id).map(view).ok_or_else(|| {
        ApiError::Internal(format!("destination `{id}` not visible after the write"))
    })
}

pub fn rfc3339(at: OffsetDateTime) -> String {
    audit_core::event::format_utc_millis(at)
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
        (status = 400, response = ErrorResponse),
        (status = 403, response = ErrorResponse),
        (status = 412, response = ErrorResponse),
        (status = 415, response = ErrorResponse),
        (status = 422, response = ErrorResponse),
        (status = 503, response = RetryLater),
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
    params(OrgPath, ("destination" = String, Path, description = "Destination id (`dst_…`)", max_length = 200)),
    responses(
        (status = 200, description = "The destination", body = DestinationView),
        (status = 400, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
    ),
    security(("operator_token" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    OperatorAuth(_operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let view_snapshot = app.settings.view();
    let org = view_snapshot
        .org(&org_id)
        .ok_or_else(|| ApiError::NotFound(format!("organization `{org_id}` has no settings")))?;
    let destination = org
        .destination(&destination_id)
        .ok_or_else(|| ApiError::NotFound(format!("destination `{destination_id}` not found")))?;
    Ok(Json(view(destination)))
}

/// Change a destination
///
/// Absent fields keep their value; a secret absent from `config` keeps the stored one.
#[utoipa::path(patch, path = "/v1/admin/orgs/{org}/destinations/{destination}", tag = "admin", operation_id = "updateDestination",
    params(OrgPath, ("destination" = String, Path, description = "Destination id (`dst_…`)", max_length = 200), IfMatch),
    request_body = UpdateDestination,
    responses(
        (status = 200, description = "The destination after the change", body = DestinationView),
        (status = 400, response = ErrorResponse),
        (status = 403, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 412, response = ErrorResponse),
        (status = 415, response = ErrorResponse),
        (status = 422, response = ErrorResponse),
        (status = 503, response = RetryLater),
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
    params(OrgPath, ("destination" = String, Path, description = "Destination id (`dst_…`)", max_length = 200), IfMatch),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 412, response = ErrorResponse),
        (status = 503, response = RetryLater),
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
            return Err(ApiError::NotFound(format!(
                "destination `{destination_id}` not found"
            )));
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
    params(OrgPath, ("destination" = String, Path, description = "Destination id (`dst_…`)", max_length = 200), IfMatch),
    request_body = RotateSecret,
    responses(
        (status = 200, description = "The destination with its secrets", body = DestinationView),
        (status = 400, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 412, response = ErrorResponse),
        (status = 415, response = ErrorResponse),
        (status = 422, response = ErrorResponse),
        (status = 503, response = RetryLater),
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
    params(OrgPath, ("destination" = String, Path, description = "Destination id (`dst_…`)", max_length = 200), IfMatch),
    responses(
        (status = 200, description = "The destination, active again", body = DestinationView),
        (status = 400, response = ErrorResponse),
        (status = 403, response = ErrorResponse),
        (status = 404, response = ErrorResponse),
        (status = 409, response = ErrorResponse),
        (status = 412, response = ErrorResponse),
        (status = 503, response = RetryLater),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use audit_settings::SecretBox;

    #[test]
    fn signing_secrets_follow_the_standard() {
        assert!(check_signing_secret("s", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_ok());
        assert!(check_signing_secret("s", "C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_err());
        assert!(check_signing_secret("s", "whsec_c2hvcnQ=").is_err());
        assert!(check_signing_secret("s", "whsec_not base64!").is_err());
    }

    #[test]
    fn views_mask_every_secret() {
        let secret_box = SecretBox::ephemeral();
        let now = OffsetDateTime::UNIX_EPOCH;
        for config in [
            DestinationKind::SplunkHec(SplunkHecSettings {
                url: "https://hec.example.com".into(),
                token: secret_box.seal("tok-123", "c"),
                index: None,
                source: None,
                sourcetype: None,
                host: None,
                indexer_ack: false,
                max_batch_bytes: None,
            }),
            DestinationKind::Datadog(DatadogSettings {
                site: "datadoghq.com".into(),
                url: None,
                api_key: secret_box.seal("dd-key", "c"),
                service: None,
                ddsource: None,
                ddtags: None,
            }),
            DestinationKind::Wazuh(WazuhSettings {
                url: "https://wazuh.example.com:55000".into(),
                username: "ingest".into(),
                password: secret_box.seal("pw", "c"),
                requests_per_minute: None,
            }),
        ] {
            let destination = Destination {
                id: "dst_1".into(),
                name: "x".into(),
                enabled: true,
                state: DestinationState::Active,
                filters: Filters::default(),
                signing_secrets: vec![SigningSecret {
                    id: "whk_1".into(),
                    secret: secret_box.seal("whsec_x", "c"),
                    created_at: now,
                    expires_at: None,
                }],
                config,
                created_at: now,
                format: EventFormat::Ocsf,
            };
            let text = view(&destination).to_string();
            assert!(!text.contains("v1."), "sealed value leaked: {text}");
            assert!(text.contains(MASK));
            assert!(text.contains(r#""format":"ocsf""#), "{text}");
        }
    }
}
