//! The Datadog intake request: API key, content headers, Standard Webhooks signature.

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};

use crate::response::Sender;

use super::config::DatadogConfig;

pub const API_KEY_HEADER: &str = "DD-API-KEY";

pub fn logs(
    sender: &Sender,
    config: &DatadogConfig,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let mut request = sender
        .client
        .post(config.url.clone())
        .header(API_KEY_HEADER, config.api_key.expose())
        .header(CONTENT_TYPE, "application/json");
    if config.gzip_level.is_some() {
        request = request.header(CONTENT_ENCODING, "gzip");
    }
    sender.signed(request, message_id, body)
}
