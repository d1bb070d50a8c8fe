//! The sinks' error type. Delivery failures are not errors: they are [`crate::Attempt`]
//! values classified per destination type.

/// Why a destination cannot be used, or the outbound client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("destination `{destination_id}` cannot be used: {reason}")]
    Destination {
        destination_id: String,
        reason: String,
    },
    #[error("http client: {0}")]
    Http(#[source] reqwest::Error),
}

impl Error {
    pub fn destination(destination_id: &str, reason: impl Into<String>) -> Self {
        Self::Destination {
            destination_id: destination_id.to_string(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
