//! Publishing to the events topic with the write-path guarantee: a caller is told "accepted"
//! only after the broker acknowledged every event (idempotent producer, `acks=all`).
//!
//! Backpressure: the producer's queue is bounded (`queue_max_messages`/`queue_max_kbytes`).
//! When it is full, `publish` fails at once with [`PublishError::Busy`] instead of buffering
//! more; when the broker does not acknowledge within the delivery timeout (Kafka down), it
//! fails with [`PublishError::NotAcknowledged`]. The gateway answers both with 503 and
//! `Retry-After`, so memory stays bounded and nothing that got a 2xx can be lost.

use std::time::{Duration, Instant};

use audit_core::integrity::{IntegrityKey, Signer};
use audit_kafka::{KafkaConfig, ProducerTuning, StatsContext};
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// One event ready to publish.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub org_id: &'a str,
    pub json: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the gateway's Kafka queue is full")]
    Busy,
    #[error("Kafka did not acknowledge the events: {0}")]
    NotAcknowledged(String),
}

pub struct Publisher {
    producer: FutureProducer<StatsContext>,
    topic: String,
    timeout: Duration,
    /// Tags every published event as the gateway's (validated producer events) or the
    /// system's own (see `audit_core::integrity`).
    integrity: IntegrityKey,
}

impl Publisher {
    pub fn new(
        kafka: &KafkaConfig,
        tuning: &ProducerTuning,
        topic: &str,
        integrity: IntegrityKey,
    ) -> Result<Self, KafkaError> {
        let mut config = kafka.client_config("gateway");
        tuning.apply(&mut config);
        audit_kafka::enable_statistics(&mut config);
        let producer = config.create_with_context(StatsContext::new("gateway"))?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            integrity,
            // Slightly beyond the producer's own delivery timeout, which reports first.
            timeout: Duration::from_millis(u64::from(tuning.delivery_timeout_ms) + 1_000),
        })
    }

    /// Publishes events written by `signer` and waits for the broker's acknowledgement of
    /// all of them.
    pub async fn publish(
        &self,
        events: &[Outgoing<'_>],
        producer_name: &str,
        signer: Signer,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let mut deliveries = Vec::with_capacity(events.len());
        for event in events {
            let tag = self.integrity.tag(signer, event.json);
            let headers = audit_kafka::event_headers(producer_name, Some(&tag));
            let record = FutureRecord::to(&self.topic)
                .key(event.org_id)
                .payload(event.json)
                .headers(headers);
            match self.producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    metrics::counter!("gateway_kafka_errors_total", "kind" => "queue_full")
                        .increment(1);
                    return Err(PublishError::Busy);
                }
                Err((error, _)) => {
                    metrics::counter!("gateway_kafka_errors_total", "kind" => "produce")
                        .increment(1);
                    return Err(PublishError::NotAcknowledged(error.to_string()));
                }
            }
        }
        let outcomes = tokio::time::timeout(self.timeout, join_all(deliveries))
            .await
            .map_err(|_| {
                metrics::counter!("gateway_kafka_errors_total", "kind" => "timeout").increment(1);
                PublishError::NotAcknowledged("delivery timed out".into())
            })?;
        for outcome in outcomes {
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    metrics::counter!("gateway_kafka_errors_total", "kind" => "delivery")
                        .increment(1);
                    return Err(PublishError::NotAcknowledged(error.to_string()));
                }
                Err(_) => {
                    return Err(PublishError::NotAcknowledged(
                        "producer dropped the message".into(),
                    ));
                }
            }
        }
        metrics::histogram!("gateway_publish_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Messages waiting for the broker's acknowledgement.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits for every queued message to be acknowledged (graceful shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.producer.flush(timeout) {
            tracing::warn!(%error, in_flight = self.in_flight(), "flush on shutdown incomplete");
        }
    }
}
