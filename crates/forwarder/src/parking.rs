//! Durable hand-offs that let an event's offset be committed without delivering it: parking
//! on the retry topic and dead-lettering. Both wait for the broker's acknowledgement
//! (idempotent producer, `acks=all`) before the events are acknowledged; a Kafka failure is
//! retried with the shared backoff until it succeeds or the process shuts down (then the
//! events stay unacknowledged and are re-read after the restart: nothing is lost).

use std::time::Duration;

use audit_kafka::{DeadLetter, DeadLetterWriter};
use bytes::Bytes;
use futures::future::{BoxFuture, join_all};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffEngine;
use crate::delivery::{Delivery, ParkReason, ParkedMeta};
use audit_kafka::offsets::Ack;

/// Why and where to park a group of deliveries of one destination.
#[derive(Debug, Clone)]
pub struct ParkInfo<'a> {
    pub org_id: &'a str,
    pub destination_id: &'a str,
    pub reason: ParkReason,
    /// Failed attempts so far (after this one).
    pub attempt: u32,
    pub next_attempt_ms: i64,
    pub last_status: Option<&'a str>,
    pub last_excerpt: Option<&'a str>,
}

/// Why a delivery is dead-lettered.
#[derive(Debug, Clone)]
pub struct DeadInfo<'a> {
    pub destination_id: &'a str,
    pub reason: String,
    pub last_status: Option<&'a str>,
    pub last_excerpt: Option<&'a str>,
}

/// Where a lane hands off the events it does not deliver: parked on the retry topic or
/// dead-lettered, each acknowledged once the hand-off is durable. The lanes' seam: the
/// forwarder uses [`Parker`] (Kafka), lane tests a fake.
pub trait Handoff: Send + Sync {
    /// Parks `deliveries` (in order) and acknowledges them. False when it gave up at shutdown.
    fn park<'a>(
        &'a self,
        deliveries: &'a [&'a Delivery],
        info: &'a ParkInfo<'a>,
    ) -> BoxFuture<'a, bool>;

    /// Dead-letters one delivery and acknowledges it. False when it gave up at shutdown.
    fn dead_letter<'a>(
        &'a self,
        delivery: &'a Delivery,
        info: &'a DeadInfo<'a>,
    ) -> BoxFuture<'a, bool>;
}

impl Handoff for Parker {
    fn park<'a>(
        &'a self,
        deliveries: &'a [&'a Delivery],
        info: &'a ParkInfo<'a>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(Parker::park(self, deliveries, info))
    }

    fn dead_letter<'a>(
        &'a self,
        delivery: &'a Delivery,
        info: &'a DeadInfo<'a>,
    ) -> BoxFuture<'a, bool> {
        Box::pin(Parker::dead_letter(self, delivery, info))
    }
}

#[derive(Clone)]
pub struct Parker {
    producer: FutureProducer,
    retry_topic: String,
    dead_letters: DeadLetterWriter,
    backoff: BackoffEngine,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Parker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parker")
            .field("retry_topic", &self.retry_topic)
            .finish()
    }
}

impl Parker {
    pub fn new(
        producer: FutureProducer,
        retry_topic: &str,
        dead_letter_topic: &str,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            dead_letters: DeadLetterWriter::new(producer.clone(), dead_letter_topic),
            producer,
            retry_topic: retry_topic.to_string(),
            backoff: BackoffEngine::new(
                Duration::from_millis(200),
                Duration::from_secs(10),
                Duration::from_secs(10),
            ),
            shutdown,
        }
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Parks `deliveries` (in order) and acknowledges them. False when it gave up at shutdown.
    pub async fn park(&self, deliveries: &[&Delivery], info: &ParkInfo<'_>) -> bool {
        if deliveries.is_empty() {
            return true;
        }
        let now_ms = crate::clock::now_ms();
        let messages: Vec<(String, Bytes, OwnedHeaders)> = deliveries
            .iter()
            .map(|delivery| {
                let meta = ParkedMeta {
                    org_id: info.org_id.to_string(),
                    destination_id: info.destination_id.to_string(),
                    attempt: info.attempt,
                    next_attempt_ms: info.next_attempt_ms,
                    reason: info.reason,
                    last_status: info.last_status.map(str::to_string),
                    last_excerpt: info.last_excerpt.map(str::to_string),
                    received_ms: delivery.event.received_at_ms,
                    first_failed_ms: delivery
                        .first_failed_ms
                        .or_else(|| (info.reason == ParkReason::Failing).then_some(now_ms)),
                    source: delivery.source.to_string(),
                };
                (meta.key(), delivery.event.json.clone(), meta.headers())
            })
            .collect();
        let mut attempt = 0;
        loop {
            match self.produce_all(&messages).await {
                Ok(()) => break,
                Err(error) => {
                    attempt += 1;
                    metrics::counter!("forwarder_kafka_errors_total", "target" => "retry_topic")
                        .increment(1);
                    tracing::warn!(%error, attempt, "parking on the retry topic failed; retrying");
                    if !self.pause(attempt).await {
                        return false;
                    }
                }
            }
        }
        Ack::all(deliveries.iter().filter_map(|d| d.ack.as_ref()));
        true
    }

    /// Produces every message (in order, one partition per key) and waits for all acks.
    async fn produce_all(
        &self,
        messages: &[(String, Bytes, OwnedHeaders)],
    ) -> Result<(), KafkaError> {
        let mut pending = Vec::with_capacity(messages.len());
        for (key, payload, headers) in messages {
            loop {
                let record = FutureRecord::to(&self.retry_topic)
                    .key(key.as_str())
                    .payload(payload.as_ref())
                    .headers(headers.clone());
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((error, _)) => return Err(error),
                }
            }
        }
        for outcome in join_all(pending).await {
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(error),
                Err(_) => return Err(KafkaError::Canceled),
            }
        }
        Ok(())
    }

    /// Dead-letters one delivery and acknowledges it. False when it gave up at shutdown.
    pub async fn dead_letter(&self, delivery: &Delivery, info: &DeadInfo<'_>) -> bool {
        let mut attempt = 0;
        loop {
            let letter = DeadLetter {
                stage: "forwarder",
                reason: info.reason.clone(),
                source: delivery.source_parts(),
                destination_id: Some(info.destination_id),
                last_status: info.last_status.map(str::to_string),
                response_excerpt: info.last_excerpt.map(str::to_string),
            };
            match self
                .dead_letters
                .send(
                    Some(delivery.event.org_id.as_bytes()),
                    &delivery.event.json,
                    letter,
                )
                .await
            {
                Ok(()) => break,
                Err(error) => {
                    attempt += 1;
                    metrics::counter!("forwarder_kafka_errors_total", "target" => "dead_letter")
                        .increment(1);
                    tracing::warn!(%error, attempt, "dead-letter write failed; retrying");
                    if !self.pause(attempt).await {
                        return false;
                    }
                }
            }
        }
        if let Some(ack) = &delivery.ack {
            ack.done();
        }
        true
    }

    /// Produces one message (an audit event) and waits for the acknowledgement.
    pub async fn produce(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), KafkaError> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error)
    }

    /// Sleeps before the next Kafka attempt; false when shutting down.
    async fn pause(&self, attempt: u32) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(self.backoff.delay(attempt, None)) => true,
        }
    }
}
