//! Datadog Logs intake API v2 (`POST https://http-intake.logs.<site>/api/v2/logs`).
//!
//! Limits and behaviour (PROTOCOLS.md):
//! * Auth `DD-API-KEY` (opened from the settings only to build the header, never logged).
//! * Body: a JSON array of log objects, gzip-compressed (`Content-Encoding: gzip`; the
//!   signature covers the bytes on the wire).
//! * At most 1,000 entries and 5 MB (uncompressed) per request, 1 MB per log: batches are cut
//!   below these (`[sinks.datadog]`), and a single event over 1 MB is dead-lettered rather than
//!   silently truncated by the intake.
//! * Reserved attributes: `ddsource`, `ddtags` (the destination's tags plus `org_id`,
//!   `category`, `action`, `outcome`), `service`, `hostname` (the producing service, else
//!   `[sinks.datadog] default_hostname`), `status` (`info`, `warn` for failures), `timestamp`
//!   (epoch ms of `occurred_at`), `message` (a one-line summary); the event itself is the
//!   `audit` attribute, with `evt.name`/`evt.outcome` standard attributes.
//! * 202 accepted. 400 is poison (the batch is split until the bad log is alone, then it is
//!   dead-lettered); 401/403 misconfigured (pause); 413 split; 408, 429, 5xx retried.

pub mod classifier;
pub mod config;
pub mod encoder;
pub mod request;
pub mod service;
pub mod settings;
#[cfg(test)]
mod tests;

pub use config::{DatadogConfig, DatadogOptions};
pub use service::DatadogSink;

pub use settings::{DatadogInput, DatadogSettings};
