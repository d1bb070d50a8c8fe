//! HEC requests: events and acknowledgement polls, both authenticated and signed.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use time::OffsetDateTime;

use crate::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signer};

use super::config::HecConfig;

/// The channel header of indexer acknowledgement.
pub const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

fn signed(
    request: reqwest::RequestBuilder,
    config: &HecConfig,
    signer: &Signer,
    message_id: &str,
    body: &Bytes,
    channel: Option<&str>,
) -> reqwest::RequestBuilder {
    let signature = signer.sign(message_id, OffsetDateTime::now_utc(), body);
    let mut request = request
        .header(AUTHORIZATION, format!("Splunk {}", config.token.expose()))
        .header(CONTENT_TYPE, "application/json")
        .header(HEADER_ID, signature.id)
        .header(HEADER_TIMESTAMP, signature.timestamp)
        .header(HEADER_SIGNATURE, signature.signature);
    if let Some(channel) = channel {
        request = request.header(CHANNEL_HEADER, channel);
    }
    request.body(body.clone())
}

/// `POST /services/collector/event` with the envelopes.
pub fn events(
    client: &reqwest::Client,
    config: &HecConfig,
    signer: &Signer,
    message_id: &str,
    body: &Bytes,
    channel: Option<&str>,
) -> reqwest::RequestBuilder {
    signed(
        client.post(config.event_url.clone()),
        config,
        signer,
        message_id,
        body,
        channel,
    )
}

/// `POST /services/collector/ack` with `{"acks":[id]}`.
pub fn ack_poll(
    client: &reqwest::Client,
    config: &HecConfig,
    signer: &Signer,
    message_id: &str,
    ack_id: u64,
    channel: &str,
) -> reqwest::RequestBuilder {
    let body = Bytes::from(format!("{{\"acks\":[{ack_id}]}}"));
    let poll_id = format!("{message_id}-ack");
    signed(
        client.post(config.ack_url.clone()),
        config,
        signer,
        &poll_id,
        &body,
        Some(channel),
    )
}
