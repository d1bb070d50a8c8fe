//! The Datadog intake request: API key, content headers, Standard Webhooks signature.

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use time::OffsetDateTime;

use crate::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signer};

use super::config::DatadogConfig;

pub const API_KEY_HEADER: &str = "DD-API-KEY";

pub fn logs(
    client: &reqwest::Client,
    config: &DatadogConfig,
    signer: &Signer,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let signature = signer.sign(message_id, OffsetDateTime::now_utc(), &body);
    let mut request = client
        .post(config.url.clone())
        .header(API_KEY_HEADER, config.api_key.expose())
        .header(CONTENT_TYPE, "application/json")
        .header(HEADER_ID, signature.id)
        .header(HEADER_TIMESTAMP, signature.timestamp)
        .header(HEADER_SIGNATURE, signature.signature);
    if config.gzip_level.is_some() {
        request = request.header(CONTENT_ENCODING, "gzip");
    }
    request.body(body)
}
