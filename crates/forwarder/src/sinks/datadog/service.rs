//! Sends Datadog batches.

use std::time::Instant;

use bytes::Bytes;

use crate::event::ForwardEvent;
use crate::signing::Signer;
use crate::sinks::{Attempt, BatchLimits, excerpt, retry_after, transport_failure};

use super::config::DatadogConfig;
use super::{classifier, encoder, request};

#[derive(Debug)]
pub struct DatadogSink {
    config: DatadogConfig,
    signer: Signer,
    client: reqwest::Client,
}

impl DatadogSink {
    pub fn new(config: DatadogConfig, signer: Signer, client: reqwest::Client) -> Self {
        Self {
            config,
            signer,
            client,
        }
    }

    pub fn limits(&self) -> BatchLimits {
        self.config.limits
    }

    pub fn encode(&self, event: &ForwardEvent) -> Vec<u8> {
        encoder::encode(&self.config, event)
    }

    pub async fn send(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        let body = Bytes::from(encoder::frame(parts, self.config.gzip_level));
        let started = Instant::now();
        let response = request::logs(&self.client, &self.config, &self.signer, message_id, body)
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
        Attempt {
            verdict: classifier::classify(status),
            status: status.to_string(),
            excerpt: excerpt(&bytes),
            retry_after,
            latency: started.elapsed(),
            message_id: message_id.to_string(),
        }
    }
}
