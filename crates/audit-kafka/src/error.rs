use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {topic}: {reason}")]
    Topic { topic: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
