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
pub mod settings;
#[cfg(test)]
mod tests;

pub use config::{WazuhConfig, WazuhOptions};
pub use service::{WazuhSession, WazuhSink};

pub use settings::{WazuhInput, WazuhSettings};
