//! The destination types — Splunk HEC, Datadog, Wazuh, signed webhooks — as one library used
//! by the forwarder (its lanes deliver through [`Sink`]) and by the gateway (the operator's
//! "send a test event", [`send_test_event`], with the same `[sinks]` settings). Here: each
//! type's settings and their validation, event encoding, the Standard Webhooks signature
//! ([`signing`]), the SSRF-safe outbound client ([`outbound`]), bounded reads of answers
//! ([`response`]) and the classification of every answer into a [`Verdict`].
//!
//! Each type lives in its own folder with the same files:
//!
//! | file | role |
//! |---|---|
//! | `config.rs` | sink-wide options (`[sinks.<type>]`) and the validated per-destination config |
//! | `encoder.rs` | one event → its wire encoding; a batch of encodings → the request body |
//! | `request.rs` | the HTTP request: URL, auth, content headers, Standard Webhooks signature |
//! | `service.rs` | the type's [`Sink`]: sends a batch and turns the answer (read within bounds, [`response`]) into an [`Attempt`] |
//! | `classifier.rs` | status + body → [`Verdict`]: delivered / retriable / poison / misconfigured |
//! | `settings.rs` | the stored settings and the operator's input, and what [`registry`] asks of the type: build its sink, check its settings, seal its credential ([`registry::DestinationType`], [`registry::OperatorInput`]) |
//! | `mod.rs` | the module doc: limits and behaviour |
//! | `tests.rs` | unit tests without IO |
//!
//! Every type writes each event in the destination's format (`native`: the stored JSON byte for
//! byte; `ocsf`: its OCSF object from `audit_core::ocsf`) inside the same envelope; signing,
//! batching, limits and retries do not depend on the format.
//!
//! Limits of each destination are stated in its module doc. Each type implements the [`Sink`]
//! trait and has one line in [`registry`] (README: "Adding a destination"). The forwarder's
//! lanes know only the trait: they batch within [`BatchLimits`], act on verdicts (split,
//! dead-letter, retry with backoff, park, pause) and never need to know a vendor's status
//! codes.

pub mod datadog;
pub mod error;
pub mod event;
pub mod outbound;
pub mod registry;
pub mod response;
pub mod signing;
pub mod splunk_hec;
pub mod test_event;
pub mod wazuh;
pub mod webhook;

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use audit_core::Catalogue;
use audit_runtime::{ConfigError, Secret};
use audit_settings::{Destination, EventFormat, OutboundPolicy, SecretBox};
use futures::future::BoxFuture;
use time::OffsetDateTime;

pub use error::{Error, Result};
pub use event::{ForwardEvent, synthetic_event};
pub use registry::SinksConfig;
pub use response::{EXCERPT_BYTES, excerpt, retry_after, transport_failure};
pub use test_event::{TestDelivery, TestSettings, send_test_event};

use crate::signing::{Signer, SigningKey};

/// Bounds of `[sinks] max_response_bytes`: room for an excerpt and a Wazuh token, and small.
const RESPONSE_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=1024 * 1024;

impl SinksConfig {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !RESPONSE_BYTES_RANGE.contains(&self.max_response_bytes) {
            return Err(ConfigError::invalid(
                format!("{section}.max_response_bytes"),
                format!(
                    "must be between {} and {}",
                    RESPONSE_BYTES_RANGE.start(),
                    RESPONSE_BYTES_RANGE.end()
                ),
            ));
        }
        self.validate_types(section)
    }
}

/// How a batch for one destination is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most events per request.
    pub max_events: usize,
    /// Most bytes per request body (before compression).
    pub max_bytes: usize,
    /// Largest single event encoding; a larger event can never be delivered (poison).
    pub max_event_bytes: usize,
}

