//! `POST /v1/events/import`: migrating years of history from another audit log.
//!
//! # Contract
//! The body is NDJSON (one event per line), streamed: it is read, split ([`lines`]),
//! validated and published a chunk at a time, never held whole. Every line is validated
//! exactly as `POST /v1/events` validates an event (server-owned fields stamped by the
//! server, the key's scope, the organization's retention); a bad line is reported with its
//! number and errors and the import goes on. The answer is 200 with a summary (422 when every line was refused)
//! (`accepted`, `rejected`, `errors: [{line, errors}]` — the first [`MAX_REPORTED_LINES`],
//! then `errors_not_shown` —, `first_id`/`last_id`, `durable_through_line`).
//!
//! # Resuming and idempotency
//! Lines are numbered in the file; `?first_line=N` says the body starts at line N of the
//! file (after an interruption: `tail -n +N file`). An event without an `id` gets one derived
//! from (producer key, organization, `Idempotency-Key` or the line's SHA-256, line number),
//! so sending the same lines again stores nothing twice. Accepted events are published in
//! batches of `ingest.max_events_per_request`, each acknowledged by Kafka before the next:
//! when the import stops early — Kafka failing (503), the body stalling (408), too big or
//! too many events (413), unreadable (400) — the error carries the summary, and
//! `durable_through_line` says up to which line everything is either stored or reported.
//!
//! # Bounds (an import must not swamp the shared pipeline)
//! * one import per producer key and `ingest.max_concurrent_imports` per instance, else
//!   429 with `Retry-After: ingest.import_retry_after_secs`;
//! * `ingest.import_max_body_bytes` and `ingest.import_max_events` per request (413);
//! * every `ingest.max_body_bytes` of body must arrive within `ingest.body_timeout_secs`
//!   (the time spent publishing does not count), else 408 and the connection is closed;
//! * a line over four times `limits.max_event_bytes` is counted, never buffered, and
//!   rejected like an oversized event of `POST /v1/events`;
//! * publishing is paced to `ingest.import_max_events_per_sec`, and only one batch of an
//!   import is ever queued for Kafka, so live ingest and indexing keep their freshness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::Provenance;
use audit_core::integrity::Signer;
use audit_core::validate::{Arrival, ValidEvent};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::lines::{Line, LineSplitter, pause_before};
use super::{
    EventError, InFlight, admit, authenticate, body_format, documents::BodyFormat, fallback_id,
    invalid,
};
use crate::App;
use crate::admission::{KeyedLimiter, Slot};
use crate::auth::producer::Producer;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::publisher::{Outgoing, PublishError};

/// Bad lines listed in a summary; the rest are counted in `errors_not_shown`.
pub const MAX_REPORTED_LINES: usize = 1000;

/// The largest `?first_line=` (far beyond any file, far below overflowing a counter).
const MAX_FIRST_LINE: u64 = 1 << 48;

/// The imports running on this instance: one per producer key, a few in all.
#[derive(Debug)]
pub struct Imports {
    per_key: Arc<KeyedLimiter>,
    running: Arc<Semaphore>,
    max: usize,
}

/// An admitted import; its places are freed when dropped.
#[derive(Debug)]
pub struct ImportPermit {
    _key: Slot,
    _running: tokio::sync::OwnedSemaphorePermit,
}

impl Imports {
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            per_key: KeyedLimiter::new("imports per producer key", 1),
            running: Arc::new(Semaphore::new(max_concurrent)),
            max: max_concurrent,
        }
    }

    /// Admits one import by `key_id`, or 429. The key's own cap is checked first, so a key
    /// retrying its running import never takes the instance's places.
    pub fn admit(&self, key_id: &str, retry_after_secs: u64) -> ApiResult<ImportPermit> {
        let key = self.per_key.admit(key_id, retry_after_secs)?;
        let running = self.running.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("gateway_throttled_requests_total", "limit" => "imports").increment(1);
            ApiError::TooManyRequests {
                message: format!(
                    "{} history imports are running on this gateway, the most it runs at once; retry after {retry_after_secs} s",
                    self.max
                ),
                retry_after_secs,
            }
        })?;
        Ok(ImportPermit {
            _key: key,
            _running: running,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// The number, in the file, of the body's first line (to resume an interrupted import).
    #[serde(default = "first")]
    #[param(minimum = 1, maximum = 281474976710656_u64, default = 1)]
    pub first_line: u64,
}

fn first() -> u64 {
    1
}

/// One bad line and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineErrors {
    pub line: u64,
    pub errors: Vec<EventError>,
}

