//! Sends HEC batches; with indexer acknowledgement, waits until the batch is indexed.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::event::ForwardEvent;
use crate::signing::Signer;
use crate::sinks::{Attempt, BatchLimits, Verdict, excerpt, retry_after, transport_failure};

use super::config::HecConfig;
use super::{classifier, encoder, request};

#[derive(Debug)]
pub struct HecSink {
    config: HecConfig,
    signer: Signer,
    client: reqwest::Client,
    /// This instance's acknowledgement channel (only with indexer acknowledgement).
    channel: Option<String>,
}

impl HecSink {
    pub fn new(
        config: HecConfig,
        signer: Signer,
        client: reqwest::Client,
        channel: Option<String>,
    ) -> Self {
        Self {
            config,
            signer,
            client,
            channel,
        }
    }

    pub fn limits(&self) -> BatchLimits {
        self.config.limits
    }

    pub fn encode(&self, event: &ForwardEvent) -> Vec<u8> {
        encoder::encode(&self.config, event)
    }

    pub async fn send(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        let body = Bytes::from(encoder::frame(parts));
        let started = Instant::now();
        let response = request::events(
            &self.client,
            &self.config,
            &self.signer,
            message_id,
            &body,
            self.channel.as_deref(),
        )
        .send()
        .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return transport_failure(&error, started, message_id),
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return transport_failure(&error, started, message_id),
        };
        let reply = classifier::parse(&bytes);
        let verdict = classifier::classify(status, &reply);
        let attempt = Attempt {
            verdict,
            status: status.to_string(),
            excerpt: excerpt(&bytes),
            retry_after,
            latency: started.elapsed(),
            message_id: message_id.to_string(),
        };
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
            let poll = request::ack_poll(
                &self.client,
                &self.config,
                &self.signer,
                message_id,
                ack_id,
                channel,
            )
            .send()
            .await;
            match poll {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let bytes = response.bytes().await.unwrap_or_default();
                    if (200..300).contains(&status) {
                        if acknowledged(&bytes, ack_id) {
                            return Attempt {
                                verdict: Verdict::Delivered,
                                status: status.to_string(),
                                excerpt: String::new(),
                                retry_after: None,
                                latency: started.elapsed(),
                                message_id: message_id.to_string(),
                            };
                        }
                    } else {
                        let verdict = classifier::classify(status, &classifier::parse(&bytes));
                        if verdict == Verdict::Misconfigured {
                            return Attempt {
                                verdict,
                                status: format!("ack {status}"),
                                excerpt: excerpt(&bytes),
                                retry_after: None,
                                latency: started.elapsed(),
                                message_id: message_id.to_string(),
                            };
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "ack poll failed; polling again");
                }
            }
            if Instant::now() + Duration::from_millis(1) >= deadline {
                return Attempt {
                    verdict: Verdict::Retriable,
                    status: "ack-timeout".into(),
                    excerpt: format!(
                        "not acknowledged as indexed within {:?}",
                        self.config.ack_timeout
                    ),
                    retry_after: None,
                    latency: started.elapsed(),
                    message_id: message_id.to_string(),
                };
            }
        }
    }
}

/// Whether `{"acks":{"<id>":true}}` says `ack_id` is indexed.
pub fn acknowledged(body: &[u8], ack_id: u64) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("acks")?.get(ack_id.to_string())?.as_bool())
        .unwrap_or(false)
}