/// What one attempt to deliver a batch came to, as the destination's classifier saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every event was accepted (and, with Splunk indexer acknowledgement, indexed).
    Delivered,
    /// The events at these indices (ascending) were refused for a transient reason; the
    /// others were accepted. Retry only the refused ones.
    Partial { failed: Vec<usize> },
    /// The event at `index` is poison: the events before it were accepted, it and those after
    /// it were not. Dead-letter it, resend those after it.
    PoisonAt { index: usize },
    /// The batch holds a poison event but the receiver did not say which: split the batch
    /// until the event is alone, then dead-letter it.
    PoisonSomewhere,
    /// The request was too large for the receiver: split the batch.
    TooLarge,
    /// Transient failure (5xx, 429, timeout, connection): retry later.
    Retriable,
    /// The destination is misconfigured (credentials, URL, index, channel…): pause it and keep
    /// its events; retrying cannot help until an operator fixes it.
    Misconfigured,
}

impl Verdict {
    /// The label of the failure class, for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            Verdict::Delivered => "delivered",
            Verdict::Partial { .. } => "partial",
            Verdict::PoisonAt { .. } | Verdict::PoisonSomewhere => "poison",
            Verdict::TooLarge => "too_large",
            Verdict::Retriable => "retriable",
            Verdict::Misconfigured => "misconfigured",
        }
    }
}

/// The outcome of one request.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub verdict: Verdict,
    /// HTTP status (`503`), or `timeout`, `connect`, `request`, `ack-timeout`, `login`…
    pub status: String,
    /// The first bytes of the response body (never contains our secrets: we never echo them).
    pub excerpt: String,
    /// The receiver's `Retry-After`, when it gave one.
    pub retry_after: Option<Duration>,
    pub latency: Duration,
    /// The `webhook-id` of the request.
    pub message_id: String,
}

impl Attempt {
    /// The attempt `verdict` for a request the destination answered with `answer`.
    pub fn answered(
        verdict: Verdict,
        answer: &response::Answer,
        started: std::time::Instant,
        message_id: &str,
    ) -> Self {
        Self {
            verdict,
            status: answer.status.to_string(),
            excerpt: answer.excerpt(),
            retry_after: answer.retry_after,
            latency: started.elapsed(),
            message_id: message_id.to_string(),
        }
    }

    /// An attempt described by our own `status` and `excerpt` (no `Retry-After`).
    pub fn described(
        verdict: Verdict,
        status: impl Into<String>,
        excerpt: String,
        started: std::time::Instant,
        message_id: &str,
    ) -> Self {
        Self {
            verdict,
            status: status.into(),
            excerpt,
            retry_after: None,
            latency: started.elapsed(),
            message_id: message_id.to_string(),
        }
    }

    pub fn is_delivered(&self) -> bool {
        self.verdict == Verdict::Delivered
    }
}

/// Frames encodings as a JSON array: `[a,b,c]`.
pub fn json_array(parts: &[&[u8]]) -> Vec<u8> {
    let bytes: usize = parts.iter().map(|p| p.len()).sum();
    let mut body = Vec::with_capacity(json_array_len(bytes, parts.len()));
    body.push(b'[');
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(part);
    }
    body.push(b']');
    body
}

/// The length of [`json_array`] of `count` parts totalling `bytes`.
pub fn json_array_len(bytes: usize, count: usize) -> usize {
    bytes + count.saturating_sub(1) + 2
}

/// Per destination state shared by every lane of that destination in this process (the main
/// lane and the retry lane), owned by the destination type: one value of the type's choosing
/// (Wazuh: its session and request pacing; Splunk: its acknowledgement channel), replaced
/// when the settings it depends on change (its `fingerprint`).
#[derive(Debug, Default)]
pub struct SinkState {
    slot: Mutex<Option<(String, Arc<dyn Any + Send + Sync>)>>,
}

impl SinkState {
    /// The state of type `T` built for `fingerprint`, or a new one from `create`.
    pub fn get_or_create<T: Any + Send + Sync>(
        &self,
        fingerprint: &str,
        create: impl FnOnce() -> T,
    ) -> Arc<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((existing, state)) = slot.as_ref()
            && existing == fingerprint
            && let Ok(state) = state.clone().downcast::<T>()
        {
            return state;
        }
        let state = Arc::new(create());
        *slot = Some((fingerprint.to_string(), state.clone()));
        state
    }
}

