//! A fake Wazuh server API (4.6+).
//!
//! `POST /security/user/authenticate` with HTTP Basic → a JWT (bare with `?raw=true`, else
//! `{"data":{"token":…},"error":0}`); wrong credentials → 401. Tokens are HS256 JWTs with
//! `iat`/`exp` (`token_lifetime`, 900 s by default); `revoke_tokens()` invalidates every token
//! issued so far (like `PUT /security/user/revoke`). `POST /events` with `Authorization:
//! Bearer`: missing, invalid, expired or revoked token → 401; more than `requests_per_minute`
//! requests in the last minute → 429; body `{"events":[string…]}` with at most 100 items (more →
//! 400 "Events bulk size exceeded"); flaky events fail once and come back in `failed_items`
//! ("Some events were forwarded to analisysd").

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Fake, FakeCore, HttpServer, control_routes, event_id};

#[derive(Debug, Clone)]
pub struct WazuhSetup {
    pub username: String,
    pub password: String,
    pub token_lifetime: Duration,
    pub requests_per_minute: usize,
    pub max_events_per_request: usize,
    pub signing_secrets: Vec<String>,
    pub record_items: bool,
    pub port: u16,
}

impl Default for WazuhSetup {
    fn default() -> Self {
        Self {
            username: "audit-ingest".into(),
            password: "Secr3t.Passw0rd!".into(),
            token_lifetime: Duration::from_secs(900),
            requests_per_minute: 30,
            max_events_per_request: 100,
            signing_secrets: vec![super::SIGNING_SECRET.into()],
            record_items: true,
            port: 0,
        }
    }
}

struct WazuhState {
    core: Arc<FakeCore>,
    setup: WazuhSetup,
    jwt_key: [u8; 32],
    /// Tokens of an older generation are revoked.
    generation: AtomicU64,
    logins: AtomicU64,
    expired_tokens_refused: AtomicU64,
    window: Mutex<VecDeque<Instant>>,
}

pub struct FakeWazuh {
    core: Arc<FakeCore>,
    server: HttpServer,
    state: Arc<WazuhState>,
}

impl Fake for FakeWazuh {
    fn core(&self) -> &Arc<FakeCore> {
        &self.core
    }

    fn server(&self) -> &HttpServer {
        &self.server
    }
}

impl FakeWazuh {
    pub async fn start(setup: WazuhSetup) -> Self {
        let secrets: Vec<&str> = setup.signing_secrets.iter().map(String::as_str).collect();
        let core = FakeCore::new(&secrets, setup.record_items);
        let port = setup.port;
        let state = Arc::new(WazuhState {
            core: core.clone(),
            setup,
            jwt_key: rand::random(),
            generation: AtomicU64::new(0),
            logins: AtomicU64::new(0),
            expired_tokens_refused: AtomicU64::new(0),
            window: Mutex::new(VecDeque::new()),
        });
        let router = Router::new()
            .route("/security/user/authenticate", post(authenticate))
            .route("/events", post(events))
            .with_state(state.clone())
            .merge(control_routes(core.clone()));
        let server = HttpServer::start(router, port)
            .await
            .expect("bind fake Wazuh");
        Self {
            core,
            server,
            state,
        }
    }

    pub fn username(&self) -> &str {
        &self.state.setup.username
    }

    pub fn password(&self) -> &str {
        &self.state.setup.password
    }

    /// Successful logins so far.
    pub fn logins(&self) -> u64 {
        self.state.logins.load(Ordering::Relaxed)
    }

    /// `/events` requests refused because their token had expired or was revoked.
    pub fn expired_tokens_refused(&self) -> u64 {
        self.state.expired_tokens_refused.load(Ordering::Relaxed)
    }

