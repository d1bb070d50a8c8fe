//! A fake generic webhook receiver (any path): a JSON array of events, Standard Webhooks
//! signature required. Poison events → 422 (the whole batch refused); not an array → 400;
//! success → 200 `{"received": n}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{EventRead, Fake, FakeCore, HttpServer, control_routes, event_id};

#[derive(Debug, Clone)]
pub struct WebhookSetup {
    pub signing_secrets: Vec<String>,
    pub record_items: bool,
    pub port: u16,
}

impl Default for WebhookSetup {
    fn default() -> Self {
        Self {
            signing_secrets: vec![super::SIGNING_SECRET.into()],
            record_items: true,
            port: 0,
        }
    }
}

pub struct FakeWebhook {
    core: Arc<FakeCore>,
    server: HttpServer,
}

impl Fake for FakeWebhook {
    fn core(&self) -> &Arc<FakeCore> {
        &self.core
    }

    fn server(&self) -> &HttpServer {
        &self.server
    }
}

impl FakeWebhook {
    pub async fn start(setup: WebhookSetup) -> Self {
        let secrets: Vec<&str> = setup.signing_secrets.iter().map(String::as_str).collect();
        let core = FakeCore::new(&secrets, setup.record_items);
        let router = Router::new()
            .route("/", post(receive))
            .route("/{*path}", post(receive))
            .with_state(core.clone())
            .merge(control_routes(core.clone()));
        let server = HttpServer::start(router, setup.port)
            .await
            .expect("bind fake webhook");
        Self { core, server }
    }
}

async fn receive(State(core): State<Arc<FakeCore>>, headers: HeaderMap, body: Bytes) -> Response {
    let webhook_id = match core.admit(&headers, &body).await {
        Ok(id) => id,
        Err(response) => return response,
    };
    let accepted = if core.record_items() {
        // The tests that look at what was delivered keep each event's text.
        let Ok(events) = serde_json::from_slice::<Vec<&RawValue>>(&body) else {
            return not_an_array(&core);
        };
        events
            .into_iter()
            .map(|raw| {
                let id = event_id(raw.get()).unwrap_or_default();
                (
                    id,
                    Some(serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null)),
                )
            })
            .collect::<Vec<_>>()
    } else {
        // Ids only (the benchmark): one pass over the body.
        let Ok(events) = serde_json::from_slice::<Vec<EventRead>>(&body) else {
            return not_an_array(&core);
        };
        events
            .into_iter()
            .map(|event| (event.id.unwrap_or_default(), None))
            .collect()
    };
    if let Some((id, _)) = accepted.iter().find(|(id, _)| core.is_poison(id)) {
        return core.answer(
            422,
            json!({"error": format!("event {id} is not acceptable")}),
        );
    }
    let count = accepted.len();
    core.accept(&webhook_id, accepted);
    core.answer(200, json!({"received": count}))
}

fn not_an_array(core: &FakeCore) -> Response {
    core.answer(400, json!({"error": "expected a JSON array of events"}))
}
