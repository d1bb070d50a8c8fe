//! The forwarder's one error type.

/// Errors of the forwarder library. Delivery failures are not errors: they are
/// [`audit_sinks::Attempt`] values classified per destination type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] audit_runtime::ConfigError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Topics(#[from] audit_kafka::Error),
    #[error("settings: {0}")]
    Settings(#[from] audit_settings::Error),
    #[error("event contract: {0}")]
    Contract(#[from] audit_core::Error),
    #[error(transparent)]
    Sinks(#[from] audit_sinks::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
