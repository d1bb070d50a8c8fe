//! Wazuh server API (4.6 and later): `POST /events` with a JWT.
//!
//! Limits and behaviour (PROTOCOLS.md):
//! * Login `POST /security/user/authenticate?raw=true` with HTTP Basic (the API user needs
//!   RBAC action `event:ingest`) returns a JWT, sent as `Authorization: Bearer`. Tokens live
//!   900 s by default: the session reads `exp` from the token and logs in again
//!   `token_refresh_margin_secs` before it, and at once on a 401 (then the request is resent
//!   once). The token and password are never logged.
//! * Body `{"events": ["<string>", …]}`: each event is the JSON string of
//!   `{"integration":"solarius-audit-log","audit":<event>}`; at most 100 events per request
//!   (more → 400 "Events bulk size exceeded"), at most 64 KiB per event.
//! * At most `requests_per_minute` requests (destination setting, default 30, Wazuh's own
//!   default): requests are paced evenly by a token bucket shared by every lane of the
//!   destination in this process, so a manager caps near 3,000 events/min.
//! * 200 with `failed_items` is a partial failure: only the failed items are retried.
//!   400 "bulk size" splits the batch, other 400s are poison (split until alone, dead-letter);
//!   401 after a fresh login and 403 (RBAC) are misconfigured; 429 and 5xx are retried.

pub mod classifier;
pub mod config;
pub mod encoder;
pub mod request;
pub mod service;
#[cfg(test)]
mod tests;

pub use config::{WazuhConfig, WazuhOptions};
pub use service::{WazuhSession, WazuhSink};

use audit_settings::model::WazuhSettings;

use audit_runtime::Secret;
use audit_settings::OutboundPolicy;

use crate::{BuildParts, InvalidSetting, Sink, UNCHECKED};

/// Builds the sink of a Wazuh destination; its session (token, pacing) is shared by the
/// destination's lanes until its URL, user, password or pacing change.
pub fn build(
    settings: &WazuhSettings,
    mut parts: BuildParts<'_>,
) -> Result<Box<dyn Sink>, InvalidSetting> {
    let password = parts.credential("config.password")?;
    let config = WazuhConfig::new(settings, password, &parts.options.wazuh, parts.policy)?;
    let session = parts.state.get_or_create(&config.fingerprint(), || {
        WazuhSession::new(config.requests_per_minute)
    });
    Ok(Box::new(WazuhSink::new(
        config,
        parts.signer,
        parts.client,
        session,
        parts.options.max_response_bytes,
    )))
}

/// Checks a Wazuh destination's settings as [`build`] will (its password is checked where it
/// is given).
pub fn check(
    settings: &WazuhSettings,
    options: &crate::SinksConfig,
    policy: &OutboundPolicy,
) -> Result<(), InvalidSetting> {
    WazuhConfig::new(
        settings,
        Secret::new(UNCHECKED.into()),
        &options.wazuh,
        policy,
    )
    .map(drop)
}