/// What an import did, answered whether it completed or stopped early.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// Events stored (acknowledged by Kafka).
    pub accepted: u64,
    /// Lines rejected, each listed in `errors` (up to [`MAX_REPORTED_LINES`]).
    pub rejected: u64,
    pub errors: Vec<LineErrors>,
    pub errors_not_shown: u64,
    /// The ids of the first and last events stored.
    #[schema(value_type = Option<String>, format = "uuid")]
    pub first_id: Option<Uuid>,
    #[schema(value_type = Option<String>, format = "uuid")]
    pub last_id: Option<Uuid>,
    /// Every line up to this one is stored or rejected: resume from the next one.
    pub durable_through_line: u64,
}

/// Why an import stopped before the end of its body.
#[derive(Debug)]
enum Stop {
    TooLarge(String),
    Stalled(String),
    Unreadable(String),
    Unavailable(PublishError),
}

#[utoipa::path(post, path = "/v1/events/import", tag = "ingest", operation_id = "importEvents",
    params(ImportParams, super::IngestHeaders),
    request_body(
        description = "NDJSON, one event per line (history to import; at most `ingest.import_max_events` lines and `ingest.import_max_body_bytes`)",
        content((super::IngestBody = "application/x-ndjson")),
    ),
    responses(
        (status = 200, description = "The import's summary: events stored, lines rejected with their errors", body = Summary),
        (status = 422, description = "Every line was rejected, nothing stored (the summary lists why)", body = Summary),
        (status = 400, response = crate::error::ErrorResponse),
        (status = 408, response = crate::error::ErrorResponse),
        (status = 413, response = crate::error::ErrorResponse),
        (status = 415, response = crate::error::ErrorResponse),
        (status = 429, response = crate::error::RetryLater),
        (status = 503, response = crate::error::RetryLater),
    ),
    security(("producer_key" = []), ("producer_key_header" = [])))]
pub async fn import(
    State(app): State<Arc<App>>,
    ApiQuery(params): ApiQuery<ImportParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let producer = authenticate(&app, &headers)?;
    if body_format(&headers)? != BodyFormat::Ndjson {
        return Err(ApiError::UnsupportedMediaType(
            "an import is NDJSON, one event per line: send Content-Type: application/x-ndjson"
                .into(),
        ));
    }
    if !(1..=MAX_FIRST_LINE).contains(&params.first_line) {
        return Err(ApiError::bad_request(
            "first_line",
            format!("lines are numbered from 1 to {MAX_FIRST_LINE}"),
        ));
    }
    let config = &app.config.ingest;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > config.import_max_body_bytes) {
        return Err(ApiError::PayloadTooLarge(format!(
            "an import body is at most {} bytes (ingest.import_max_body_bytes); split the file and send the rest with ?first_line=",
            config.import_max_body_bytes
        )));
    }
    let idempotency_key = super::idempotency_key(&headers)?.map(str::to_string);
    let _permit = app
        .imports
        .admit(&producer.record.key_id, config.import_retry_after_secs)?;
    let _running = InFlight::start("gateway_imports_in_flight");
    let mut run = ImportRun::new(&app, &producer, idempotency_key, params.first_line);
    let stop = match run.read(body).await {
        // Kafka failed: the batch is not retried here, the client resumes.
        Err(failure @ Stop::Unavailable(_)) => Some(failure),
        // Whatever else stopped the body, what was validated before is published, so the
        // summary's `durable_through_line` is as far as it can be.
        stopped => run.flush().await.err().or(stopped.err()),
    };
    tracing::info!(
        producer = producer.name(),
        accepted = run.summary.accepted,
        rejected = run.summary.rejected,
        through_line = run.summary.durable_through_line,
        stopped = ?stop,
        "history import"
    );
    if stop.is_none() && run.summary.accepted == 0 && run.summary.rejected == 0 {
        return Err(ApiError::bad_request(
            "body",
            "an import needs at least one event line",
        ));
    }
    Ok(match stop {
        // Like `/v1/events`: nothing stored because every line was refused is a 422.
        None if run.summary.accepted == 0 && run.summary.rejected > 0 => {
            (StatusCode::UNPROCESSABLE_ENTITY, Json(run.summary)).into_response()
        }
        None => (StatusCode::OK, Json(run.summary)).into_response(),
        Some(stop) => stopped_response(stop, &run.summary, app.config.ingest.retry_after_secs),
    })
}

/// One import in progress.
struct ImportRun<'a> {
    app: &'a App,
    producer: &'a Producer,
    idempotency_key: Option<String>,
    splitter: LineSplitter,
    /// Validated events not yet published, and the last line taken.
    pending: Vec<ValidEvent>,
    last_line: u64,
    events: usize,
    started: Instant,
    summary: Summary,
}

