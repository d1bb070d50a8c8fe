//! The dead-letter topic: the original key and bytes, and why, in headers.
//!
//! Headers: `dlq-reason` (human-readable), `dlq-stage` (`indexer` / `forwarder`),
//! `dlq-source` (`topic/partition/offset`), `dlq-at` (RFC 3339 UTC), and for the forwarder
//! `dlq-destination-id`, `dlq-last-status`, `dlq-response-excerpt`.

use std::time::Duration;

use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::error::{Error, Result};

/// Why and where a message is dead-lettered.
#[derive(Debug, Clone, Default)]
pub struct DeadLetter<'a> {
    pub stage: &'a str,
    pub reason: String,
    pub source: Option<(String, i32, i64)>,
    pub destination_id: Option<&'a str>,
    pub last_status: Option<String>,
    pub response_excerpt: Option<String>,
}

/// Longest reason or excerpt kept in a header.
const MAX_HEADER_TEXT: usize = 2048;

#[derive(Clone)]
pub struct DeadLetterWriter {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetterWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterWriter")
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetterWriter {
    pub fn new(producer: FutureProducer, topic: impl Into<String>) -> Self {
        Self {
            producer,
            topic: topic.into(),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Writes one dead letter and waits for the broker's acknowledgement.
    pub async fn send(
        &self,
        key: Option<&[u8]>,
        payload: &[u8],
        letter: DeadLetter<'_>,
    ) -> Result<()> {
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let source = letter
            .source
            .as_ref()
            .map(|(topic, partition, offset)| format!("{topic}/{partition}/{offset}"));
        let reason = truncate(&letter.reason);
        let mut headers = OwnedHeaders::new()
            .insert(header("dlq-reason", Some(reason.as_str())))
            .insert(header("dlq-stage", Some(letter.stage)))
            .insert(header("dlq-at", Some(at.as_str())));
        if let Some(source) = &source {
            headers = headers.insert(header("dlq-source", Some(source.as_str())));
        }
        if let Some(destination) = letter.destination_id {
            headers = headers.insert(header("dlq-destination-id", Some(destination)));
        }
        if let Some(status) = &letter.last_status {
            headers = headers.insert(header("dlq-last-status", Some(status.as_str())));
        }
        if let Some(excerpt) = &letter.response_excerpt {
            let excerpt = truncate(excerpt);
            headers = headers.insert(header("dlq-response-excerpt", Some(excerpt.as_str())));
        }
        let mut record = FutureRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| Error::Kafka(error))?;
        metrics::counter!("dead_lettered_total", "stage" => letter.stage.to_string()).increment(1);
        tracing::warn!(stage = letter.stage, source = ?source, reason = %reason, "dead-lettered a message");
        Ok(())
    }
}

fn header<'a>(key: &'a str, value: Option<&'a str>) -> Header<'a, &'a str> {
    Header { key, value }
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_HEADER_TEXT {
        return text.to_string();
    }
    let mut end = MAX_HEADER_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A header's value as text, if present and UTF-8.
pub fn header_str<'a, H: Headers>(headers: Option<&'a H>, key: &str) -> Option<&'a str> {
    let headers = headers?;
    headers
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value)
        .and_then(|value| std::str::from_utf8(value).ok())
}