    /// Invalidates every token issued so far.
    pub fn revoke_tokens(&self) {
        self.state.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn flaky(&self, id: &str) {
        self.core.faults().flaky_ids.insert(id.to_string());
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn problem(state: &WazuhState, status: u16, title: &str, detail: &str) -> Response {
    state
        .core
        .answer(status, json!({"title": title, "detail": detail}))
}

fn sign(key: &[u8], content: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(content.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn issue(state: &WazuhState) -> String {
    let iat = now_s();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = json!({
        "iss": "wazuh",
        "aud": "Wazuh API REST",
        "nbf": iat,
        "iat": iat,
        "exp": iat + state.setup.token_lifetime.as_secs(),
        "sub": state.setup.username,
        "run_as": false,
        "rbac_roles": [1],
        "rbac_mode": "white",
        "generation": state.generation.load(Ordering::Relaxed),
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signature = sign(&state.jwt_key, &signed);
    format!("{signed}.{signature}")
}

/// Ok when the token is ours, not expired and not revoked; Err(expired?) otherwise.
fn check_token(state: &WazuhState, token: &str) -> Result<(), bool> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(false);
    };
    if sign(&state.jwt_key, &format!("{header}.{payload}")) != signature {
        return Err(false);
    }
    let claims: Value = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(false)?;
    let exp = claims["exp"].as_u64().ok_or(false)?;
    let generation = claims["generation"].as_u64().ok_or(false)?;
    if now_s() >= exp || generation < state.generation.load(Ordering::Relaxed) {
        return Err(true);
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    #[serde(default)]
    raw: Option<bool>,
}

async fn authenticate(
    State(state): State<Arc<WazuhState>>,
    Query(query): Query<LoginQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = state.core.admit(&headers, &body).await {
        return response;
    }
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let expected = format!("{}:{}", state.setup.username, state.setup.password);
    if credentials.as_deref() != Some(expected.as_str()) {
        return problem(&state, 401, "Unauthorized", "Invalid credentials");
    }
    state.logins.fetch_add(1, Ordering::Relaxed);
    let token = issue(&state);
    state.core.count_status(200);
    if query.raw == Some(true) {
        return ([("content-type", "text/plain")], token).into_response();
    }
    axum::Json(json!({"data": {"token": token}, "error": 0})).into_response()
}

#[derive(Deserialize)]
struct EventsBody {
    events: Vec<String>,
}

async fn events(State(state): State<Arc<WazuhState>>, headers: HeaderMap, body: Bytes) -> Response {
    let webhook_id = match state.core.admit(&headers, &body).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return problem(
            &state,
            401,
            "Unauthorized",
            "No authorization token provided",
        );
    };
    if let Err(expired) = check_token(&state, token) {
        if expired {
            state.expired_tokens_refused.fetch_add(1, Ordering::Relaxed);
        }
        return problem(&state, 401, "Unauthorized", "Invalid token");
    }
    {
        let mut window = state.window.lock().unwrap();
        let now = Instant::now();
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            window.pop_front();
        }
        if window.len() >= state.setup.requests_per_minute {
            drop(window);
            return problem(
                &state,
                429,
                "Too Many Requests",
                "Maximum number of requests per minute reached",
            );
        }
        window.push_back(now);
    }
    let Ok(request) = serde_json::from_slice::<EventsBody>(&body) else {
        return problem(
            &state,
            400,
            "Bad Request",
            "Invalid request body: `events` must be a list of strings",
        );
    };
    if request.events.len() > state.setup.max_events_per_request {
        return problem(
            &state,
            400,
            "Bad Request",
            &format!(
                "Events bulk size exceeded: {} events, the maximum is {}",
                request.events.len(),
                state.setup.max_events_per_request
            ),
        );
    }
    let mut accepted = Vec::new();
    let mut affected = Vec::new();
    let mut failed = Vec::new();
    for event in request.events {
        let inner: Value = serde_json::from_str(&event).unwrap_or(Value::Null);
        let id = inner
            .get("audit")
            .or_else(|| inner.get("ocsf"))
            .map(|audit| event_id(&audit.to_string()).unwrap_or_default())
            .unwrap_or_default();
        if state.core.take_flaky(&id) {
            failed.push(event);
            continue;
        }
        accepted.push((id, Some(inner)));
        affected.push(event);
    }
    state.core.accept(&webhook_id, accepted);
    let (message, error) = match (affected.is_empty(), failed.is_empty()) {
        (_, true) => ("All events were forwarded to analisysd", 0),
        (false, false) => ("Some events were forwarded to analisysd", 2),
        (true, false) => ("No events were forwarded to analisysd", 1),
    };
    let failed_items = if failed.is_empty() {
        json!([])
    } else {
        json!([{"error": {"code": 1014, "message": "Error communicating with queue", "remediation": "Please, ensure analisysd is running"}, "id": failed}])
    };
    state.core.answer(
        200,
        json!({
            "data": {
                "affected_items": affected,
                "total_affected_items": affected.len(),
                "total_failed_items": failed.len(),
                "failed_items": failed_items,
            },
            "message": message,
            "error": error,
        }),
    )
}
