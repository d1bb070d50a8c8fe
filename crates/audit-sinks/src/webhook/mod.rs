//! Generic signed webhook: a JSON array of events POSTed to any HTTPS receiver.
//!
//! Limits and behaviour (Standard Webhooks delivery guidance, PROTOCOLS.md):
//! * Body: `[event, event, …]`, at most `max_batch_events` (destination setting, default
//!   `[sinks.webhook] max_batch_events` = 500) and `max_batch_bytes` (default 1 MiB).
//! * Authenticity comes from the Standard Webhooks signature alone (no other credential).
//! * 2xx delivered. 3xx is a failure (redirects are never followed) and, like 401, 403, 404,
//!   405 and 410 ("disable this endpoint"), means misconfigured: pause. 400 and 422 are poison
//!   (split until the refused event is alone, then dead-letter it); 413 splits; 408, 409, 425,
//!   429 and 5xx are retried, honouring `Retry-After`.

pub mod classifier;
pub mod config;
pub mod encoder;
pub mod request;
pub mod service;
#[cfg(test)]
mod tests;

pub use config::{WebhookConfig, WebhookOptions};
pub use service::WebhookSink;

use audit_settings::model::WebhookSettings;

use audit_settings::OutboundPolicy;

use crate::{BuildParts, InvalidSetting, Sink};

/// Builds the sink of a webhook destination.
pub fn build(
    settings: &WebhookSettings,
    parts: BuildParts<'_>,
) -> Result<Box<dyn Sink>, InvalidSetting> {
    let config = WebhookConfig::new(settings, &parts.options.webhook, parts.policy)?;
    Ok(Box::new(WebhookSink::new(
        config,
        parts.signer,
        parts.client,
        parts.options.max_response_bytes,
    )))
}

/// Checks a webhook destination's settings as [`build`] will.
pub fn check(
    settings: &WebhookSettings,
    options: &crate::SinksConfig,
    policy: &OutboundPolicy,
) -> Result<(), InvalidSetting> {
    WebhookConfig::new(settings, &options.webhook, policy).map(drop)
}
