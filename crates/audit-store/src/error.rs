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
}

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

    fn bad_response(text: &str) -> Error {
        Error::ClickHouse(clickhouse::error::Error::BadResponse(text.into()))
    }

    #[test]
    fn a_shard_that_cannot_be_reached_is_unavailable() {
        // As ClickHouse 26.9 answers a read routed to a stopped shard.
        let stopped_shard = bad_response(
            "Code: 279. DB::Exception: All connection tries failed. Log: \n\nCode: 210. \
             DB::NetException: Connection refused (127.0.0.1:47902). (NETWORK_ERROR)\n: While \
             executing Remote. (ALL_CONNECTION_TRIES_FAILED) (version 26.9.2.1)",
        );
        assert!(stopped_shard.is_unavailable());
        assert!(bad_response("http://ch-2:8123: Code: 210. DB::NetException: x").is_unavailable());
        assert!(Error::Timeout(std::time::Duration::from_secs(1)).is_unavailable());
    }

    #[test]
    fn query_and_schema_errors_are_not_unavailability() {
        assert!(!bad_response("Code: 62. DB::Exception: Syntax error").is_unavailable());
        assert!(!bad_response("Code: 60. DB::Exception: Unknown table").is_unavailable());
        assert!(!bad_response("no code at all").is_unavailable());
        assert!(!Error::Schema("x".into()).is_unavailable());
        assert!(!Error::invalid("q", "too long").is_unavailable());
    }
}
