//! `POST /v1/events`: one event, a JSON array of events, or NDJSON.
//!
//! # Batch semantics
//! By default each event stands alone: valid events are published, invalid ones are rejected
//! with their errors, and the response lists every event by index (202 when all were
//! accepted, 207 when some were, 422/403 when none were). With `?atomic=true` the request is
//! all-or-nothing: one invalid event rejects the whole request and nothing is published.
//!
//! # Durability
//! The response is sent only after Kafka acknowledged every accepted event. If Kafka is
//! unavailable or the gateway's queue is full, the answer is 503 with `Retry-After`, listing
//! the ids the events were given: retrying with those ids cannot create duplicates.
//!
//! # Bounds
//! A request is checked in this order, each step bounded before the next starts:
//! 1. the producer key (401) and the content type (415), from the headers alone;
//! 2. the producer's in-flight cap (`ingest.max_concurrent_requests_per_producer`, 429);
//! 3. the body ([`body`]): size (413), deadline (408), the gateway-wide byte budget (503);
//! 4. an ingest permit (`ingest.max_concurrent_requests`, 503) — only once the body is in,
//!    so slow senders never hold one;
//! 5. the event count, counted while splitting ([`documents`]) without building the events
//!    (413), then each event parsed, validated and dropped in turn.
//!
//! # Idempotency
//! An event's `id` is its deduplication key. Without one, a single-event request carrying an
//! `Idempotency-Key` header gets an id derived from (producer, organization, key), and event
//! *n* of a batch from (producer, organization, key, n); otherwise a fresh UUIDv7.
//!
//! History imports (`POST /v1/events/import`, streamed NDJSON with their own limits) are in
//! [`import`].

pub mod body;
pub mod documents;
pub mod import;
pub mod lines;

use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::Signer;
use audit_core::validate::Arrival;
use audit_core::{FieldError, Provenance};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::body::BodyLimits;
use self::documents::BodyFormat;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::App;
use crate::auth::producer::{self, Producer};
use crate::error::{ApiError, ApiQuery, ApiResult, ErrorResponse, RetryLater};
use crate::publisher::{Outgoing, PublishError};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// All-or-nothing: reject the whole request if any event is invalid.
    #[serde(default)]
    pub atomic: bool,
}

/// Headers of an ingest request.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by the derive
pub struct IngestHeaders {
    /// Without event ids: a single event gets an id derived from (producer, organization,
    /// key), event *n* of a batch from (producer, organization, key, n), so a retry with the
    /// same key cannot create duplicates.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, max_length = 1024)]
    idempotency_key: Option<String>,
}

/// An event or an array of events.
pub struct IngestBody;

impl utoipa::PartialSchema for IngestBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
        let event = || utoipa::openapi::Ref::from_schema_name("AuditEvent");
        OneOfBuilder::new()
            .description(Some("An event, or an array of events"))
            .item(event())
            .item(ArrayBuilder::new().items(event()).min_items(Some(1)))
            .into()
    }
}

impl ToSchema for IngestBody {}

/// What happened to every event of a request.
#[derive(ToSchema)]
#[allow(dead_code)] // read by the derive: the body is built with `json!`
pub struct IngestOutcome {
    accepted: usize,
    rejected: usize,
    results: Vec<EventResult>,
    /// The event's id (a single-event request only; `null` when it was rejected).
    #[schema(format = "uuid")]
    id: Option<String>,
    /// Why nothing was published (403, 422).
    error: Option<crate::error::ErrorDetail>,
}

/// The outcome for one event of a request.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    pub index: usize,
    /// `accepted` or `rejected`.
    #[schema(pattern = "^(accepted|rejected)$")]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = "uuid")]
    pub id: Option<Uuid>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EventError>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventError {
    pub code: &'static str,
    pub path: String,
    pub reason: String,
}

/// Publish events
///
/// One event, a JSON array of events, or NDJSON. Each event stands alone unless
/// `atomic=true`: valid ones are published, invalid ones rejected with their errors, and the
/// answer lists every event by index (202 all accepted, 207 some, 422/403 none). 2xx only
/// after Kafka acknowledged every accepted event; on 503 retry with the ids in
/// `error.details.ids`, which cannot create duplicates.
#[utoipa::path(post, path = "/v1/events", tag = "ingest", operation_id = "publishEvents",
    params(IngestParams, IngestHeaders),
    request_body(
        description = "An event, an array of events (at most `ingest.max_events_per_request`), or NDJSON",
        content(
            (IngestBody = "application/json"),
            (String = "application/x-ndjson"),
        )
    ),
    responses(
        (status = 202, description = "Every event accepted and acknowledged by Kafka", body = IngestOutcome),
        (status = 207, description = "Some events accepted (and acknowledged), some rejected", body = IngestOutcome),
        (status = 400, response = ErrorResponse),
        (status = 403, description = "Every event was outside the key's scope (categories, organizations)", body = IngestOutcome),
        (status = 408, response = ErrorResponse),
        (status = 413, response = ErrorResponse),
        (status = 415, response = ErrorResponse),
        (status = 422, description = "No event accepted (or one invalid event with `atomic=true`)", body = IngestOutcome),
        (status = 429, response = RetryLater),
        (status = 503, response = RetryLater),
    ),
    security(("producer_key" = []), ("producer_key_header" = [])))]
