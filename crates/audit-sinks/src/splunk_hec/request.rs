//! HEC requests: events and acknowledgement polls, both authenticated and signed.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::response::Sender;

use super::config::HecConfig;

/// The channel header of indexer acknowledgement.
pub const CHANNEL_HEADER: &str = "X-Splunk-Request-Channel";

/// The headers of every HEC request: the token, JSON, and the acknowledgement channel.
fn with_headers(
    request: reqwest::RequestBuilder,
    config: &HecConfig,
    channel: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = request
        .header(AUTHORIZATION, format!("Splunk {}", config.token.expose()))
        .header(CONTENT_TYPE, "application/json");
    match channel {
        Some(channel) => request.header(CHANNEL_HEADER, channel),
        None => request,
    }
}

/// `POST /services/collector/event` with the envelopes.
pub fn events(
    sender: &Sender,
    config: &HecConfig,
    message_id: &str,
    body: &Bytes,
    channel: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = sender.client.post(config.event_url.clone());
    let request = with_headers(request, config, channel);
    sender.signed(request, message_id, body.clone())
}

/// `POST /services/collector/ack` with `{"acks":[id]}`.
pub fn ack_poll(
    sender: &Sender,
    config: &HecConfig,
    message_id: &str,
    ack_id: u64,
    channel: &str,
) -> reqwest::RequestBuilder {
    let body = Bytes::from(format!("{{\"acks\":[{ack_id}]}}"));
    let request = sender.client.post(config.ack_url.clone());
    let request = with_headers(request, config, Some(channel));
    sender.signed(request, &format!("{message_id}-ack"), body)
}
