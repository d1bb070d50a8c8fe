//! Wazuh requests: login (Basic) and events (Bearer), both signed.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use time::OffsetDateTime;

use crate::signing::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, Signer};

use super::config::WazuhConfig;

fn signed(
    request: reqwest::RequestBuilder,
    signer: &Signer,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let signature = signer.sign(message_id, OffsetDateTime::now_utc(), &body);
    request
        .header(HEADER_ID, signature.id)
        .header(HEADER_TIMESTAMP, signature.timestamp)
        .header(HEADER_SIGNATURE, signature.signature)
        .body(body)
}

/// `POST /security/user/authenticate?raw=true` with HTTP Basic.
pub fn login(
    client: &reqwest::Client,
    config: &WazuhConfig,
    signer: &Signer,
) -> reqwest::RequestBuilder {
    let message_id = format!("login_{}", uuid::Uuid::new_v4().simple());
    signed(
        client
            .post(config.login_url.clone())
            .basic_auth(&config.username, Some(config.password.expose())),
        signer,
        &message_id,
        Bytes::new(),
    )
}

/// `POST /events` with the bearer token.
pub fn events(
    client: &reqwest::Client,
    config: &WazuhConfig,
    signer: &Signer,
    token: &str,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    signed(
        client
            .post(config.events_url.clone())
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json"),
        signer,
        message_id,
        body,
    )
}