impl<'a> ImportRun<'a> {
    fn new(
        app: &'a App,
        producer: &'a Producer,
        idempotency_key: Option<String>,
        first_line: u64,
    ) -> Self {
        let max_line_bytes = app.config.limits.max_event_bytes.saturating_mul(4);
        Self {
            app,
            producer,
            idempotency_key,
            splitter: LineSplitter::new(max_line_bytes, first_line),
            pending: Vec::new(),
            last_line: first_line - 1,
            events: 0,
            started: Instant::now(),
            summary: Summary {
                durable_through_line: first_line - 1,
                ..Summary::default()
            },
        }
    }

    /// Reads, validates and publishes the body until it ends or something stops it.
    async fn read(&mut self, mut body: Body) -> Result<(), Stop> {
        let config = &self.app.config.ingest;
        let chunk_bytes = config.max_body_bytes;
        let timeout = Duration::from_secs(config.body_timeout_secs);
        let mut deadline = tokio::time::Instant::now() + timeout;
        let (mut received, mut in_chunk) = (0usize, 0usize);
        let mut lines = Vec::new();
        loop {
            let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_elapsed) => {
                    metrics::counter!("gateway_body_timeouts_total").increment(1);
                    return Err(Stop::Stalled(format!(
                        "the body stalled: fewer than {chunk_bytes} bytes arrived in {} s (ingest.body_timeout_secs) after line {}",
                        timeout.as_secs(),
                        self.splitter.lines_started()
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    return Err(Stop::Unreadable(format!(
                        "could not read the body after line {}: {error}",
                        self.splitter.lines_started()
                    )));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers carry nothing we use
            };
            received += data.len();
            if received > config.import_max_body_bytes {
                return Err(Stop::TooLarge(format!(
                    "the body is over {} bytes (ingest.import_max_body_bytes)",
                    config.import_max_body_bytes
                )));
            }
            in_chunk += data.len();
            if in_chunk >= chunk_bytes {
                // A whole chunk arrived in time: the next one gets its own deadline.
                in_chunk %= chunk_bytes;
                deadline = tokio::time::Instant::now() + timeout;
            }
            self.splitter.push(&data, &mut lines);
            let paused = self.take_lines(&mut lines).await?;
            // Time spent publishing and pacing is ours, not the sender's.
            deadline += paused;
        }
        self.splitter.finish(&mut lines);
        self.take_lines(&mut lines).await?;
        Ok(())
    }

    /// Takes complete lines, publishing each time a batch is full; returns the time spent
    /// publishing.
    async fn take_lines(&mut self, lines: &mut Vec<Line>) -> Result<Duration, Stop> {
        let mut publishing = Duration::ZERO;
        for line in lines.drain(..) {
            self.events += 1;
            let max_events = self.app.config.ingest.import_max_events;
            if self.events > max_events {
                return Err(Stop::TooLarge(format!(
                    "more than {max_events} events in one import (ingest.import_max_events)"
                )));
            }
            self.take(line);
            if self.pending.len() >= self.app.config.ingest.max_events_per_request {
                let started = Instant::now();
                self.flush().await?;
                publishing += started.elapsed();
            }
        }
        Ok(publishing)
    }

    /// Validates one line: pending publication, or reported.
    fn take(&mut self, line: Line) {
        let number = line.number();
        self.last_line = number;
        let outcome = match line {
            // The message `POST /v1/events` gives an event far over the limit.
            Line::TooLong { bytes, .. } => Err(vec![EventError {
                code: "invalid",
                path: "$".into(),
                reason: format!(
                    "event is {bytes} bytes; the limit is {} bytes",
                    self.app.config.limits.max_event_bytes
                ),
            }]),
            Line::Event { bytes, .. } => self.validate(number, &bytes),
        };
        match outcome {
            Ok(valid) => self.pending.push(valid),
            Err(errors) => {
                metrics::counter!("gateway_import_lines_total", "outcome" => "rejected")
                    .increment(1);
                self.summary.rejected += 1;
                if self.summary.errors.len() < MAX_REPORTED_LINES {
                    self.summary.errors.push(LineErrors {
                        line: number,
                        errors,
                    });
                } else {
                    self.summary.errors_not_shown += 1;
                }
            }
        }
    }

    fn validate(&self, number: u64, bytes: &[u8]) -> Result<ValidEvent, Vec<EventError>> {
        let value = self.app.validator.parse(bytes).map_err(invalid)?;
        let now = OffsetDateTime::now_utc();
        let arrival = Arrival {
            now,
            received_at: now,
            fallback_id: self.line_id(&value, bytes, number),
            provenance: Provenance::Gateway,
            verified_source: Some(self.producer.name()),
        };
        let valid = self.app.validator.validate_value(&value, arrival);
        admit(self.app, self.producer, valid, arrival)
    }

    /// The id of a line without one: the same for the same producer, organization, line
    /// number and `Idempotency-Key` (or, without the header, the same line bytes).
    fn line_id(&self, value: &Value, bytes: &[u8], number: u64) -> Uuid {
        let key = match &self.idempotency_key {
            Some(key) => key.clone(),
            None => format!("import:{}", hex::encode(Sha256::digest(bytes))),
        };
        let index = usize::try_from(number).unwrap_or(usize::MAX);
        fallback_id(self.producer, value, Some(&key), false, index)
    }

    /// Publishes the pending events, paced, and waits for Kafka's acknowledgement.
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.pending.is_empty() {
            self.summary.durable_through_line = self.last_line;
            return Ok(());
        }
        let per_sec = self.app.config.ingest.import_max_events_per_sec;
        tokio::time::sleep(pause_before(
            self.summary.accepted,
            self.started.elapsed(),
            per_sec,
        ))
        .await;
        let outgoing: Vec<Outgoing<'_>> = self
            .pending
            .iter()
            .map(|valid| Outgoing {
                org_id: &valid.event.org_id,
                json: &valid.json,
            })
            .collect();
        self.app
            .publisher
            .publish(&outgoing, self.producer.name(), Signer::Gateway)
            .await
            .map_err(Stop::Unavailable)?;
        let published = self.pending.len() as u64;
        metrics::counter!("gateway_import_lines_total", "outcome" => "accepted")
            .increment(published);
        metrics::counter!("gateway_events_accepted_total", "producer" => self.producer.name().to_string())
            .increment(published);
        self.summary.accepted += published;
        self.summary.first_id = self
            .summary
            .first_id
            .or_else(|| self.pending.first().map(|valid| valid.event.id));
        self.summary.last_id = self.pending.last().map(|valid| valid.event.id);
        self.summary.durable_through_line = self.last_line;
        self.pending.clear();
        Ok(())
    }
}

/// The answer to an import that stopped early: the error, what to do, and the summary.
fn stopped_response(stop: Stop, summary: &Summary, retry_after_secs: u64) -> Response {
    let resume = format!(
        "every line through {} is stored or reported below; send the rest with ?first_line={}",
        summary.durable_through_line,
        summary.durable_through_line + 1
    );
    let (status, code, reason, retry_after) = match stop {
        Stop::TooLarge(reason) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            reason,
            None,
        ),
        Stop::Stalled(reason) => (StatusCode::REQUEST_TIMEOUT, "request_timeout", reason, None),
        Stop::Unreadable(reason) => (StatusCode::BAD_REQUEST, "malformed_request", reason, None),
        Stop::Unavailable(error) => {
            let wait = match error {
                PublishError::Busy => retry_after_secs,
                PublishError::NotAcknowledged(_) => retry_after_secs.max(2),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                error.to_string(),
                Some(wait),
            )
        }
    };
    let body = json!({"error": {
        "code": code,
        "message": format!("{reason}; {resume}"),
        "details": summary,
    }});
    let mut response = (status, Json(body)).into_response();
    if let Some(wait) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still be on its way: do not read it, close.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_import_per_key_and_a_few_in_all() {
        let imports = Imports::new(2);
        let first = imports.admit("key_a", 30).unwrap();
        match imports.admit("key_a", 30) {
            Err(ApiError::TooManyRequests {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 30),
            other => panic!("{other:?}"),
        }
        let _second = imports.admit("key_b", 30).unwrap();
        match imports.admit("key_c", 30) {
            Err(ApiError::TooManyRequests { message, .. }) => {
                assert!(message.contains("2 history imports"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(imports.admit("key_c", 30).is_ok());
    }

    #[tokio::test]
    async fn a_stopped_import_says_where_to_resume() {
        let summary = Summary {
            accepted: 2000,
            durable_through_line: 2004,
            ..Summary::default()
        };
        let response = stopped_response(
            Stop::Unavailable(PublishError::NotAcknowledged("down".into())),
            &summary,
            1,
        );
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("through 2004"), "{message}");
        assert!(message.contains("?first_line=2005"), "{message}");
        assert_eq!(body["error"]["details"]["accepted"], 2000);
        let stalled = stopped_response(Stop::Stalled("stalled".into()), &summary, 1);
        assert_eq!(stalled.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(stalled.headers()[header::CONNECTION], "close");
    }
}
