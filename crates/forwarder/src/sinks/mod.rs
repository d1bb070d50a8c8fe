//! Destination types. Each lives in its own folder with the same files:
//!
//! | file | role |
//! |---|---|
//! | `config.rs` | sink-wide options (`[sinks.<type>]`) and the validated per-destination config |
//! | `encoder.rs` | one event → its wire encoding; a batch of encodings → the request body |
//! | `request.rs` | the HTTP request: URL, auth, content headers, Standard Webhooks signature |
//! | `service.rs` | sends a batch and turns the answer (read within bounds, [`response`]) into an [`Attempt`] |
//! | `classifier.rs` | status + body → [`Verdict`]: delivered / retriable / poison / misconfigured |
//! | `tests.rs` | unit tests without IO |
//!
//! Every type writes each event in the destination's format (`native`: the stored JSON byte for
//! byte; `ocsf`: its OCSF object from `audit_core::ocsf`) inside the same envelope; signing,
//! batching, limits and retries do not depend on the format.
//!
//! Limits of each destination are stated in its module doc. The lanes ([`crate::lane`]) are
//! generic over the [`Sink`] enum: they batch within [`BatchLimits`], act on verdicts (split,
//! dead-letter, retry with the shared [`crate::backoff`] engine, park, pause) and never need
//! to know a vendor's status codes.

pub mod datadog;
pub mod response;
pub mod splunk_hec;
pub mod wazuh;
pub mod webhook;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_core::Catalogue;
use audit_runtime::ConfigError;
use audit_settings::{Destination, DestinationKind, EventFormat, OutboundPolicy, SecretBox};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::event::ForwardEvent;
use crate::signing::{Signer, SigningKey};

/// The `[sinks]` section: what every destination shares, and per type limits and defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// Most bytes of a destination's answer that are read (the rest is never read, nor ever
    /// decompressed): enough to classify it and keep an excerpt, see [`response`].
    pub max_response_bytes: usize,
    /// Splunk HTTP Event Collector.
    pub splunk_hec: splunk_hec::HecOptions,
    /// Datadog Logs intake v2.
    pub datadog: datadog::DatadogOptions,
    /// Wazuh server API.
    pub wazuh: wazuh::WazuhOptions,
    /// Generic signed webhook.
    pub webhook: webhook::WebhookOptions,
}

impl Default for SinksConfig {
    fn default() -> Self {
        Self {
            max_response_bytes: response::DEFAULT_MAX_RESPONSE_BYTES,
            splunk_hec: Default::default(),
            datadog: Default::default(),
            wazuh: Default::default(),
            webhook: Default::default(),
        }
    }
}

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
        self.splunk_hec.validate(&format!("{section}.splunk_hec"))?;
        self.datadog.validate(&format!("{section}.datadog"))?;
        self.wazuh.validate(&format!("{section}.wazuh"))?;
        self.webhook.validate(&format!("{section}.webhook"))?;
        Ok(())
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
    pub fn is_delivered(&self) -> bool {
        self.verdict == Verdict::Delivered
    }
}

/// Longest response excerpt kept (health, dead-letter headers, logs).
pub const EXCERPT_BYTES: usize = 512;

/// The first [`EXCERPT_BYTES`] of a body, as text on one line.
pub fn excerpt(body: &[u8]) -> String {
    let mut end = body.len().min(EXCERPT_BYTES);
    let text = loop {
        match std::str::from_utf8(&body[..end]) {
            Ok(text) => break text,
            Err(error) if error.valid_up_to() > 0 => end = error.valid_up_to(),
            Err(_) => break "",
        }
    };
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > end {
        line.push('…');
    }
    line
}

/// `Retry-After` of a response, if any.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    crate::backoff::parse_retry_after(value, OffsetDateTime::now_utc())
}

