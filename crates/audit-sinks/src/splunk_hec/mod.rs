//! Splunk HTTP Event Collector (`POST /services/collector/event`).
//!
//! Limits and behaviour (PROTOCOLS.md):
//! * Auth `Authorization: Splunk <token>`; the token (a GUID) is opened from the settings only
//!   to build the header and is never logged.
//! * One envelope per event — `time` (epoch seconds with milliseconds), `host`, `source`,
//!   `sourcetype`, `index` (when set), `fields` (org_id, category, action as index-time fields)
//!   and `event` (the event object) — envelopes concatenated back to back.
//! * Body at most `max_batch_bytes` (destination setting, default `[sinks.splunk_hec]
//!   max_batch_bytes` = 1 MiB; Splunk Enterprise accepts up to 800 MB, Splunk Cloud about 1 MiB).
//! * Success 200 `{"text":"Success","code":0}`. Codes 5, 6, 12, 13 are poison: the batch is
//!   split at `invalid-event-number` (events before it were accepted), the event dead-lettered
//!   and the rest resent. Codes 1–4, 7, 10, 11, 14 mean misconfigured: pause, keep the events.
//!   Codes 8, 9 and 5xx, 429, 408, timeouts and connection errors are retried.
//! * Indexer acknowledgement (destination `indexer_ack`): every request carries this
//!   instance's `X-Splunk-Request-Channel`; the response's `ackId` is polled on
//!   `POST /services/collector/ack` until indexed, so "delivered" means "indexed". A batch not
//!   acknowledged within `ack_timeout_secs` is resent (same `webhook-id`, receivers dedupe).

pub mod classifier;
pub mod config;
pub mod encoder;
pub mod request;
pub mod service;
#[cfg(test)]
mod tests;

pub use config::{HecConfig, HecOptions};
pub use service::HecSink;

use audit_settings::model::SplunkHecSettings;

use audit_runtime::Secret;
use audit_settings::OutboundPolicy;

use crate::{BuildParts, InvalidSetting, Sink, UNCHECKED};

/// This instance's indexer-acknowledgement channel for the destination (a GUID), kept while
/// the destination's settings change.
#[derive(Debug)]
struct Channel(String);

/// Builds the sink of a Splunk HEC destination.
pub fn build(
    settings: &SplunkHecSettings,
    mut parts: BuildParts<'_>,
) -> Result<Box<dyn Sink>, InvalidSetting> {
    let token = parts.credential("config.token")?;
    let config = HecConfig::new(
        parts.org_id,
        settings,
        token,
        &parts.options.splunk_hec,
        parts.policy,
    )?;
    let channel = config.indexer_ack.then(|| {
        let new_channel = || Channel(uuid::Uuid::new_v4().to_string());
        parts.state.get_or_create("channel", new_channel).0.clone()
    });
    Ok(Box::new(HecSink::new(
        config,
        parts.signer,
        parts.client,
        channel,
        parts.options.max_response_bytes,
    )))
}

/// Checks a Splunk HEC destination's settings as [`build`] will (its token is checked where
/// it is given: presence there, validity by Splunk).
pub fn check(
    settings: &SplunkHecSettings,
    options: &crate::SinksConfig,
    policy: &OutboundPolicy,
) -> Result<(), InvalidSetting> {
    HecConfig::new(
        "",
        settings,
        Secret::new(UNCHECKED.into()),
        &options.splunk_hec,
        policy,
    )
    .map(drop)
}
