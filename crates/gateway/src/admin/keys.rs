//! Producer API keys: created by operators, shown once, stored as SHA-256, revocable.

use std::sync::Arc;

use audit_settings::{ProducerKeyRecord, SettingsRecord};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::destinations::rfc3339;
use super::{OperatorAuth, check_org_id};
use crate::App;
use crate::auth::producer::PREFIX;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::openapi::{BadRequest, JsonBodyRefused, NotFound, Unavailable};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The producing service, e.g. `billing-api`.
    #[schema(min_length = 1, max_length = 100, pattern = "^[A-Za-z0-9._-]+$")]
    pub name: String,
    /// Categories it may publish (`*` = every category; internal ones cannot be named and
    /// are never published by producers).
    #[schema(min_items = 1)]
    pub categories: Vec<String>,
    /// Organizations it may publish for; absent = any.
    pub orgs: Option<Vec<String>>,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
    audit_settings::Error::invalid(field, reason).into()
}

/// A producer key as the API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProducerKeyView {
    pub key_id: String,
    pub name: String,
    pub categories: Vec<String>,
    /// Organizations it may publish for; `null` = any.
    pub orgs: Option<Vec<String>>,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub created_by: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// A new key with its secret, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedProducerKey {
    #[serde(flatten)]
    pub key: ProducerKeyView,
    /// `ak_<id>_<secret>`: store it now.
    pub api_key: String,
    pub note: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProducerKeyList {
    pub keys: Vec<ProducerKeyView>,
}

pub fn view(record: &ProducerKeyRecord) -> ProducerKeyView {
    ProducerKeyView {
        key_id: record.key_id.clone(),
        name: record.name.clone(),
        categories: record.categories.clone(),
        orgs: record.orgs.clone(),
        created_at: rfc3339(record.created_at),
        created_by: record.created_by.clone(),
        revoked_at: record.revoked_at.map(rfc3339),
    }
}

/// Validates a key request against the catalogue.
pub fn validate(app: &App, input: &CreateKey) -> ApiResult<()> {
    let name_ok = !input.name.is_empty()
        && input.name.len() <= 100
        && input
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(invalid(
            "name",
            "must be 1–100 characters of [A-Za-z0-9._-]",
        ));
    }
    if input.categories.is_empty() {
        return Err(invalid(
            "categories",
            "must name at least one category (or `*`)",
        ));
    }
    for (index, category) in input.categories.iter().enumerate() {
        if category == "*" {
            continue;
        }
        match app.validator.catalogue().category(category) {
            None => {
                return Err(invalid(
                    format!("categories[{index}]"),
                    format!("unknown category `{category}`"),
                ));
            }
            Some(definition) if definition.internal => {
                return Err(invalid(
                    format!("categories[{index}]"),
                    format!(
                        "category `{category}` is internal: only the audit-log service itself writes it"
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(orgs) = &input.orgs {
        for (index, org) in orgs.iter().enumerate() {
            check_org_id(org)
                .map_err(|_| invalid(format!("orgs[{index}]"), "not a valid organization id"))?;
        }
    }
    Ok(())
}

/// Creates a key and returns it with its secret (the only time it is shown).
pub async fn create_key(
    app: &App,
    input: CreateKey,
    created_by: &str,
) -> ApiResult<(ProducerKeyRecord, String)> {
    validate(app, &input)?;
    let (key_id, api_key, hash) = crate::auth::new_credential(PREFIX);
    let record = ProducerKeyRecord {
        key_id,
        revision: 1,
        name: input.name,
        secret_sha256: hash,
        categories: input.categories,
        orgs: input.orgs,
        created_at: OffsetDateTime::now_utc(),
        created_by: created_by.to_string(),
        revoked_at: None,
    };
    app.settings
        .put(&SettingsRecord::ProducerKey(record.clone()))
        .await?;
    tracing::info!(key_id = %record.key_id, name = %record.name, by = created_by, "producer key created");
    Ok((record, api_key))
}

/// Create a producer API key
///
/// The key (`api_key`) is in this response only: it is stored as its SHA-256.
#[utoipa::path(post, path = "/v1/admin/producer-keys", tag = "admin", operation_id = "createProducerKey",
    request_body = CreateKey,
    responses(
        (status = 201, description = "Created; `api_key` is shown only here", body = CreatedProducerKey),
        JsonBodyRefused, BadRequest, Unavailable,
    ),
    security(("operator_token" = [])))]
pub async fn create(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    ApiJson(input): ApiJson<CreateKey>,
) -> ApiResult<Response> {
    let (record, api_key) = create_key(&app, input, &operator.name).await?;
    let body = CreatedProducerKey {
        key: view(&record),
        api_key,
        note: "store this key now: it is shown only once".into(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Every producer key (revoked ones included), oldest first
#[utoipa::path(get, path = "/v1/admin/producer-keys", tag = "admin", operation_id = "listProducerKeys",
    responses((status = 200, description = "The keys", body = ProducerKeyList)),
    security(("operator_token" = [])))]
pub async fn list(
    State(app): State<Arc<App>>,
    OperatorAuth(_operator): OperatorAuth,
) -> Json<ProducerKeyList> {
    let snapshot = app.settings.view();
    let mut keys: Vec<&Arc<ProducerKeyRecord>> = snapshot.producer_keys.values().collect();
    keys.sort_by_key(|k| k.created_at);
    Json(ProducerKeyList {
        keys: keys.iter().map(|k| view(k)).collect(),
    })
}

/// Revoke a producer key (idempotent)
#[utoipa::path(delete, path = "/v1/admin/producer-keys/{key}", tag = "admin", operation_id = "revokeProducerKey",
    params(("key" = String, Path, description = "Key id (the 12 hex digits after `ak_`)", max_length = 200)),
    responses(
        (status = 200, description = "The key, revoked", body = ProducerKeyView),
        NotFound, Unavailable,
    ),
    security(("operator_token" = [])))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path(key_id): Path<String>,
) -> ApiResult<Json<ProducerKeyView>> {
    let snapshot = app.settings.view();
    let record = snapshot
        .producer_keys
        .get(&key_id)
        .ok_or_else(|| ApiError::NotFound(format!("producer key `{key_id}` not found")))?;
    let Some(revoked) = crate::auth::revoked(record.as_ref()) else {
        return Ok(Json(view(record)));
    };
    let updated = app
        .settings
        .put(&SettingsRecord::ProducerKey(revoked))
        .await?;
    tracing::info!(key_id = %key_id, by = %operator.name, "producer key revoked");
    let record = updated
        .producer_keys
        .get(&key_id)
        .ok_or_else(|| ApiError::Internal("revoked key not visible".into()))?;
    Ok(Json(view(record)))
}
