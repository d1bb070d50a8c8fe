//! The webhook request: JSON body and the Standard Webhooks signature.

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;

use crate::response::Sender;

use super::config::WebhookConfig;

pub fn post(
    sender: &Sender,
    config: &WebhookConfig,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let request = sender
        .client
        .post(config.url.clone())
        .header(CONTENT_TYPE, "application/json");
    sender.signed(request, message_id, body)
}
