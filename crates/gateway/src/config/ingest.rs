//! `[ingest]`: the bounds of `POST /v1/events` and of history imports (`POST /v1/events/import`).

use audit_runtime::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_events_per_request: usize,
    /// Most ingest requests handled at once; beyond it requests get 503 (bounded memory).
    pub max_concurrent_requests: usize,
    /// Seconds clients are told to wait (`Retry-After`) when the gateway sheds load.
    pub retry_after_secs: u64,
    /// Seconds a client has to send its whole request body, counted from the end of its
    /// headers; a slower body is answered 408 and its connection closed. An import gets this
    /// long for every `max_body_bytes` of its body.
    pub body_timeout_secs: u64,
    /// Bytes of request bodies all ingest requests together may hold while they are read;
    /// beyond it a request gets 503 (bounded memory whatever the number of senders).
    pub max_buffered_body_bytes: usize,
    /// Most ingest requests one producer key may have in flight at once (body read
    /// included); beyond it that producer gets 429, the others are unaffected.
    pub max_concurrent_requests_per_producer: usize,
    /// Largest body of one history import (streamed: never held in memory whole).
    pub import_max_body_bytes: usize,
    /// Most events (non-blank lines) in one history import; split bigger histories with
    /// `?first_line=`.
    pub import_max_events: usize,
    /// History imports running at once on this instance (one per producer key at most);
    /// beyond it 429 with `Retry-After: import_retry_after_secs`.
    pub max_concurrent_imports: usize,
    /// Events per second one import publishes at most, so live ingest and indexing keep
    /// their freshness while history is imported.
    pub import_max_events_per_sec: u32,
    /// Seconds an import refused for concurrency is told to wait (`Retry-After`).
    pub import_retry_after_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_events_per_request: 1000,
            max_concurrent_requests: 2048,
            retry_after_secs: 1,
            body_timeout_secs: 10,
            max_buffered_body_bytes: 128 * 1024 * 1024,
            max_concurrent_requests_per_producer: 512,
            import_max_body_bytes: 256 * 1024 * 1024,
            import_max_events: 100_000,
            max_concurrent_imports: 2,
            import_max_events_per_sec: 5_000,
            import_retry_after_secs: 30,
        }
    }
}

impl IngestConfig {
    /// Checks the bounds; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "ingest.max_body_bytes",
                "must be at least 1024",
            ));
        }
        let positive = [
            ("ingest.max_events_per_request", self.max_events_per_request),
            (
                "ingest.max_concurrent_requests",
                self.max_concurrent_requests,
            ),
            (
                "ingest.max_concurrent_requests_per_producer",
                self.max_concurrent_requests_per_producer,
            ),
            (
                "ingest.body_timeout_secs",
                usize::try_from(self.body_timeout_secs).unwrap_or(usize::MAX),
            ),
            ("ingest.import_max_events", self.import_max_events),
            ("ingest.max_concurrent_imports", self.max_concurrent_imports),
            (
                "ingest.import_max_events_per_sec",
                usize::try_from(self.import_max_events_per_sec).unwrap_or(usize::MAX),
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::invalid(*key, "must be positive"));
        }
        if self.max_buffered_body_bytes < self.max_body_bytes {
            return Err(ConfigError::invalid(
                "ingest.max_buffered_body_bytes",
                "must be at least ingest.max_body_bytes",
            ));
        }
        if u32::try_from(self.max_buffered_body_bytes).is_err() {
            return Err(ConfigError::invalid(
                "ingest.max_buffered_body_bytes",
                "must be below 4 GiB",
            ));
        }
        if self.import_max_body_bytes < self.max_body_bytes {
            return Err(ConfigError::invalid(
                "ingest.import_max_body_bytes",
                "must be at least ingest.max_body_bytes (an import is read in chunks of that size)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_defaults_are_valid_and_errors_name_the_key() {
        assert!(IngestConfig::default().validate().is_ok());
        for (key, config) in [
            (
                "ingest.max_concurrent_imports",
                IngestConfig {
                    max_concurrent_imports: 0,
                    ..IngestConfig::default()
                },
            ),
            (
                "ingest.import_max_events_per_sec",
                IngestConfig {
                    import_max_events_per_sec: 0,
                    ..IngestConfig::default()
                },
            ),
            (
                "ingest.import_max_body_bytes",
                IngestConfig {
                    import_max_body_bytes: 1024,
                    ..IngestConfig::default()
                },
            ),
            (
                "ingest.import_max_events",
                IngestConfig {
                    import_max_events: 0,
                    ..IngestConfig::default()
                },
            ),
        ] {
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        }
    }
}
