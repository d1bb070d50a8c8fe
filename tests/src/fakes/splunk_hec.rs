//! A fake Splunk HTTP Event Collector.
//!
//! `POST /services/collector/event` (and `/services/collector`): `Authorization: Splunk
//! <token>` (2 token required / 3 invalid authorization → 401, 4 invalid token / 1 token
//! disabled → 403); body = JSON envelopes back to back (5 no data, 6 invalid data format,
//! 12 event field required, 13 event field blank, 7 incorrect index → 400 with
//! `invalid-event-number`: the envelopes before it are indexed, it and the rest are not);
//! `max_content_length` → 413. With indexer acknowledgement on, a channel is required
//! (`X-Splunk-Request-Channel` or `?channel=`; 10 missing / 11 invalid → 400), answers carry
//! `ackId`, and `POST /services/collector/ack` answers `{"acks":{"0":true}}` once the request
//! is "indexed" (`ack_delay` later); with it off, `/ack` answers 14 ACK is disabled.
//! `GET /services/collector/health` → `{"text":"HEC is healthy","code":17}`.

// Early-return helpers hand back the HTTP answer itself as their error.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{EventRead, Fake, FakeCore, HttpServer, control_routes};

/// How the fake HEC is set up.
#[derive(Debug, Clone)]
pub struct HecSetup {
    pub token: String,
    /// Indexes the token may write to (`None`: any).
    pub allowed_indexes: Option<Vec<String>>,
    pub indexer_ack: bool,
    /// How long after a request its ack turns true.
    pub ack_delay: Duration,
    /// Largest body accepted (Splunk Enterprise's default is 800 MB; Cloud is lower).
    pub max_content_length: usize,
    pub signing_secrets: Vec<String>,
    /// Keep each envelope (off for benchmarks).
    pub record_items: bool,
    /// Port, 0 for any.
    pub port: u16,
}

impl Default for HecSetup {
    fn default() -> Self {
        Self {
            token: "11111111-2222-3333-4444-555555555555".into(),
            allowed_indexes: None,
            indexer_ack: false,
            ack_delay: Duration::from_millis(200),
            max_content_length: 838_860_800,
            signing_secrets: vec![super::SIGNING_SECRET.into()],
            record_items: true,
            port: 0,
        }
    }
}

#[derive(Debug, Default)]
struct AckState {
    next_id: HashMap<String, u64>,
    ready_at: HashMap<(String, u64), Instant>,
}

struct HecState {
    core: Arc<FakeCore>,
    setup: HecSetup,
    token_disabled: Mutex<bool>,
    acks: Mutex<AckState>,
}

pub struct FakeHec {
    core: Arc<FakeCore>,
    server: HttpServer,
    state: Arc<HecState>,
}

impl Fake for FakeHec {
    fn core(&self) -> &Arc<FakeCore> {
        &self.core
    }

    fn server(&self) -> &HttpServer {
        &self.server
    }
}

impl FakeHec {
    pub async fn start(setup: HecSetup) -> Self {
        let secrets: Vec<&str> = setup.signing_secrets.iter().map(String::as_str).collect();
        let core = FakeCore::new(&secrets, setup.record_items);
        let port = setup.port;
        let state = Arc::new(HecState {
            core: core.clone(),
            setup,
            token_disabled: Mutex::new(false),
            acks: Mutex::new(AckState::default()),
        });
        let router = Router::new()
            .route("/services/collector/event", post(events))
            .route("/services/collector", post(events))
            .route("/services/collector/ack", post(ack))
            .route("/services/collector/health", get(health))
            .with_state(state.clone())
            .merge(control_routes(core.clone()));
        let server = HttpServer::start(router, port)
            .await
            .expect("bind fake HEC");
        Self {
            core,
            server,
            state,
        }
    }

    pub fn token(&self) -> &str {
        &self.state.setup.token
    }

    /// Disables the token (HEC code 1).
    pub fn disable_token(&self, disabled: bool) {
        *self.state.token_disabled.lock().unwrap() = disabled;
    }
}

fn hec(
    state: &HecState,
    status: u16,
    text: &str,
    code: u32,
    invalid_event: Option<usize>,
) -> Response {
    let mut body = json!({"text": text, "code": code});
    if let Some(index) = invalid_event {
        body["invalid-event-number"] = json!(index);
    }
    state.core.answer(status, body)
}

fn check_token(state: &HecState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(hec(state, 401, "Token is required", 2, None));
    };
    let Some(token) = value.strip_prefix("Splunk ") else {
        return Err(hec(state, 401, "Invalid authorization", 3, None));
    };
    if token.trim() != state.setup.token {
        return Err(hec(state, 403, "Invalid token", 4, None));
    }
    if *state.token_disabled.lock().unwrap() {
        return Err(hec(state, 403, "Token disabled", 1, None));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct ChannelQuery {
    channel: Option<String>,
}

fn channel(
    state: &HecState,
    headers: &HeaderMap,
    query: &ChannelQuery,
) -> Result<Option<String>, Response> {
    if !state.setup.indexer_ack {
        return Ok(None);
    }
    let channel = headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query.channel.clone());
    let Some(channel) = channel else {
        return Err(hec(state, 400, "Data channel is missing", 10, None));
    };
    if uuid::Uuid::parse_str(&channel).is_err() {
        return Err(hec(state, 400, "Invalid data channel", 11, None));
    }
    Ok(Some(channel))
}

