//! Wazuh requests: login (Basic) and events (Bearer), both signed.

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::response::Sender;

use super::config::WazuhConfig;

/// `POST /security/user/authenticate?raw=true` with HTTP Basic.
pub fn login(sender: &Sender, config: &WazuhConfig) -> reqwest::RequestBuilder {
    let message_id = format!("login_{}", uuid::Uuid::new_v4().simple());
    let request = sender
        .client
        .post(config.login_url.clone())
        .basic_auth(&config.username, Some(config.password.expose()));
    sender.signed(request, &message_id, Bytes::new())
}

/// `POST /events` with the bearer token.
pub fn events(
    sender: &Sender,
    config: &WazuhConfig,
    token: &str,
    message_id: &str,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let request = sender
        .client
        .post(config.events_url.clone())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(CONTENT_TYPE, "application/json");
    sender.signed(request, message_id, body)
}
