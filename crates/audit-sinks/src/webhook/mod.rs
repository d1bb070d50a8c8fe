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
pub mod settings;
#[cfg(test)]
mod tests;

pub use config::{WebhookConfig, WebhookOptions};
pub use service::WebhookSink;

pub use settings::{WebhookInput, WebhookSettings};