pub async fn ingest(
    State(app): State<Arc<App>>,
    ApiQuery(params): ApiQuery<IngestParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let producer = authenticate(&app, &headers)?;
    let format = body_format(&headers)?;
    let _producer_slot = app
        .producer_slots
        .admit(&producer.record.key_id, app.config.ingest.retry_after_secs)?;
    let _in_flight = InFlight::start("gateway_ingest_requests_in_flight");
    let limits = BodyLimits {
        max_bytes: app.config.ingest.max_body_bytes,
        timeout: Duration::from_secs(app.config.ingest.body_timeout_secs),
        retry_after_secs: app.config.ingest.retry_after_secs,
    };
    let body = body::read_body(body, &headers, limits, &app.body_budget).await?;
    let Ok(_permit) = app.ingest_permits.try_acquire() else {
        metrics::counter!("gateway_shed_requests_total", "reason" => "permits").increment(1);
        return Err(ApiError::unavailable(
            "the gateway is at its concurrent request limit",
            app.config.ingest.retry_after_secs,
        ));
    };
    let documents = documents::split(
        &body.bytes,
        format,
        app.config.ingest.max_events_per_request,
    )?;
    let single = documents.single;
    let idempotency_key = idempotency_key(&headers)?;

    let now = OffsetDateTime::now_utc();
    let mut results = Vec::with_capacity(documents.items.len());
    let mut accepted = Vec::with_capacity(documents.items.len());
    for (index, raw) in documents.items.iter().enumerate() {
        let arrival = |fallback_id| Arrival {
            now,
            received_at: now,
            fallback_id,
            provenance: Provenance::Gateway,
            verified_source: Some(producer.name()),
        };
        let outcome = match idempotency_key {
            // The fallback id is random: validate the bytes (a valid event is decoded once,
            // without a JSON tree).
            None => {
                let arrival = arrival(audit_core::event::new_event_id());
                let valid = app.validator.validate_bytes(raw, arrival);
                admit(&app, &producer, valid, arrival)
            }
            // The fallback id derives from the key and the document's organization: one
            // event's value at a time, parsed, validated, dropped.
            Some(_) => match app.validator.parse(raw) {
                Ok(value) => {
                    let fallback_id =
                        fallback_id(&producer, &value, idempotency_key, single, index);
                    let arrival = arrival(fallback_id);
                    let valid = app.validator.validate_value(&value, arrival);
                    admit(&app, &producer, valid, arrival)
                }
                Err(errors) => Err(invalid(errors)),
            },
        };
        match outcome {
            Ok(valid) => {
                results.push(EventResult {
                    index,
                    status: "accepted",
                    id: Some(valid.event.id),
                    errors: Vec::new(),
                });
                accepted.push(valid);
            }
            Err(errors) => results.push(EventResult {
                index,
                status: "rejected",
                id: None,
                errors,
            }),
        }
    }
    let rejected = results.len() - accepted.len();
    record_outcomes(&producer, &results);

    if rejected > 0 && (params.atomic || accepted.is_empty()) {
        return Ok(rejection_response(results, single, params.atomic));
    }

    let outgoing: Vec<Outgoing<'_>> = accepted
        .iter()
        .map(|valid| Outgoing {
            org_id: &valid.event.org_id,
            json: &valid.json,
        })
        .collect();
    if let Err(error) = app
        .publisher
        .publish(&outgoing, producer.name(), Signer::Gateway)
        .await
    {
        let ids: Vec<Uuid> = accepted.iter().map(|valid| valid.event.id).collect();
        tracing::warn!(%error, events = ids.len(), producer = producer.name(), "publish failed; answering 503");
        let retry_after = match error {
            PublishError::Busy => app.config.ingest.retry_after_secs,
            PublishError::NotAcknowledged(_) => app.config.ingest.retry_after_secs.max(2),
        };
        return Err(ApiError::Unavailable {
            message: format!("{error}; nothing is guaranteed stored — retry with the same ids"),
            retry_after_secs: retry_after,
            details: Some(json!({"ids": ids})),
        });
    }
    metrics::counter!("gateway_events_accepted_total", "producer" => producer.name().to_string())
        .increment(accepted.len() as u64);

    let status = if rejected == 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut body = json!({"accepted": accepted.len(), "rejected": rejected, "results": results});
    if single {
        body["id"] = json!(accepted.first().map(|valid| valid.event.id));
    }
    Ok((status, Json(body)).into_response())
}

/// The producer key of the request (401 otherwise, counted as an unauthenticated rejection).
fn authenticate(app: &App, headers: &HeaderMap) -> ApiResult<Producer> {
    producer::authenticate(headers, &app.settings.view()).inspect_err(|_| {
        metrics::counter!("gateway_events_rejected_total", "reason" => "unauthenticated", "producer" => "").increment(1);
    })
}

