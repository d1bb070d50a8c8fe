//! A fake Datadog Logs intake (v2).
//!
//! `POST /api/v2/logs` with `DD-API-KEY` (missing → 401, wrong → 403, `{"errors":[…]}`),
//! `Content-Encoding: gzip` or `deflate` or none; a JSON array of log objects (or one object).
//! More than `max_request_bytes` uncompressed (5 MB) → 413; more than 1,000 entries, a
//! malformed payload, a log without `message`, or a poison event → 400 (the whole payload is
//! refused); logs over 1 MB are truncated but accepted; success → 202 `{}`. Logs with a
//! timestamp more than 18 h old are accepted but counted (Datadog does not index them as-is).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::{Fake, FakeCore, HttpServer, control_routes};

#[derive(Debug, Clone)]
pub struct DatadogSetup {
    pub api_key: String,
    /// Uncompressed payload limit (the intake's is 5 MB).
    pub max_request_bytes: usize,
    pub max_entries: usize,
    pub max_log_bytes: usize,
    pub signing_secrets: Vec<String>,
    pub record_items: bool,
    pub port: u16,
}

impl Default for DatadogSetup {
    fn default() -> Self {
        Self {
            api_key: "dd-api-key-0123456789abcdef".into(),
            max_request_bytes: 5_000_000,
            max_entries: 1_000,
            max_log_bytes: 1_000_000,
            signing_secrets: vec![super::SIGNING_SECRET.into()],
            record_items: true,
            port: 0,
        }
    }
}

struct DatadogState {
    core: Arc<FakeCore>,
    setup: DatadogSetup,
    stale_timestamps: AtomicU64,
    truncated: AtomicU64,
    gzip_requests: AtomicU64,
}

pub struct FakeDatadog {
    core: Arc<FakeCore>,
    server: HttpServer,
    state: Arc<DatadogState>,
}

impl Fake for FakeDatadog {
    fn core(&self) -> &Arc<FakeCore> {
        &self.core
    }

    fn server(&self) -> &HttpServer {
        &self.server
    }
}

impl FakeDatadog {
    pub async fn start(setup: DatadogSetup) -> Self {
        let secrets: Vec<&str> = setup.signing_secrets.iter().map(String::as_str).collect();
        let core = FakeCore::new(&secrets, setup.record_items);
        let port = setup.port;
        let state = Arc::new(DatadogState {
            core: core.clone(),
            setup,
            stale_timestamps: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            gzip_requests: AtomicU64::new(0),
        });
        let router = Router::new()
            .route("/api/v2/logs", post(logs))
            .with_state(state.clone())
            .merge(control_routes(core.clone()));
        let server = HttpServer::start(router, port)
            .await
            .expect("bind fake Datadog");
        Self {
            core,
            server,
            state,
        }
    }

    pub fn api_key(&self) -> &str {
        &self.state.setup.api_key
    }

    /// Requests that came gzip-compressed.
    pub fn gzip_requests(&self) -> u64 {
        self.state.gzip_requests.load(Ordering::Relaxed)
    }

    pub fn stale_timestamps(&self) -> u64 {
        self.state.stale_timestamps.load(Ordering::Relaxed)
    }
}

fn errors(state: &DatadogState, status: u16, message: &str) -> Response {
    state.core.answer(status, json!({"errors": [message]}))
}

async fn logs(State(state): State<Arc<DatadogState>>, headers: HeaderMap, body: Bytes) -> Response {
    let webhook_id = match state.core.admit(&headers, &body).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    match headers.get("dd-api-key").and_then(|v| v.to_str().ok()) {
        None => return errors(&state, 401, "Unauthorized"),
        Some(key) if key != state.setup.api_key => return errors(&state, 403, "Forbidden"),
        Some(_) => {}
    }
    let encoding = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .to_ascii_lowercase();
    let limit = state.setup.max_request_bytes as u64 + 1;
    let mut payload = Vec::new();
    let decoded = match encoding.as_str() {
        "gzip" => {
            state.gzip_requests.fetch_add(1, Ordering::Relaxed);
            flate2::read::GzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut payload)
        }
        "deflate" => flate2::read::ZlibDecoder::new(&body[..])
            .take(limit)
            .read_to_end(&mut payload),
        _ => {
            payload.extend_from_slice(&body[..body.len().min(limit as usize)]);
            Ok(payload.len())
        }
    };
    if decoded.is_err() {
        return errors(&state, 400, "Malformed payload: cannot decompress");
    }
    if payload.len() > state.setup.max_request_bytes {
        return errors(&state, 413, "Request Entity Too Large");
    }
    let logs: Vec<Value> = match serde_json::from_slice::<Value>(&payload) {
        Ok(Value::Array(logs)) => logs,
        Ok(object @ Value::Object(_)) => vec![object],
        _ => return errors(&state, 400, "Malformed payload"),
    };
    if logs.len() > state.setup.max_entries {
        return errors(
            &state,
            400,
            "Too many log entries in the payload (max 1000)",
        );
    }
    let stale_before_ms = (super::now_us() / 1000) as i64 - 18 * 3600 * 1000;
    let mut accepted = Vec::with_capacity(logs.len());
    for log in logs {
        if log.get("message").is_none() {
            return errors(&state, 400, "Log is missing the message attribute");
        }
        let id = log
            .pointer("/audit/id")
            .or_else(|| log.pointer("/ocsf/metadata/uid"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if state.core.is_poison(&id) {
            return errors(&state, 400, "Bad Request: a log entry is invalid");
        }
        if log
            .get("timestamp")
            .and_then(Value::as_i64)
            .is_some_and(|ts| ts < stale_before_ms)
        {
            state.stale_timestamps.fetch_add(1, Ordering::Relaxed);
        }
        if serde_json::to_vec(&log).map(|v| v.len()).unwrap_or(0) > state.setup.max_log_bytes {
            state.truncated.fetch_add(1, Ordering::Relaxed);
        }
        accepted.push((id, Some(log)));
    }
    state.core.accept(&webhook_id, accepted);
    state.core.answer(202, json!({}))
}
