//! Sends HEC batches; with indexer acknowledgement, waits until the batch is indexed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::event::ForwardEvent;
use crate::response::Sender;
use crate::{Attempt, BatchLimits, Payload, Sink, Verdict};

use super::config::HecConfig;
use super::{classifier, encoder, request};

#[derive(Debug)]
pub struct HecSink {
    config: HecConfig,
    sender: Sender,
    /// This instance's acknowledgement channel (only with indexer acknowledgement).
    channel: Option<String>,
}

impl HecSink {
    pub fn new(config: HecConfig, sender: Sender, channel: Option<String>) -> Self {
        Self {
            config,
            sender,
            channel,
        }
    }

    /// Sends one batch and classifies the answer.
    pub async fn deliver(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        let body = Bytes::from(encoder::frame(parts));
        let started = Instant::now();
        let channel = self.channel.as_deref();
        let request = request::events(&self.sender, &self.config, message_id, &body, channel);
        let answer = match self.sender.exchange(request, started, message_id).await {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        let status = answer.status;
        let reply = classifier::parse(answer.body());
        let verdict = classifier::classify(status, &reply);
        let attempt = Attempt::answered(verdict, &answer, started, message_id);
        if !attempt.is_delivered() {
            return attempt;
        }
        let Some(channel) = self.channel.as_deref() else {
            return attempt;
        };
        match reply.ack_id {
            Some(ack_id) => {
                self.wait_indexed(ack_id, channel, message_id, started)
                    .await
            }
            None => Attempt {
                verdict: Verdict::Misconfigured,
                status: status.to_string(),
                excerpt: format!(
                    "indexer acknowledgement is on for this destination but the response has no ackId: {}",
                    attempt.excerpt
                ),
                ..attempt
            },
        }
    }

    /// Polls the acknowledgement of `ack_id` until it is indexed or `ack_timeout` passes.
    async fn wait_indexed(
        &self,
        ack_id: u64,
        channel: &str,
        message_id: &str,
        started: Instant,
    ) -> Attempt {
        let deadline = started + self.config.ack_timeout;
        loop {
            tokio::time::sleep(self.config.ack_poll_interval).await;
            let poll = request::ack_poll(&self.sender, &self.config, message_id, ack_id, channel);
            match self.sender.exchange(poll, started, message_id).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    if acknowledged(answer.body(), ack_id) {
                        let status = answer.status.to_string();
                        return Attempt::described(
                            Verdict::Delivered,
                            status,
                            String::new(),
                            started,
                            message_id,
                        );
                    }
                }
                Ok(answer) => {
                    let reply = classifier::parse(answer.body());
                    let verdict = classifier::classify(answer.status, &reply);
                    if verdict == Verdict::Misconfigured {
                        let status = format!("ack {}", answer.status);
                        return Attempt::described(
                            verdict,
                            status,
                            answer.excerpt(),
                            started,
                            message_id,
                        );
                    }
                }
                Err(failed) => {
                    tracing::debug!(status = %failed.status, excerpt = %failed.excerpt, "ack poll failed; polling again");
                }
            }
            if Instant::now() + Duration::from_millis(1) >= deadline {
                let excerpt = format!(
                    "not acknowledged as indexed within {:?}",
                    self.config.ack_timeout
                );
                return Attempt::described(
                    Verdict::Retriable,
                    "ack-timeout",
                    excerpt,
                    started,
                    message_id,
                );
            }
        }
    }
}

impl Sink for HecSink {
    fn limits(&self) -> BatchLimits {
        self.config.limits
    }

    fn encode(&self, event: &ForwardEvent, payload: Payload<'_>) -> Vec<u8> {
        encoder::encode(&self.config, event, payload)
    }

    fn framed_len(&self, bytes: usize, count: usize) -> usize {
        encoder::framed_len(bytes, count)
    }

    fn send<'a>(&'a self, parts: &'a [&'a [u8]], message_id: &'a str) -> BoxFuture<'a, Attempt> {
        Box::pin(self.deliver(parts, message_id))
    }

    fn request(&self, parts: &[&[u8]], message_id: &str) -> Option<reqwest::RequestBuilder> {
        // With indexer acknowledgement a batch is delivered only once polled as indexed.
        if self.channel.is_some() {
            return None;
        }
        let body = Bytes::from(encoder::frame(parts));
        Some(request::events(
            &self.sender,
            &self.config,
            message_id,
            &body,
            None,
        ))
    }
}

/// Whether `{"acks":{"<id>":true}}` says `ack_id` is indexed.
pub fn acknowledged(body: &[u8], ack_id: u64) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("acks")?.get(ack_id.to_string())?.as_bool())
        .unwrap_or(false)
}