#[derive(Deserialize)]
struct Envelope {
    /// Read in the envelope's one pass (`null` is a blank event, not a missing one).
    #[serde(default, deserialize_with = "present")]
    event: Option<EventRead>,
    #[serde(default)]
    index: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<EventRead>, D::Error> {
    EventRead::deserialize(deserializer).map(Some)
}

async fn events(
    State(state): State<Arc<HecState>>,
    Query(query): Query<ChannelQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let webhook_id = match state.core.admit(&headers, &body).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    if let Err(response) = check_token(&state, &headers) {
        return response;
    }
    let channel = match channel(&state, &headers, &query) {
        Ok(channel) => channel,
        Err(response) => return response,
    };
    if body.len() > state.setup.max_content_length {
        return state
            .core
            .answer(413, json!({"text": "Content too large", "code": 413}));
    }
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(_) => return hec(&state, 400, "Invalid data format", 6, Some(0)),
    };
    if text.trim().is_empty() {
        return hec(&state, 400, "No data", 5, None);
    }
    let mut accepted: Vec<(String, Option<Value>)> = Vec::new();
    let mut refusal = None;
    // Envelopes back to back, each read once (its text, for the record, is the stream's span).
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Envelope>();
    let mut envelope_start = 0;
    for index in 0.. {
        let Some(envelope) = stream.next() else {
            break;
        };
        let raw = &text[envelope_start..stream.byte_offset()];
        envelope_start = stream.byte_offset();
        let Ok(envelope) = envelope else {
            refusal = Some(("Invalid data format", 6, index));
            break;
        };
        let Some(event) = envelope.event else {
            refusal = Some(("Event field is required", 12, index));
            break;
        };
        if event.blank {
            refusal = Some(("Event field cannot be blank", 13, index));
            break;
        }
        if let (Some(allowed), Some(index_name)) = (&state.setup.allowed_indexes, &envelope.index)
            && !allowed.contains(index_name)
        {
            refusal = Some(("Incorrect index", 7, index));
            break;
        }
        let id = event.id.unwrap_or_default();
        if state.core.is_poison(&id) {
            refusal = Some(("Invalid data format", 6, index));
            break;
        }
        let item = state
            .core
            .record_items()
            .then(|| serde_json::from_str::<Value>(raw).unwrap_or(Value::Null));
        accepted.push((id, item));
    }
    // Envelopes before a refused one are indexed.
    state.core.accept(&webhook_id, accepted);
    if let Some((text, code, index)) = refusal {
        return hec(&state, 400, text, code, Some(index));
    }
    match channel {
        Some(channel) => {
            let ack_id = {
                let mut acks = state.acks.lock().unwrap();
                let next = acks.next_id.entry(channel.clone()).or_insert(0);
                let id = *next;
                *next += 1;
                acks.ready_at
                    .insert((channel, id), Instant::now() + state.setup.ack_delay);
                id
            };
            state
                .core
                .answer(200, json!({"text": "Success", "code": 0, "ackId": ack_id}))
        }
        None => state
            .core
            .answer(200, json!({"text": "Success", "code": 0})),
    }
}

#[derive(Deserialize)]
struct AckRequest {
    acks: Vec<u64>,
}

async fn ack(
    State(state): State<Arc<HecState>>,
    Query(query): Query<ChannelQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = state.core.admit(&headers, &body).await {
        return response;
    }
    if let Err(response) = check_token(&state, &headers) {
        return response;
    }
    if !state.setup.indexer_ack {
        return hec(&state, 400, "ACK is disabled", 14, None);
    }
    let channel = match channel(&state, &headers, &query) {
        Ok(Some(channel)) => channel,
        Ok(None) => return hec(&state, 400, "Data channel is missing", 10, None),
        Err(response) => return response,
    };
    let Ok(request) = serde_json::from_slice::<AckRequest>(&body) else {
        return hec(&state, 400, "Invalid data format", 6, None);
    };
    let acks = state.acks.lock().unwrap();
    let answers: serde_json::Map<String, Value> = request
        .acks
        .iter()
        .map(|id| {
            let ready = acks
                .ready_at
                .get(&(channel.clone(), *id))
                .is_some_and(|at| Instant::now() >= *at);
            (id.to_string(), Value::Bool(ready))
        })
        .collect();
    drop(acks);
    state.core.answer(200, json!({"acks": answers}))
}

async fn health(State(state): State<Arc<HecState>>) -> Response {
    state
        .core
        .answer(200, json!({"text": "HEC is healthy", "code": 17}))
}
