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
pub mod settings;
#[cfg(test)]
mod tests;

pub use config::{HecConfig, HecOptions};
pub use service::HecSink;
pub use settings::{SplunkHecInput, SplunkHecSettings};
