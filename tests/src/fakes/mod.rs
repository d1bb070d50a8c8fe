//! Fake SIEM receivers, faithful to the vendors' documented behaviour (PROTOCOLS.md): their
//! authentication, status codes and bodies, limits, Splunk's indexer acknowledgement,
//! Wazuh's JWT expiry and rate limit. Each runs as an in-process HTTP server, verifies the
//! Standard Webhooks headers of every request, records what it accepted, and can inject
//! failures, latency, poison events, partial failures, `429` + `Retry-After`, `413`, token
//! expiry, and a real outage (`stop`/`restart`: connections refused).
//!
//! Every fake also answers `GET /_fake/stats` and `GET /_fake/received?from=N&limit=M`
//! (accepted event ids with their arrival time in unix µs), for the benchmark and for
//! `make run` users.
//!
//! [`hostile`] is the other side of the coin: a receiver that answers what no vendor would
//! (compression bombs, dripped bytes, endless bodies, huge heads), for the hostile-input suite.

pub mod datadog;
pub mod hostile;
pub mod server;
pub mod signature;
pub mod splunk_hec;
pub mod wazuh;
pub mod webhook;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use datadog::FakeDatadog;
pub use hostile::{HostileReceiver, Hostility};
pub use server::HttpServer;
pub use signature::Verifier;
pub use splunk_hec::FakeHec;
pub use wazuh::FakeWazuh;
pub use webhook::FakeWebhook;

/// The signing secret of the fakes and of the tests' destinations (the Standard Webhooks
/// specification's example secret).
pub const SIGNING_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// An answer to inject instead of the vendor's normal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
}

impl Injected {
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_string(),
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    fn response(&self) -> Response {
        let mut response = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            [("content-type", "application/json")],
            self.body.clone(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.to_string().parse().unwrap());
        }
        response
    }
}

/// Failure knobs, common to every fake.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answers for the next requests, in order (before any vendor logic).
    pub next: VecDeque<Injected>,
    /// Answer every request with this while set.
    pub always: Option<Injected>,
    /// Delay before answering.
    pub latency: Duration,
    /// Event ids the receiver refuses as invalid, every time (the vendor's poison answer).
    pub poison_ids: HashSet<String>,
    /// Event ids refused once with a transient error (Wazuh partial failures).
    pub flaky_ids: HashSet<String>,
}

/// One accepted event.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedEvent {
    /// The audit event's `id`.
    pub id: String,
    /// Arrival time, unix microseconds.
    pub at_us: u64,
    /// The `webhook-id` of the request that carried it.
    pub webhook_id: String,
    /// The vendor-level item (HEC envelope, Datadog log, Wazuh event, webhook event), when
    /// bodies are recorded.
    pub item: Option<Value>,
}

/// What a fake saw.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub requests: u64,
    /// Requests answered 2xx.
    pub accepted_requests: u64,
    /// Accepted events (with repeats).
    pub events: u64,
    /// Accepted events whose id was already accepted before.
    pub duplicates: u64,
    pub signature_failures: u64,
    /// Most signatures seen on one request (2 during a secret rotation).
    pub max_signatures: usize,
    /// Count of answers per status.
    pub statuses: HashMap<u16, u64>,
}

#[derive(Debug, Default)]
struct Recorder {
    events: Vec<ReceivedEvent>,
    seen: HashSet<String>,
    stats: Stats,
}

/// What every fake shares: verifier, knobs, records.
#[derive(Debug)]
pub struct FakeCore {
    verifier: Verifier,
    faults: Mutex<Faults>,
    recorder: Mutex<Recorder>,
    record_items: bool,
}

impl FakeCore {
    pub fn new(signing_secrets: &[&str], record_items: bool) -> Arc<Self> {
        Arc::new(Self {
            verifier: Verifier::new(signing_secrets),
            faults: Mutex::new(Faults::default()),
            recorder: Mutex::new(Recorder::default()),
            record_items,
        })
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap()
    }

