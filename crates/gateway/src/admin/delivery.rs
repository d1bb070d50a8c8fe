//! Delivery of a destination, for operators: send a signed test event now, and read its
//! health as every forwarder instance reports it.
//!
//! * `POST /v1/admin/orgs/{org}/destinations/{destination}/test` sends one
//!   `audit_log.destination.tested` event through the forwarder's own sink (same encoding,
//!   signing, outbound safety) and answers what the destination said: delivered or not,
//!   status, latency, response excerpt. The test is itself audited
//!   (`audit_log.destination.tested` in the organization's log).
//! * `GET /v1/admin/orgs/{org}/destinations/{destination}/health` aggregates the
//!   `DestinationHealth` records that forwarder instances publish on the settings topic.

use std::sync::Arc;

use audit_settings::{DestinationHealth, DestinationState};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::destinations::{self, rfc3339};
use super::schemas::{DestinationHealthView, TestDelivery};
use super::{DestinationPath, OperatorAuth, check_org_id};
use crate::App;
use crate::error::ApiResult;
use crate::meta;
use crate::openapi::{BadRequest, NotFound, OrgPath, Unavailable};

/// Send a signed test event to a destination now
///
/// Through the forwarder's own sink (`audit_sinks`: same settings, encoding, signing and outbound safety); answers
/// what the destination said. Recorded in the organization's log.
#[utoipa::path(post, path = "/v1/admin/orgs/{org}/destinations/{destination}/test", tag = "admin", operation_id = "testDestination",
    params(OrgPath, DestinationPath),
    responses(
        (status = 200, description = "What the destination answered (delivered or not)", body = TestDelivery),
        BadRequest, NotFound, Unavailable,
    ),
    security(("operator_token" = [])))]
pub async fn test(
    State(app): State<Arc<App>>,
    OperatorAuth(operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    check_org_id(&org_id)?;
    let view = app.settings.view();
    let destination = destinations::find(&view, &org_id, &destination_id)?;
    let settings = audit_sinks::TestSettings {
        secrets: &app.secrets,
        policy: &app.config.outbound,
        sinks: &app.config.sinks,
        catalogue: app.validator.catalogue(),
        connect_timeout: audit_sinks::outbound::CONNECT_TIMEOUT,
        request_timeout: audit_sinks::outbound::REQUEST_TIMEOUT,
    };
    let answer = match audit_sinks::send_test_event(&org_id, destination, &settings).await {
        Ok(delivery) => json!({
            "destination_id": destination_id,
            "delivered": delivery.delivered,
            "outcome": delivery.outcome,
            "status": delivery.status,
            "latency_ms": delivery.latency_ms,
            "response_excerpt": delivery.response_excerpt,
            "webhook_id": delivery.webhook_id,
            "event_id": delivery.event_id,
        }),
        Err(error) => json!({
            "destination_id": destination_id,
            "delivered": false,
            "outcome": "misconfigured",
            "status": "config",
            "latency_ms": 0,
            "response_excerpt": error.to_string(),
        }),
    };
    tracing::info!(
        org_id,
        destination_id,
        operator = %operator.name,
        delivered = %answer["delivered"],
        status = %answer["status"],
        "destination tested"
    );
    let text = |key: &str| match &answer[key] {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let event = meta::event(
        &org_id,
        "audit_log.destination.tested",
        meta::operator_actor(&operator.name),
        &headers,
    )
    .target("destination", &destination_id, Some(&destination.name))
    .meta("destination_type", destination.config.type_name())
    .meta("delivered", text("delivered"))
    .meta("status", text("status"))
    .meta("latency_ms", text("latency_ms"));
    meta::record(&app, event).await?;
    Ok(Json(answer))
}

/// A destination's delivery health, as its forwarder instances report it
#[utoipa::path(get, path = "/v1/admin/orgs/{org}/destinations/{destination}/health", tag = "admin", operation_id = "getDestinationHealth",
    params(OrgPath, DestinationPath),
    responses(
        (status = 200, description = "Health over every reporting instance", body = DestinationHealthView),
        BadRequest, NotFound,
    ),
    security(("operator_token" = [])))]
pub async fn health(
    State(app): State<Arc<App>>,
    OperatorAuth(_operator): OperatorAuth,
    Path((org_id, destination_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    check_org_id(&org_id)?;
    let view = app.settings.view();
    let destination = destinations::find(&view, &org_id, &destination_id)?;
    // Records of instances that stopped reporting (expired) are left out.
    let now = time::OffsetDateTime::now_utc();
    let mut reports: Vec<&DestinationHealth> = view
        .health
        .values()
        .map(|record| record.as_ref())
        .filter(|record| record.org_id == org_id && record.destination_id == destination_id)
        .filter(|record| !record.is_expired(now))
        .collect();
    reports.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(Json(aggregate(destination, &reports)))
}

/// One view of a destination over every instance's report: the worst state, the latest
/// success and failure, the longest failure streak, summed backlog and counters.
fn aggregate(destination: &audit_settings::Destination, reports: &[&DestinationHealth]) -> Value {
    let paused = match &destination.state {
        DestinationState::Paused { since, reason } => {
            Some(json!({"since": rfc3339(*since), "reason": reason}))
        }
        DestinationState::Active => None,
    };
    let rank = |state: &str| match state {
        "paused" => 2,
        "retrying" => 1,
        _ => 0,
    };
    let state = if paused.is_some() {
        "paused".to_string()
    } else if !destination.enabled {
        "disabled".to_string()
    } else {
        reports
            .iter()
            .max_by_key(|record| rank(&record.state))
            .map_or_else(|| "unknown".to_string(), |record| record.state.clone())
    };
    let last_success = reports.iter().filter_map(|r| r.last_success_at).max();
    let last_failure = reports
        .iter()
        .filter(|r| r.last_failure_at.is_some())
        .max_by_key(|r| r.last_failure_at);
    json!({
        "destination_id": destination.id,
        "type": destination.config.type_name(),
        "state": state,
        "paused": paused,
        "last_success_at": last_success.map(rfc3339),
        "last_failure": last_failure.map(|r| json!({
            "at": r.last_failure_at.map(rfc3339),
            "status": r.last_failure_status,
            "response_excerpt": r.last_failure_excerpt,
        })),
        "consecutive_failures": reports.iter().map(|r| r.consecutive_failures).max().unwrap_or(0),
        "backlog": reports.iter().map(|r| r.backlog).sum::<u64>(),
        "delivered_total": reports.iter().map(|r| r.delivered_total).sum::<u64>(),
        "dead_lettered_total": reports.iter().map(|r| r.dead_lettered_total).sum::<u64>(),
        "instances": reports.iter().map(|r| json!({
            "instance": r.instance,
            "state": r.state,
            "consecutive_failures": r.consecutive_failures,
            "backlog": r.backlog,
            "updated_at": rfc3339(r.updated_at),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