/// What building a sink needs from the process.
#[derive(Clone)]
pub struct SinkContext {
    pub client: reqwest::Client,
    pub policy: OutboundPolicy,
    pub secrets: SecretBox,
    pub options: SinksConfig,
    /// The catalogue, for the OCSF class of each action.
    pub catalogue: Arc<Catalogue>,
}

impl std::fmt::Debug for SinkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkContext")
            .field("policy", &self.policy)
            .finish()
    }
}

/// The event as a destination receives it inside its type's envelope.
#[derive(Debug, Clone, Copy)]
pub struct Payload<'a> {
    /// The event's JSON: the stored one, or its OCSF object.
    pub json: &'a [u8],
    /// Its attribute in the envelopes that wrap it (Datadog, Wazuh): `audit` or `ocsf`.
    pub key: &'static str,
}

impl<'a> Payload<'a> {
    /// The stored event, unchanged.
    pub fn native(event: &'a ForwardEvent) -> Self {
        Self {
            json: &event.json,
            key: "audit",
        }
    }
}

/// One destination type's delivery, as the lanes use it. Each type's folder implements it
/// (and [`registry`] builds it from the destination's settings); tests use a fake.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// How batches for this destination are bounded.
    fn limits(&self) -> BatchLimits;

    /// One event's encoding inside the type's envelope, with `payload` as its content.
    fn encode(&self, event: &ForwardEvent, payload: Payload<'_>) -> Vec<u8>;

    /// The body length [`Sink::send`] frames from `count` encodings totalling `bytes` (before
    /// compression): batches are cut on it.
    fn framed_len(&self, bytes: usize, count: usize) -> usize;

    /// Sends one batch (already encoded, in order) under `message_id`; never fails: every
    /// outcome is an [`Attempt`] classified by the type.
    fn send<'a>(&'a self, parts: &'a [&'a [u8]], message_id: &'a str) -> BoxFuture<'a, Attempt>;

    /// The request [`Sink::send`] makes for this batch (body framed, credentials, signed now),
    /// built but not sent: the forwarder's benchmark posts the very same bytes with a bare
    /// client to measure what the forwarder costs. `None` when a batch takes more than one
    /// request built ahead (Wazuh's session, Splunk's indexer acknowledgement).
    fn request(&self, _parts: &[&[u8]], _message_id: &str) -> Option<reqwest::RequestBuilder> {
        None
    }
}

/// A destination ready to receive batches: its type's sink and the format of its events.
#[derive(Debug)]
pub struct DestinationSink {
    sink: Box<dyn Sink>,
    /// `Some` in the OCSF format: the catalogue that classifies the actions.
    ocsf: Option<Arc<Catalogue>>,
}

impl DestinationSink {
    /// `sink` writing events in their stored form.
    pub fn native(sink: Box<dyn Sink>) -> Self {
        Self { sink, ocsf: None }
    }

    pub fn limits(&self) -> BatchLimits {
        self.sink.limits()
    }

    /// One event's encoding for this destination, in its format.
    pub fn encode(&self, event: &ForwardEvent) -> Vec<u8> {
        let payload = match &self.ocsf {
            None => Payload::native(event),
            // Usually mapped already, when the event was routed (see `ForwardEvent::ocsf`).
            Some(catalogue) => Payload {
                json: event.ocsf(catalogue),
                key: "ocsf",
            },
        };
        self.sink.encode(event, payload)
    }

    pub fn framed_len(&self, bytes: usize, count: usize) -> usize {
        self.sink.framed_len(bytes, count)
    }

    pub async fn send(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        self.sink.send(parts, message_id).await
    }

    /// See [`Sink::request`].
    pub fn request(&self, parts: &[&[u8]], message_id: &str) -> Option<reqwest::RequestBuilder> {
        self.sink.request(parts, message_id)
    }
}