    fn recorder(&self) -> MutexGuard<'_, Recorder> {
        self.recorder.lock().unwrap()
    }

    pub fn record_items(&self) -> bool {
        self.record_items
    }

    /// The common first steps of every request: count it, wait the injected latency, verify
    /// the signature, apply injected answers. `Err` is the response to send instead.
    pub async fn admit(&self, headers: &HeaderMap, body: &[u8]) -> Result<String, Response> {
        self.recorder().stats.requests += 1;
        let latency = self.faults().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let verified = match self.verifier.verify(headers, body) {
            Ok(verified) => verified,
            Err(reason) => {
                self.recorder().stats.signature_failures += 1;
                return Err(self.answer(
                    401,
                    json!({"error": format!("webhook signature verification failed: {reason}")}),
                ));
            }
        };
        {
            let mut recorder = self.recorder();
            recorder.stats.max_signatures = recorder.stats.max_signatures.max(verified.signatures);
        }
        let injected = {
            let mut faults = self.faults();
            faults.next.pop_front().or_else(|| faults.always.clone())
        };
        if let Some(injected) = injected {
            self.count_status(injected.status);
            return Err(injected.response());
        }
        Ok(verified.webhook_id)
    }

    /// A JSON answer, counted.
    pub fn answer(&self, status: u16, body: Value) -> Response {
        self.count_status(status);
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response()
    }

    pub fn count_status(&self, status: u16) {
        let mut recorder = self.recorder();
        *recorder.stats.statuses.entry(status).or_default() += 1;
        if (200..300).contains(&status) {
            recorder.stats.accepted_requests += 1;
        }
    }

    /// Records accepted events `(id, item)` of one request.
    pub fn accept(&self, webhook_id: &str, events: Vec<(String, Option<Value>)>) {
        let at_us = now_us();
        let mut recorder = self.recorder();
        for (id, item) in events {
            recorder.stats.events += 1;
            if !recorder.seen.insert(id.clone()) {
                recorder.stats.duplicates += 1;
            }
            let (item, webhook_id) = if self.record_items {
                (item, webhook_id.to_string())
            } else {
                (None, String::new())
            };
            recorder.events.push(ReceivedEvent {
                id,
                at_us,
                webhook_id,
                item,
            });
        }
    }

    pub fn received(&self) -> Vec<ReceivedEvent> {
        self.recorder().events.clone()
    }

    pub fn received_ids(&self) -> Vec<String> {
        self.recorder()
            .events
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }

    pub fn unique_ids(&self) -> HashSet<String> {
        self.recorder().seen.clone()
    }

    pub fn stats(&self) -> Stats {
        self.recorder().stats.clone()
    }

    pub fn is_poison(&self, id: &str) -> bool {
        self.faults().poison_ids.contains(id)
    }

    /// Whether `id` fails this time (once).
    pub fn take_flaky(&self, id: &str) -> bool {
        self.faults().flaky_ids.remove(id)
    }
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Deserialize)]
pub struct ReceivedQuery {
    #[serde(default)]
    from: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    10_000
}

/// `/_fake/stats` and `/_fake/received` for a fake.
pub fn control_routes(core: Arc<FakeCore>) -> axum::Router {
    axum::Router::new()
        .route("/_fake/stats", axum::routing::get(stats_route))
        .route("/_fake/received", axum::routing::get(received_route))
        .with_state(core)
}

async fn stats_route(State(core): State<Arc<FakeCore>>) -> Json<Stats> {
    Json(core.stats())
}

async fn received_route(
    State(core): State<Arc<FakeCore>>,
    Query(query): Query<ReceivedQuery>,
) -> Json<Value> {
    let recorder = core.recorder();
    let end = recorder
        .events
        .len()
        .min(query.from.saturating_add(query.limit));
    let start = query.from.min(end);
    let events: Vec<Value> = recorder.events[start..end]
        .iter()
        .map(|e| json!([e.id, e.at_us]))
        .collect();
    Json(json!({"next": end, "events": events}))
}

/// The `id` of an audit event in raw JSON (without materialising the rest), or the
/// `metadata.uid` of an OCSF object (destinations in the `ocsf` format): how the tests
/// recognise events, not something the vendors check.
pub fn event_id(raw: &str) -> Option<String> {
    serde_json::from_str::<EventRead>(raw).ok()?.id
}

/// What a fake reads of one event, in the same pass as the request around it: its id (`id`,
/// else an OCSF object's `metadata.uid`) and whether it is blank (`""`, `null`, `{}`). Every
/// other value is skipped, not built, so a receiver reads each byte once — on the benchmark's
/// two cores the receivers' reading is counted against the forwarder's throughput.
#[derive(Debug, Default)]
pub struct EventRead {
    pub id: Option<String>,
    pub blank: bool,
}

impl<'de> Deserialize<'de> for EventRead {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EventVisitor { top: true })
    }
}

/// Reads an event (`top`) or its `metadata` object (not top: only `uid` is looked at).
struct EventVisitor {
    top: bool,
}

