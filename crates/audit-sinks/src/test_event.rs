//! "Send a test event": one signed request to a destination, with the forwarder's own sink,
//! encoder, signing and outbound safety, answered with what the destination said. Used by the
//! gateway's operator API (`POST /v1/admin/orgs/{org}/destinations/{destination}/test`).

use std::sync::Arc;
use std::time::Duration;

use audit_core::Catalogue;
use audit_settings::{Destination, OutboundPolicy, SecretBox};
use serde::Serialize;

use crate::error::Result;
use crate::event::synthetic_event;
use crate::outbound::{ClientTimeouts, build_client};
use crate::signing::batch_message_id;
use crate::{SinkContext, SinkFactory, SinkState, SinksConfig};

/// What the destination answered.
#[derive(Debug, Clone, Serialize)]
pub struct TestDelivery {
    /// The destination accepted the event (indexed, with Splunk indexer acknowledgement).
    pub delivered: bool,
    /// `delivered`, `retriable`, `poison`, `too_large`, `misconfigured`, `partial`.
    pub outcome: &'static str,
    /// HTTP status, or `timeout`, `connect`…
    pub status: String,
    pub latency_ms: u64,
    /// The first bytes of the response body.
    pub response_excerpt: String,
    /// The `webhook-id` the request carried.
    pub webhook_id: String,
    /// The `id` of the test event.
    pub event_id: String,
}

/// Everything a test send needs.
#[derive(Debug, Clone)]
pub struct TestSettings<'a> {
    pub secrets: &'a SecretBox,
    pub policy: &'a OutboundPolicy,
    pub sinks: &'a SinksConfig,
    /// The catalogue, for destinations in the OCSF format.
    pub catalogue: &'a Catalogue,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

/// Sends one test event (`audit_log.destination.tested`) to `destination` of `org_id`.
/// An error means the destination cannot be used at all (bad URL, secret, settings).
pub async fn send_test_event(
    org_id: &str,
    destination: &Destination,
    settings: &TestSettings<'_>,
) -> Result<TestDelivery> {
    let client = build_client(
        settings.policy,
        ClientTimeouts {
            connect: settings.connect_timeout,
            request: settings.request_timeout,
        },
    )?;
    let context = SinkContext {
        client,
        policy: settings.policy.clone(),
        secrets: settings.secrets.clone(),
        options: settings.sinks.clone(),
        catalogue: Arc::new(settings.catalogue.clone()),
    };
    let state = SinkState::default();
    let sink = context.build(org_id, destination, &state)?;
    let event = synthetic_event(
        org_id,
        "audit_log.destination.tested",
        serde_json::json!({
            "destination_id": destination.id,
            "destination_type": destination.config.type_name(),
            "test": true,
        }),
    );
    let encoded = sink.encode(&event);
    let message_id = batch_message_id(&destination.id, [event.id.as_str()]);
    let attempt = sink.send(&[encoded.as_slice()], &message_id).await;
    Ok(TestDelivery {
        delivered: attempt.is_delivered(),
        outcome: attempt.verdict.class(),
        status: attempt.status,
        latency_ms: u64::try_from(attempt.latency.as_millis()).unwrap_or(u64::MAX),
        response_excerpt: attempt.excerpt,
        webhook_id: attempt.message_id,
        event_id: event.id,
    })
}
