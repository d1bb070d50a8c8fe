#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("clickhouse did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("insert interrupted: {0}")]
    Interrupted(String),
    #[error("schema: {0}")]
    Schema(String),
    /// A read stopped by one of its bounds ([`crate::bounds::ReadBounds`]).
    #[error("the read exceeded its {bound} bound: {detail}")]
    ReadLimit { bound: &'static str, detail: String },
    #[error("invalid query: {param}: {reason}")]
    InvalidQuery { param: &'static str, reason: String },
}

/// ClickHouse error codes meaning "a server (or the shard holding the rows) could not be
/// reached", as opposed to a problem with the query: SOCKET_TIMEOUT, NETWORK_ERROR,
/// ALL_CONNECTION_TRIES_FAILED, ALL_REPLICAS_ARE_STALE, NO_REMOTE_SHARD_AVAILABLE.
const UNAVAILABLE_CODES: [u32; 5] = [209, 210, 279, 369, 519];

impl Error {
    /// Whether ClickHouse, or a shard behind a Distributed table, could not be reached: a
    /// caller may retry later (the gateway answers 503), nothing is wrong with the request.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::ClickHouse(
                clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut,
            ) => true,
            Self::ClickHouse(clickhouse::error::Error::BadResponse(message)) => {
                server_code(message).is_some_and(|code| UNAVAILABLE_CODES.contains(&code))
            }
            _ => false,
        }
    }

    pub fn invalid(param: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidQuery {
            param,
            reason: reason.into(),
        }
    }

    /// The engine's reason when ClickHouse refused an INSERT because of what its rows
    /// contain: the same rows would be refused again however healthy the engine is, so
    /// retrying them is pointless and the offending rows must be isolated. `None` for
    /// everything else (network, timeouts, overload, missing tables, permissions…), which is
    /// about the engine's health and is retried with backoff.
    pub fn data_refusal(&self) -> Option<&str> {
        let Self::ClickHouse(clickhouse::error::Error::BadResponse(message)) = self else {
            return None;
        };
        let about_the_data = DATA_ERRORS
            .iter()
            .any(|name| message.contains(&format!("({name})")))
            // TOO_MANY_PARTS also means "merges are behind" (back-pressure, retry); only this
            // message is about the rows: they span too many partitions for one INSERT.
            || message.contains("Too many partitions for single INSERT block");
        about_the_data.then_some(message.as_str())
    }
}

/// ClickHouse error names (as printed at the end of an exception message) that refuse an
/// INSERT because of a value in it: parse and conversion failures, out-of-range values,
/// constraints and `throwIf` checks.
const DATA_ERRORS: &[&str] = &[
    "CANNOT_PARSE_TEXT",
    "CANNOT_PARSE_QUOTED_STRING",
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    "CANNOT_PARSE_DATE",
    "CANNOT_PARSE_DATETIME",
    "CANNOT_PARSE_NUMBER",
    "TYPE_MISMATCH",
    "ARGUMENT_OUT_OF_BOUND",
    "CANNOT_CONVERT_TYPE",
    "INCORRECT_DATA",
    "TOO_LARGE_ARRAY_SIZE",
    "TOO_LARGE_STRING_SIZE",
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO",
    "VIOLATED_CONSTRAINT",
];

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The code of a ClickHouse exception text: `Code: 279. DB::Exception: …` → 279.
fn server_code(message: &str) -> Option<u32> {
    let start = message.find("Code: ")? + "Code: ".len();
    let digits: String = message[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(message: &str) -> Error {
        Error::ClickHouse(clickhouse::error::Error::BadResponse(message.into()))
    }

    #[test]
    fn refusals_about_rows_are_told_apart_from_engine_trouble() {
        let constraint = response(
            "Code: 469. DB::Exception: Constraint `c` for table audit.events is violated at row 1. (VIOLATED_CONSTRAINT) (version 26.9.2.1)",
        );
        assert!(constraint.data_refusal().is_some());
        let partitions = response(
            "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)",
        );
        assert!(partitions.data_refusal().is_some());
        for engine in [
            "Code: 252. DB::Exception: Too many parts (3001). Merges are processing significantly slower than inserts. (TOO_MANY_PARTS)",
            "Code: 60. DB::Exception: Table audit.events does not exist. (UNKNOWN_TABLE)",
            "Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)",
            "Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)",
        ] {
            assert!(response(engine).data_refusal().is_none(), "{engine}");
        }
        assert!(
            Error::Timeout(std::time::Duration::from_secs(1))
                .data_refusal()
                .is_none()
        );
    }

    #[test]
    fn a_shard_that_cannot_be_reached_is_unavailable() {
        // As ClickHouse 26.9 answers a read routed to a stopped shard.
        let stopped_shard = response(
            "Code: 279. DB::Exception: All connection tries failed. Log: \n\nCode: 210. \
             DB::NetException: Connection refused (127.0.0.1:47902). (NETWORK_ERROR)\n: While \
             executing Remote. (ALL_CONNECTION_TRIES_FAILED) (version 26.9.2.1)",
        );
        assert!(stopped_shard.is_unavailable());
        assert!(response("http://ch-2:8123: Code: 210. DB::NetException: x").is_unavailable());
        assert!(Error::Timeout(std::time::Duration::from_secs(1)).is_unavailable());
    }

    #[test]
    fn query_and_schema_errors_are_not_unavailability() {
        assert!(!response("Code: 62. DB::Exception: Syntax error").is_unavailable());
        assert!(!response("Code: 60. DB::Exception: Unknown table").is_unavailable());
        assert!(!response("no code at all").is_unavailable());
        assert!(!Error::Schema("x".into()).is_unavailable());
        assert!(!Error::invalid("q", "too long").is_unavailable());
    }
}