impl<'de> serde::de::Visitor<'de> for EventVisitor {
    type Value = EventRead;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an event")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<EventRead, E> {
        Ok(EventRead {
            id: None,
            blank: text.is_empty(),
        })
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<EventRead, E> {
        Ok(EventRead {
            id: None,
            blank: true,
        })
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<EventRead, E> {
        Ok(EventRead::default())
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<EventRead, E> {
        Ok(EventRead::default())
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<EventRead, E> {
        Ok(EventRead::default())
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<EventRead, E> {
        Ok(EventRead::default())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<EventRead, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(EventRead::default())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<EventRead, A::Error> {
        let own = if self.top { "id" } else { "uid" };
        let mut id = None;
        let mut uid = None;
        let mut entries = 0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            entries += 1;
            if key == own {
                id = map.next_value::<Text>()?.0;
            } else if self.top && key == "metadata" {
                uid = map.next_value_seed(MetadataSeed)?.id;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(EventRead {
            id: id.or(uid),
            blank: entries == 0,
        })
    }
}

struct MetadataSeed;

impl<'de> serde::de::DeserializeSeed<'de> for MetadataSeed {
    type Value = EventRead;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<EventRead, D::Error> {
        deserializer.deserialize_any(EventVisitor { top: false })
    }
}

/// A string value, or `None` for any other value (skipped).
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let read = deserializer.deserialize_any(TextVisitor)?;
        Ok(Text(read))
    }
}

struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Option<String>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any value")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Option<String>, E> {
        Ok(Some(text.to_string()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(None)
    }
}

/// The interface the tests drive every fake through.
pub trait Fake {
    fn core(&self) -> &Arc<FakeCore>;
    fn server(&self) -> &HttpServer;

    fn url(&self) -> String {
        format!("http://{}", self.server().addr())
    }

    /// Answers the next requests with these, in order.
    fn fail_next(&self, answers: impl IntoIterator<Item = Injected>) {
        self.core().faults().next.extend(answers);
    }

    /// Answers every request with `answer` until `None`.
    fn fail_always(&self, answer: Option<Injected>) {
        self.core().faults().always = answer;
    }

    fn set_latency(&self, latency: Duration) {
        self.core().faults().latency = latency;
    }

    fn poison(&self, id: &str) {
        self.core().faults().poison_ids.insert(id.to_string());
    }

    fn cure(&self, id: &str) {
        self.core().faults().poison_ids.remove(id);
    }

    fn received_ids(&self) -> Vec<String> {
        self.core().received_ids()
    }

    fn unique_ids(&self) -> HashSet<String> {
        self.core().unique_ids()
    }

    fn received(&self) -> Vec<ReceivedEvent> {
        self.core().received()
    }

    fn stats(&self) -> Stats {
        self.core().stats()
    }
}

#[cfg(test)]
mod event_read_tests {
    use super::*;

    #[test]
    fn ids_and_blanks_are_read_in_one_pass() {
        let read = |raw: &str| serde_json::from_str::<EventRead>(raw).expect(raw);
        let native = read(r#"{"id":"e1","actor":{"id":"u1"},"metadata":{"uid":"m"}}"#);
        assert_eq!(native.id.as_deref(), Some("e1"), "the event's own id first");
        let ocsf = read(
            r#"{"class_uid":3002,"actor":{"user":{"uid":"u1"}},"metadata":{"version":"1.4.0","uid":"e2"},"user":{"uid":"u1"}}"#,
        );
        assert_eq!(
            ocsf.id.as_deref(),
            Some("e2"),
            "an OCSF object's metadata.uid"
        );
        let escaped = read(r#"{"id":"e\"3","x":[1,{"id":"no"}]}"#);
        assert_eq!(escaped.id.as_deref(), Some("e\"3"));
        assert_eq!(read(r#"{"x":1}"#).id, None);
        assert_eq!(
            read(r#"{"id":7,"metadata":{"uid":"e4"}}"#).id.as_deref(),
            Some("e4")
        );
        for blank in [r#""""#, "null", "{}", "{ }"] {
            assert!(read(blank).blank, "{blank}");
        }
        for not_blank in [r#""x""#, "0", "[]", r#"{"a":null}"#] {
            assert!(!read(not_blank).blank, "{not_blank}");
        }
        assert_eq!(event_id(r#"{"id":"e5"}"#).as_deref(), Some("e5"));
        assert_eq!(event_id("{not json"), None);
    }
}
