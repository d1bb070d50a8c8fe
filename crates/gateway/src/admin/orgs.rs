//! An organization's plan and retention.

use std::sync::Arc;

use audit_settings::{OrgSettings, Plan};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::IfMatch;
use super::destinations::{self, rfc3339};
use super::schemas::{OrgView, PlanName, RetentionView};
use super::{OperatorAuth, OrgChange, check_org_id, update_org};
use crate::App;
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::openapi::{BadRequest, JsonBodyRefused, OrgPath, SettingsChange, Unavailable};
use utoipa::ToSchema;

/// A change of plan and/or retention (at least one of them).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct UpdateOrg {
    #[schema(value_type = Option<PlanName>)]
    pub plan: Option<Plan>,
    /// Custom retention in days, within the plan's bounds; `null` resets to the plan's default.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u16>, minimum = 1)]
    pub retention_days: Option<Option<u16>>,
}

/// Distinguishes an absent field (no change) from `null` (reset).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<u16>>, D::Error> {
        Option::<u16>::deserialize(deserializer).map(Some)
    }
}

/// The public view of an organization's settings (secrets masked).
pub fn view(app: &App, org: &OrgSettings) -> Value {
    let policy = app.config.plans.policy(org.plan);
    json!({
        "org_id": org.org_id,
        "plan": org.plan,
        "retention_days": app.config.plans.retention_days(Some(org)),
        "retention_source": if org.retention_days.is_some() { "custom" } else { "plan_default" },
        "retention_bounds": {"min": policy.min_retention_days, "max": policy.max_retention_days},
        "streaming": policy.streaming,
        "destinations": org.destinations.iter().map(destinations::view).collect::<Vec<_>>(),
        "revision": org.revision,
        "updated_at": rfc3339(org.updated_at),
        "updated_by": org.updated_by,
    })
}

fn with_etag(body: Value, revision: u64) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// An organization's settings
///
/// An organization without settings is shown with the free plan's defaults (revision 0).
#[utoipa::path(get, path = "/v1/admin/orgs/{org}", tag = "admin", operation_id = "getOrgSettings",
    params(OrgPath),
    responses(
        (status = 200, description = "The settings", body = OrgView,
            headers(("ETag" = String, description = "The revision, e.g. `\"7\"`: send it back in `If-Match`"))),
        BadRequest,
    ),
    security(("operator_token" = [])))]
pub async fn get(
    State(app): State<Arc<App>>,
    OperatorAuth(_operator): OperatorAuth,
    Path(org_id): Path<String>,
) -> ApiResult<Response> {
    check_org_id(&org_id)?;
    let snapshot = app.settings.view();
    let org = snapshot
        .org(&org_id)
        .map(|org| org.as_ref().clone())
        .unwrap_or_else(|| OrgSettings::new(&org_id, time::OffsetDateTime::UNIX_EPOCH, "default"));
    Ok(with_etag(view(&app, &org), org.revision))
}

/// Change an organization's plan and/or retention
///
/// Recorded in the organization's log. Downgrading from Enterprise disables its destinations;
/// a custom retention outside the new plan's bounds falls back to the plan's default.
#[utoipa::path(patch, path = "/v1/admin/orgs/{org}", tag = "admin", operation_id = "updateOrgSettings",
    params(OrgPath, IfMatch),
    request_body = UpdateOrg,
    responses(
        (status = 200, description = "The settings after the change", body = OrgView,
            headers(("ETag" = String, description = "The new revision"))),
        SettingsChange, JsonBodyRefused,
    ),
    security(("operator_token" = [])))]
pub async fn update(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path(org_id): Path<String>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<UpdateOrg>,
) -> ApiResult<Response> {
    if input.plan.is_none() && input.retention_days.is_none() {
        return Err(audit_settings::Error::invalid(
            "body",
            "nothing to change: give `plan` and/or `retention_days`",
        )
        .into());
    }
    let plans = app.config.plans.clone();
    let (org, change) = update_org(&app, &operator, &org_id, &headers, |org| {
        let before_plan = org.plan;
        let before_retention = plans.retention_days(Some(org));
        let mut actions = Vec::new();
        if let Some(plan) = input.plan {
            org.plan = plan;
            if plan != before_plan {
                actions.push("plan");
                if !plans.policy(plan).streaming {
                    destinations::disable_for_plan(org, plan);
                }
                // A custom retention outside the new plan's bounds falls back to the default.
                if let Some(days) = org.retention_days
                    && plans.check_retention(plan, days).is_err()
                    && input.retention_days.is_none()
                {
                    org.retention_days = None;
                }
            }
        }
        if let Some(retention) = input.retention_days {
            if let Some(days) = retention {
                plans.check_retention(org.plan, days).map_err(|refusal| {
                    ApiError::from(audit_settings::Error::invalid(
                        "retention_days",
                        refusal.to_string(),
                    ))
                })?;
            }
            org.retention_days = retention;
        }
        let after_retention = plans.retention_days(Some(org));
        if after_retention != before_retention {
            actions.push("retention");
        }
        let action = match actions.as_slice() {
            ["plan", ..] => "audit_log.plan.changed",
            _ => "audit_log.retention.changed",
        };
        Ok(OrgChange::new(action)
            .target("organization", &org.org_id, None)
            .meta("plan_before", before_plan.as_str())
            .meta("plan_after", org.plan.as_str())
            .meta("retention_days_before", before_retention.to_string())
            .meta("retention_days_after", after_retention.to_string()))
    })
    .await?;
    let _ = change;
    Ok(with_etag(view(&app, &org), org.revision))
}

/// Effective retention and the progress of its application to stored rows
#[utoipa::path(get, path = "/v1/admin/orgs/{org}/retention", tag = "admin", operation_id = "getOrgRetention",
    params(OrgPath),
    responses(
        (status = 200, description = "Retention and its mutations", body = RetentionView),
        BadRequest, Unavailable,
    ),
    security(("operator_token" = [])))]
pub async fn retention(
    State(app): State<Arc<App>>,
    OperatorAuth(_operator): OperatorAuth,
    Path(org_id): Path<String>,
) -> ApiResult<Json<Value>> {
    check_org_id(&org_id)?;
    let snapshot = app.settings.view();
    let org = snapshot.org(&org_id);
    let days = app.config.plans.retention_days(org.map(|o| o.as_ref()));
    let mutations = app
        .store
        .retention_mutations(&org_id)
        .await
        .map_err(ApiError::from)?;
    let pending = mutations.iter().filter(|m| m.is_done == 0).count();
    Ok(Json(json!({
        "org_id": org_id,
        "retention_days": days,
        "applied_to_stored_rows": pending == 0,
        "mutations": mutations.iter().map(|m| json!({
            "id": m.mutation_id,
            "command": m.command,
            "created_at": rfc3339(m.create_time),
            "parts_to_do": m.parts_to_do,
            "done": m.is_done == 1,
            "latest_fail_reason": m.latest_fail_reason,
        })).collect::<Vec<_>>(),
    })))
}
