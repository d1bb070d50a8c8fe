//! The webhook request: JSON body and the Standard Webhooks signature.

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use time::OffsetDateTime;

use crate::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signer};

use super::config::WebhookConfig;

pub fn post(
    client: &reqwest::Client,
    config: &WebhookConfig,
    signer: &Signer,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let signature = signer.sign(message_id, OffsetDateTime::now_utc(), &body);
    client
        .post(config.url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(HEADER_ID, signature.id)
        .header(HEADER_TIMESTAMP, signature.timestamp)
        .header(HEADER_SIGNATURE, signature.signature)
        .body(body)
}