/// A validated event (the validator stamps the server-owned fields: received_at (now),
/// provenance and source (this key's name), whatever the producer sent), if the
/// organization's retention and the producer key's scope admit it.
fn admit(
    app: &App,
    producer: &Producer,
    valid: Result<audit_core::validate::ValidEvent, Vec<FieldError>>,
    arrival: Arrival<'_>,
) -> Result<audit_core::validate::ValidEvent, Vec<EventError>> {
    let valid = valid.map_err(invalid)?;
    let settings = app.settings.view();
    app.config
        .plans
        .check_retained(
            &valid.event.org_id,
            settings.org(&valid.event.org_id).map(AsRef::as_ref),
            valid.event.occurred_at,
            arrival.now,
        )
        .map_err(|refusal| {
            vec![EventError {
                code: "invalid",
                path: "$.occurred_at".into(),
                reason: refusal.to_string(),
            }]
        })?;
    producer
        .check_scope(&valid.event, app.validator.catalogue())
        .map_err(|refusal| {
            vec![EventError {
                code: "forbidden",
                path: "$".into(),
                reason: refusal.to_string(),
            }]
        })?;
    Ok(valid)
}

/// Counts requests in progress in a gauge while alive (`gateway_ingest_requests_in_flight`
/// past authentication, `gateway_imports_in_flight`).
struct InFlight(&'static str);

impl InFlight {
    fn start(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

fn invalid(errors: Vec<FieldError>) -> Vec<EventError> {
    errors
        .into_iter()
        .map(|FieldError { path, reason }| EventError {
            code: "invalid",
            path,
            reason,
        })
        .collect()
}

/// The longest `Idempotency-Key` accepted (as documented).
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 1024;

/// The request's `Idempotency-Key`, refused when longer than documented.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok());
    match key {
        Some(key) if key.len() > MAX_IDEMPOTENCY_KEY_BYTES => Err(ApiError::bad_request(
            "Idempotency-Key",
            format!("must be at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
        )),
        key => Ok(key),
    }
}

fn fallback_id(
    producer: &Producer,
    document: &Value,
    idempotency_key: Option<&str>,
    single: bool,
    index: usize,
) -> Uuid {
    let org_id = document.get("org_id").and_then(Value::as_str);
    match (idempotency_key, org_id) {
        (Some(key), Some(org_id)) if single => {
            audit_core::event::idempotent_event_id(&producer.record.key_id, org_id, key)
        }
        (Some(key), Some(org_id)) => audit_core::event::idempotent_event_id(
            &producer.record.key_id,
            org_id,
            &format!("{key}#{index}"),
        ),
        _ => audit_core::event::new_event_id(),
    }
}

fn rejection_response(results: Vec<EventResult>, single: bool, atomic: bool) -> Response {
    let rejected: Vec<&EventResult> = results.iter().filter(|r| r.status == "rejected").collect();
    let all_forbidden = rejected
        .iter()
        .all(|r| r.errors.iter().all(|e| e.code == "forbidden"));
    let (status, code) = if all_forbidden {
        (StatusCode::FORBIDDEN, "forbidden")
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
    };
    let first = rejected
        .first()
        .and_then(|r| r.errors.first())
        .map(|e| format!("{}: {}", e.path, e.reason))
        .unwrap_or_default();
    let message = if single {
        first
    } else if atomic {
        format!(
            "{} of {} events are invalid; nothing was published (atomic)",
            rejected.len(),
            results.len()
        )
    } else {
        format!("all {} events were rejected", results.len())
    };
    let body = json!({
        "error": {"code": code, "message": message},
        "accepted": 0,
        "rejected": rejected.len(),
        "results": results,
    });
    (status, Json(body)).into_response()
}

fn record_outcomes(producer: &Producer, results: &[EventResult]) {
    for result in results.iter().filter(|r| r.status == "rejected") {
        let reason = result.errors.first().map(|e| e.code).unwrap_or("invalid");
        metrics::counter!("gateway_events_rejected_total", "reason" => reason, "producer" => producer.name().to_string())
            .increment(1);
    }
}

fn body_format(headers: &HeaderMap) -> ApiResult<BodyFormat> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/json") => Ok(BodyFormat::Json),
        Some("application/x-ndjson" | "application/ndjson" | "application/jsonl") => {
            Ok(BodyFormat::Ndjson)
        }
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "content type `{other}` is not accepted; send application/json or application/x-ndjson"
        ))),
        None => Err(ApiError::UnsupportedMediaType(
            "missing Content-Type; send application/json or application/x-ndjson".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        assert!(matches!(
            body_format(&headers),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        headers.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().expect("header"),
        );
        assert_eq!(body_format(&headers).expect("json"), BodyFormat::Json);
        headers.insert(
            header::CONTENT_TYPE,
            "application/x-ndjson".parse().expect("header"),
        );
        assert_eq!(body_format(&headers).expect("ndjson"), BodyFormat::Ndjson);
        headers.insert(header::CONTENT_TYPE, "text/csv".parse().expect("header"));
        assert!(matches!(
            body_format(&headers),
            Err(ApiError::UnsupportedMediaType(_))
        ));
    }
}
