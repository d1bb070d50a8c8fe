//! Enterprise read-only API tokens (`at_<id>_<secret>`): created, listed and revoked by the
//! organization's Owners and Admins, shown once, stored as SHA-256, accepted by the query,
//! export and feed APIs of that organization only.
//!
//! Creating or revoking a token is recorded in the organization's log *before* the change is
//! made, as reads are: when the record cannot be written, nothing changes (503) — no token
//! ever exists, or stops existing, without the log saying so.

use std::sync::Arc;

use audit_settings::{ApiTokenRecord, SettingsRecord};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::ReaderAuth;
use crate::App;
use crate::admin::destinations::rfc3339;
use crate::auth::user::API_TOKEN_PREFIX;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::meta;
use crate::openapi::{Forbidden, JsonBodyRefused, NotFound, OrgPath, ReaderRequest, Unavailable};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, e.g. `splunk-pull` (1–100 characters, trimmed).
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
}

/// An API token as the API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenView {
    pub token_id: String,
    pub name: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// The user who created it.
    pub created_by: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// A new token with its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    #[serde(flatten)]
    pub view: ApiTokenView,
    /// `at_<id>_<secret>`: store it now.
    #[serde(rename = "token")]
    pub secret: String,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenList {
    pub tokens: Vec<ApiTokenView>,
}

fn view(record: &ApiTokenRecord) -> ApiTokenView {
    ApiTokenView {
        token_id: record.token_id.clone(),
        name: record.name.clone(),
        created_at: rfc3339(record.created_at),
        created_by: record.created_by.clone(),
        revoked_at: record.revoked_at.map(rfc3339),
    }
}

fn require_enterprise(app: &App, org_id: &str) -> ApiResult<()> {
    let plan = app
        .settings
        .view()
        .org(org_id)
        .map(|o| o.plan)
        .unwrap_or_default();
    if !app.config.plans.policy(plan).streaming {
        return Err(ApiError::Forbidden(format!(
            "API access requires the Enterprise plan; this organization is on `{}`",
            plan.as_str()
        )));
    }
    Ok(())
}

/// Create an API token (Enterprise; Owners and Admins with a user token)
///
/// The token (`token`) is in this response only. Recorded in the organization's log first.
#[utoipa::path(post, path = "/v1/orgs/{org}/api-tokens", tag = "api-tokens", operation_id = "createApiToken",
    params(OrgPath),
    request_body = CreateToken,
    responses(
        (status = 201, description = "Created; `token` is shown only here", body = CreatedApiToken),
        ReaderRequest, JsonBodyRefused,
    ),
    security(("user_jwt" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CreateToken>,
) -> ApiResult<Response> {
    reader.authorize_admin_user(&org_id)?;
    require_enterprise(&app, &org_id)?;
    let name = input.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(audit_settings::Error::invalid("name", "must be 1–100 characters").into());
    }
    let (token_id, token, hash) = crate::auth::new_credential(API_TOKEN_PREFIX);
    let record = ApiTokenRecord {
        token_id: token_id.clone(),
        revision: 1,
        org_id: org_id.clone(),
        name: name.to_string(),
        secret_sha256: hash,
        created_at: OffsetDateTime::now_utc(),
        created_by: reader.subject.clone(),
        revoked_at: None,
    };
    meta::record(
        &app,
        meta::event(
            &org_id,
            "audit_log.api_token.created",
            reader.actor(),
            &headers,
        )
        .target("api_token", &token_id, Some(name)),
    )
    .await?;
    app.settings
        .put(&SettingsRecord::ApiToken(record.clone()))
        .await?;
    let body = CreatedApiToken {
        view: view(&record),
        secret: token,
        note: "store this token now: it is shown only once".into(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The organization's API tokens (revoked ones included), oldest first
#[utoipa::path(get, path = "/v1/orgs/{org}/api-tokens", tag = "api-tokens", operation_id = "listApiTokens",
    params(OrgPath),
    responses(
        (status = 200, description = "The tokens", body = ApiTokenList),
        Forbidden, NotFound,
    ),
    security(("user_jwt" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path(org_id): Path<String>,
) -> ApiResult<Json<ApiTokenList>> {
    reader.authorize_admin_user(&org_id)?;
    let snapshot = app.settings.view();
    let mut tokens: Vec<&Arc<ApiTokenRecord>> = snapshot
        .api_tokens
        .values()
        .filter(|t| t.org_id == org_id)
        .collect();
    tokens.sort_by_key(|t| t.created_at);
    Ok(Json(ApiTokenList {
        tokens: tokens.iter().map(|t| view(t)).collect(),
    }))
}

/// Revoke an API token (idempotent)
#[utoipa::path(delete, path = "/v1/orgs/{org}/api-tokens/{token}", tag = "api-tokens", operation_id = "revokeApiToken",
    params(OrgPath, ("token" = String, Path, description = "Token id (the 12 hex digits after `at_`)", max_length = 200)),
    responses(
        (status = 200, description = "The token, revoked", body = ApiTokenView),
        Forbidden, NotFound, Unavailable,
    ),
    security(("user_jwt" = [])))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    ReaderAuth(reader): ReaderAuth,
    Path((org_id, token_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<ApiTokenView>> {
    reader.authorize_admin_user(&org_id)?;
    let snapshot = app.settings.view();
    let record = snapshot
        .api_tokens
        .get(&token_id)
        .filter(|t| t.org_id == org_id)
        .ok_or_else(|| ApiError::NotFound(format!("API token `{token_id}` not found")))?;
    let Some(revoked) = crate::auth::revoked(record.as_ref()) else {
        return Ok(Json(view(record)));
    };
    let name = revoked.name.clone();
    meta::record(
        &app,
        meta::event(
            &org_id,
            "audit_log.api_token.revoked",
            reader.actor(),
            &headers,
        )
        .target("api_token", &token_id, Some(&name)),
    )
    .await?;
    let updated = app.settings.put(&SettingsRecord::ApiToken(revoked)).await?;
    let record = updated
        .api_tokens
        .get(&token_id)
        .ok_or_else(|| ApiError::Internal("revoked token not visible".into()))?;
    Ok(Json(view(record)))
}
