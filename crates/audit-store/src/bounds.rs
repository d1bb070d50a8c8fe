//! Bounds on the reads the API sends to ClickHouse, so that no reader can take the engine from
//! the other tenants or from the indexer.
//!
//! Every read carries, as per-query settings:
//! * `readonly = 2` — the statement can only read (and set query settings);
//! * `max_execution_time` — the engine stops the query after this many seconds
//!   (`TIMEOUT_EXCEEDED`), whatever the client does;
//! * `max_memory_usage` — the engine stops a query that needs more memory
//!   (`MEMORY_LIMIT_EXCEEDED`);
//! * `max_result_bytes` — pages and single events only: a result larger than this is refused
//!   (`TOO_MANY_ROWS_OR_BYTES`). Exports stream with no row cap by contract, so they are
//!   bounded by time and memory only;
//! * `max_threads` — how many cores one read may use;
//! * `cancel_http_readonly_queries_on_client_close = 1` — when the caller goes away (the HTTP
//!   client of the gateway disconnected and the gateway dropped the request), the engine
//!   cancels the query instead of computing a result nobody reads. ClickHouse honours it only
//!   for read-only queries, hence `readonly = 2`;
//! * a `query_id` (`<client>-<kind>-<uuid>`, e.g. `gw-list-…` from the gateway) and a
//!   `log_comment` naming the client, kind and organization, so operators can find a reader's
//!   queries in `system.processes` and `system.query_log`.
//!
//! A query stopped by a bound becomes [`Error::ReadLimit`].

use clickhouse::query::Query;
use uuid::Uuid;

use crate::error::Error;

/// ClickHouse bounds applied to one class of reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBounds {
    /// `max_execution_time`, in seconds.
    pub max_execution_secs: u64,
    /// `max_memory_usage`, in bytes.
    pub max_memory_bytes: u64,
    /// `max_result_bytes`, in bytes; `None` for results without a cap (exports).
    pub max_result_bytes: Option<u64>,
    /// `max_threads`; 0 leaves the server's default.
    pub max_threads: u64,
}

impl ReadBounds {
    /// Pages, single events, the feed, operator views: small results, quick answers.
    pub const DEFAULT_QUERIES: ReadBounds = ReadBounds {
        max_execution_secs: 10,
        max_memory_bytes: 512 * 1024 * 1024,
        max_result_bytes: Some(64 * 1024 * 1024),
        max_threads: 2,
    };

    /// Exports: streamed with no row cap, so bounded by time and memory only.
    pub const DEFAULT_EXPORTS: ReadBounds = ReadBounds {
        max_execution_secs: 3600,
        max_memory_bytes: 1024 * 1024 * 1024,
        max_result_bytes: None,
        max_threads: 2,
    };

    /// The settings of a read of `kind` for `org_id` by `client`, in the order they are sent.
    pub fn settings(&self, client: &str, kind: &str, org_id: &str) -> Vec<(&'static str, String)> {
        let mut settings = vec![
            ("readonly", "2".to_string()),
            ("cancel_http_readonly_queries_on_client_close", "1".into()),
            ("max_execution_time", self.max_execution_secs.to_string()),
            ("timeout_overflow_mode", "throw".into()),
            ("max_memory_usage", self.max_memory_bytes.to_string()),
            (
                "query_id",
                format!("{client}-{kind}-{}", Uuid::new_v4().as_simple()),
            ),
            ("log_comment", format!("{client} {kind} org={org_id}")),
        ];
        if let Some(bytes) = self.max_result_bytes {
            settings.push(("max_result_bytes", bytes.to_string()));
            settings.push(("result_overflow_mode", "throw".into()));
        }
        if self.max_threads > 0 {
            settings.push(("max_threads", self.max_threads.to_string()));
        }
        settings
    }

    /// Applies [`ReadBounds::settings`] to a query.
    pub(crate) fn apply(&self, mut query: Query, client: &str, kind: &str, org_id: &str) -> Query {
        for (name, value) in self.settings(client, kind, org_id) {
            query = query.with_setting(name, value);
        }
        query
    }
}

impl Default for ReadBounds {
    fn default() -> Self {
        Self::DEFAULT_QUERIES
    }
}

/// Which bound stopped a query, from ClickHouse's error name.
const BOUND_ERRORS: &[(&str, &str)] = &[
    ("(TIMEOUT_EXCEEDED)", "execution time"),
    ("(MEMORY_LIMIT_EXCEEDED)", "memory"),
    ("(TOO_MANY_ROWS_OR_BYTES)", "result size"),
    ("(TOO_MANY_BYTES)", "result size"),
    ("(TOO_MANY_ROWS)", "result size"),
];

/// Turns a ClickHouse error of a bounded read into [`Error::ReadLimit`] when a bound stopped
/// it; other errors pass through.
pub fn classify(error: clickhouse::error::Error) -> Error {
    if let clickhouse::error::Error::BadResponse(message) = &error
        && let Some((_, bound)) = BOUND_ERRORS.iter().find(|(name, _)| message.contains(name))
    {
        return Error::ReadLimit {
            bound,
            detail: first_line(message),
        };
    }
    Error::ClickHouse(error)
}

fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_read_is_readonly_cancellable_and_labelled() {
        let settings = ReadBounds::DEFAULT_QUERIES.settings("gw", "list", "org_a");
        let get = |name: &str| {
            settings
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(get("readonly").as_deref(), Some("2"));
        assert_eq!(
            get("cancel_http_readonly_queries_on_client_close").as_deref(),
            Some("1")
        );
        assert_eq!(get("max_execution_time").as_deref(), Some("10"));
        assert_eq!(get("max_result_bytes").as_deref(), Some("67108864"));
        assert!(get("query_id").unwrap().starts_with("gw-list-"));
        assert_eq!(get("log_comment").as_deref(), Some("gw list org=org_a"));
    }

    #[test]
    fn exports_have_no_result_cap() {
        let settings = ReadBounds::DEFAULT_EXPORTS.settings("gw", "export", "org_a");
        assert!(settings.iter().all(|(name, _)| *name != "max_result_bytes"));
        assert!(settings.iter().any(|(name, _)| *name == "max_memory_usage"));
    }

    #[test]
    fn bound_errors_are_recognised() {
        let timeout = clickhouse::error::Error::BadResponse(
            "Code: 159. DB::Exception: Timeout exceeded: elapsed 10.2 seconds, maximum: 10. (TIMEOUT_EXCEEDED) (version 26.9.2.1)\nmore".into(),
        );
        match classify(timeout) {
            Error::ReadLimit { bound, detail } => {
                assert_eq!(bound, "execution time");
                assert!(!detail.contains("more"));
            }
            other => panic!("{other:?}"),
        }
        let other = clickhouse::error::Error::BadResponse(
            "Code: 60. DB::Exception: Unknown table. (UNKNOWN_TABLE)".into(),
        );
        assert!(matches!(classify(other), Error::ClickHouse(_)));
    }
}
