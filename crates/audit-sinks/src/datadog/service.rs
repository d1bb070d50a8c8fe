//! Sends Datadog batches.

use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::event::ForwardEvent;
use crate::response::Sender;
use crate::{Attempt, BatchLimits, Payload, Sink};

use super::config::DatadogConfig;
use super::{classifier, encoder, request};

#[derive(Debug)]
pub struct DatadogSink {
    config: DatadogConfig,
    sender: Sender,
}

impl DatadogSink {
    pub fn new(config: DatadogConfig, sender: Sender) -> Self {
        Self { config, sender }
    }

    /// Sends one batch and classifies the answer.
    pub async fn deliver(&self, parts: &[&[u8]], message_id: &str) -> Attempt {
        let body = Bytes::from(encoder::frame(parts, self.config.gzip_level));
        let started = Instant::now();
        let request = request::logs(&self.sender, &self.config, message_id, body);
        let classify = classifier::classify;
        (self.sender)
            .status_exchange(request, started, message_id, classify)
            .await
    }
}

impl Sink for DatadogSink {
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
        let body = Bytes::from(encoder::frame(parts, self.config.gzip_level));
        Some(request::logs(&self.sender, &self.config, message_id, body))
    }
}