/// Builds a destination's sink from its settings: the lanes' seam (the forwarder uses
/// [`SinkContext`]; lane tests a fake).
pub trait SinkFactory: Send + Sync {
    fn build(
        &self,
        org_id: &str,
        destination: &Destination,
        state: &SinkState,
    ) -> Result<DestinationSink>;
}

/// What every destination type's builder receives: the destination's opened secrets and
/// what the process shares.
pub struct BuildParts<'a> {
    pub org_id: &'a str,
    /// The destination's signer, the shared client, the answer limit.
    pub sender: response::Sender,
    /// The type's credential (HEC token, Datadog API key, Wazuh password), opened.
    pub credential: Option<Secret>,
    pub options: &'a SinksConfig,
    pub policy: &'a OutboundPolicy,
    pub state: &'a SinkState,
}

impl BuildParts<'_> {
    /// The credential, which `field` of the type's settings holds.
    pub fn credential(&mut self, field: &'static str) -> Result<Secret, InvalidSetting> {
        self.credential
            .take()
            .ok_or_else(|| InvalidSetting::new(field, "missing"))
    }
}

/// Stands in for a credential when only the settings around it are checked
/// ([`registry::DestinationType::check`]): not empty, never sent anywhere.
pub(crate) fn unchecked_credential() -> Secret {
    Secret::new("(not checked here)".into())
}

/// Why a destination's settings cannot be used: the field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    pub field: String,
    pub reason: String,
}

impl InvalidSetting {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl SinkFactory for SinkContext {
    /// Opens the destination's secrets, validates its settings and builds its type's sink.
    fn build(
        &self,
        org_id: &str,
        destination: &Destination,
        state: &SinkState,
    ) -> Result<DestinationSink> {
        let now = OffsetDateTime::now_utc();
        let invalid = |reason: String| Error::destination(&destination.id, reason);
        let keys = destination
            .open_signing_secrets(org_id, &self.secrets, now)
            .map_err(|error| invalid(format!("signing secret: {error}")))?;
        let active: Vec<_> = destination.active_signing_secrets(now).collect();
        let mut signing_keys = Vec::with_capacity(keys.len());
        for (secret, meta) in keys.iter().zip(active) {
            signing_keys.push(
                SigningKey::parse(secret.expose(), meta.expires_at)
                    .map_err(|error| invalid(error.to_string()))?,
            );
        }
        let signer = Signer::new(signing_keys);
        if !signer.has_active_key(now) {
            return Err(invalid("no active signing secret".into()));
        }
        // A stored config this build cannot type is invalid settings, like a bad field.
        let kind = registry::DestinationKind::parse(&destination.config)
            .map_err(|error| invalid(error.to_string()))?;
        let credential = kind
            .open_credential(org_id, &destination.id, &self.secrets)
            .map_err(|error| invalid(format!("credential: {error}")))?;
        let sender = response::Sender {
            signer,
            client: self.client.clone(),
            max_response_bytes: self.options.max_response_bytes,
        };
        let parts = BuildParts {
            org_id,
            sender,
            credential,
            options: &self.options,
            policy: &self.policy,
            state,
        };
        let sink = kind
            .settings()
            .build(parts)
            .map_err(|error| invalid(error.to_string()))?;
        let ocsf = match destination.format {
            EventFormat::Native => None,
            EventFormat::Ocsf => Some(self.catalogue.clone()),
        };
        Ok(DestinationSink { sink, ocsf })
    }
}

/// Checks a URL with the outbound policy, for the per-type configs.
pub(crate) fn checked_url(
    policy: &OutboundPolicy,
    field: &str,
    raw: &str,
) -> Result<url::Url, InvalidSetting> {
    policy
        .check_url(raw)
        .map_err(|reason| InvalidSetting::new(field, reason.to_string()))
}

/// Appends `path` to a base URL unless the URL already has a path of its own.
pub(crate) fn with_default_path(mut url: url::Url, path: &str) -> url::Url {
    if url.path().is_empty() || url.path() == "/" {
        url.set_path(path);
    }
    url
}

#[cfg(test)]
mod tests;