/// The attempt for a request that got no response (connect error, timeout, …).
pub fn transport_failure(error: &reqwest::Error, started: Instant, message_id: &str) -> Attempt {
    let status = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "request"
    };
    Attempt {
        verdict: Verdict::Retriable,
        status: status.to_string(),
        excerpt: describe_transport_error(error),
        retry_after: None,
        latency: started.elapsed(),
        message_id: message_id.to_string(),
    }
}

/// An error's chain of causes, without the URL (which may carry a query string).
fn describe_transport_error(error: &reqwest::Error) -> String {
    let mut text = error.without_url_ref().to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    excerpt(text.as_bytes())
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<url>");
        }
        text
    }
}

/// Frames encodings as a JSON array: `[a,b,c]`.
pub fn json_array(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(len);
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

/// Per destination state shared by every lane of that destination in this process (the
/// main lane and the retry lane): Wazuh's session and request pacing, Splunk's channel.
#[derive(Debug, Default)]
pub struct SinkState {
    wazuh: Mutex<Option<(String, Arc<wazuh::WazuhSession>)>>,
    hec_channel: Mutex<Option<String>>,
}

impl SinkState {
    /// The Wazuh session of this destination, new when its URL, user or pacing changed.
    fn wazuh_session(
        &self,
        fingerprint: String,
        create: impl FnOnce() -> wazuh::WazuhSession,
    ) -> Arc<wazuh::WazuhSession> {
        let mut slot = self.wazuh.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((existing, session)) = slot.as_ref()
            && *existing == fingerprint
        {
            return session.clone();
        }
        let session = Arc::new(create());
        *slot = Some((fingerprint, session.clone()));
        session
    }

    /// This instance's indexer-acknowledgement channel for the destination (a GUID).
    fn hec_channel(&self) -> String {
        let mut slot = self.hec_channel.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone()
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

/// A destination ready to receive batches: its type, and the format of its events.
#[derive(Debug)]
pub struct Sink {
    vendor: Vendor,
    /// `Some` in the OCSF format: the catalogue that classifies the actions.
    ocsf: Option<Arc<Catalogue>>,
}

/// The destination types.
#[derive(Debug)]
enum Vendor {
    SplunkHec(splunk_hec::HecSink),
    Datadog(datadog::DatadogSink),
    Wazuh(wazuh::WazuhSink),
    Webhook(webhook::WebhookSink),
}

impl Sink {
    /// Builds the sink of `destination` of `org_id`: validates its settings, opens its secrets.
    pub fn build(
        org_id: &str,
        destination: &Destination,
        context: &SinkContext,
        state: &SinkState,
    ) -> Result<Sink> {
        let now = OffsetDateTime::now_utc();
        let invalid = |reason: String| Error::destination(&destination.id, reason);
        let keys = destination
            .open_signing_secrets(org_id, &context.secrets, now)
            .map_err(|error| invalid(format!("signing secret: {error}")))?;
        let active: Vec<_> = destination.active_signing_secrets(now).collect();
        let mut signing_keys = Vec::with_capacity(keys.len());
        for (secret, meta) in keys.iter().zip(active) {
            signing_keys
                .push(SigningKey::parse(secret.expose(), meta.expires_at).map_err(invalid)?);
        }
        let signer = Signer::new(signing_keys);
        if !signer.has_active_key(now) {
            return Err(invalid("no active signing secret".into()));
        }
        let credential = destination
            .open_credential(org_id, &context.secrets)
            .map_err(|error| invalid(format!("credential: {error}")))?;
        let client = context.client.clone();
        let max_response_bytes = context.options.max_response_bytes;
        let vendor = match &destination.config {
            DestinationKind::SplunkHec(settings) => {
                let token = credential.ok_or_else(|| invalid("missing HEC token".into()))?;
                let config = splunk_hec::HecConfig::new(
                    org_id,
                    settings,
                    token,
                    &context.options.splunk_hec,
                    &context.policy,
                )
                .map_err(invalid)?;
                let channel = config.indexer_ack.then(|| state.hec_channel());
                Vendor::SplunkHec(splunk_hec::HecSink::new(
                    config,
                    signer,
                    client,
                    channel,
                    max_response_bytes,
                ))
            }
            DestinationKind::Datadog(settings) => {
                let api_key = credential.ok_or_else(|| invalid("missing API key".into()))?;
                let config = datadog::DatadogConfig::new(
                    org_id,
                    settings,
                    api_key,
                    &context.options.datadog,
                    &context.policy,
                )
                .map_err(invalid)?;
                Vendor::Datadog(datadog::DatadogSink::new(
                    config,
                    signer,
                    client,
                    max_response_bytes,
                ))
            }
            DestinationKind::Wazuh(settings) => {
                let password = credential.ok_or_else(|| invalid("missing password".into()))?;
                let config = wazuh::WazuhConfig::new(
                    settings,
                    password,
                    &context.options.wazuh,
                    &context.policy,
                )
                .map_err(invalid)?;
                let session = state.wazuh_session(config.fingerprint(), || {
                    wazuh::WazuhSession::new(config.requests_per_minute)
                });
                Vendor::Wazuh(wazuh::WazuhSink::new(
                    config,
                    signer,
                    client,
                    session,
                    max_response_bytes,
                ))
            }
            DestinationKind::Webhook(settings) => {
                let config = webhook::WebhookConfig::new(
                    settings,
                    &context.options.webhook,
                    &context.policy,
                )
                .map_err(invalid)?;
                Vendor::Webhook(webhook::WebhookSink::new(
                    config,
                    signer,
                    client,
                    max_response_bytes,
                ))
            }
        };
        let ocsf = match destination.format {
            EventFormat::Native => None,
            EventFormat::Ocsf => Some(context.catalogue.clone()),
        };
        Ok(Sink { vendor, ocsf })
    }

    pub fn type_name(&self) -> &'static str {
        match &self.vendor {
            Vendor::SplunkHec(_) => "splunk_hec",
            Vendor::Datadog(_) => "datadog",
            Vendor::Wazuh(_) => "wazuh",
            Vendor::Webhook(_) => "webhook",
        }
    }

    pub fn limits(&self) -> BatchLimits {
        match &self.vendor {
            Vendor::SplunkHec(sink) => sink.limits(),
            Vendor::Datadog(sink) => sink.limits(),
            Vendor::Wazuh(sink) => sink.limits(),
            Vendor::Webhook(sink) => sink.limits(),
        }
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
        match &self.vendor {
            Vendor::SplunkHec(sink) => sink.encode(event, payload),
            Vendor::Datadog(sink) => sink.encode(event, payload),
            Vendor::Wazuh(sink) => sink.encode(payload),
            Vendor::Webhook(sink) => sink.encode(payload),
        }
    }

    /// The body size of a batch of `count` encodings totalling `bytes`.
    pub fn framed_len(&self, bytes: usize, count: usize) -> usize {
        match &self.vendor {
            // Envelopes back to back.
            Vendor::SplunkHec(_) => bytes,
            // `[a,b]`.
            Vendor::Datadog(_) | Vendor::Webhook(_) => bytes + count + 1,
            // `{"events":[a,b]}`.
            Vendor::Wazuh(_) => bytes + count + 13,
        }
    }

    /// Sends one batch (already encoded, in order) under `message_id`.
    pub async fn send(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        match &self.vendor {
            Vendor::SplunkHec(sink) => sink.send(parts, message_id).await,
            Vendor::Datadog(sink) => sink.send(parts, message_id).await,
            Vendor::Wazuh(sink) => sink.send(parts, message_id).await,
            Vendor::Webhook(sink) => sink.send(parts, message_id).await,
        }
    }
}

/// Checks a URL with the outbound policy, for the per-type configs.
pub(crate) fn checked_url(
    policy: &OutboundPolicy,
    field: &str,
    raw: &str,
) -> Result<url::Url, String> {
    policy
        .check_url(raw)
        .map_err(|reason| format!("{field}: {reason}"))
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
