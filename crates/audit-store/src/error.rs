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

impl Error {
    pub fn invalid(param: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidQuery {
            param,
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
