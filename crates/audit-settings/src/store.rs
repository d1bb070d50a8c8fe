//! The settings store: follows the compacted settings topic and serves an in-memory view.
//!
//! Protocol (every instance of every service runs one):
//! 1. At start, read the topic's end offset, assign partition 0 from the beginning, and apply
//!    records until that end is reached: only then is the store *caught up* (services gate
//!    `/readyz` on it, so a restarted instance never serves an older view).
//! 2. Keep following: each record replaces the value at its key; a tombstone removes it.
//!    Views are immutable snapshots (`Arc<SettingsView>`) published through a `watch` channel,
//!    so readers never lock and subscribers (retention applier, forwarder router) wake on change.
//! 3. Writes produce the whole record (acks=all) and then wait until this store has applied
//!    that offset, so the caller reads its own write.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use audit_kafka::{KafkaConfig, ProducerTuning, StatsContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::{
    ApiTokenRecord, DestinationHealth, OrgSettings, ProducerKeyRecord, SettingsRecord,
};

/// An immutable snapshot of all settings.
#[derive(Debug, Clone, Default)]
pub struct SettingsView {
    pub orgs: HashMap<String, Arc<OrgSettings>>,
    pub producer_keys: HashMap<String, Arc<ProducerKeyRecord>>,
    pub api_tokens: HashMap<String, Arc<ApiTokenRecord>>,
    /// Destination health by `destination_id/instance`.
    pub health: HashMap<String, Arc<DestinationHealth>>,
    /// Offset of the last applied record (-1 before any).
    pub offset: i64,
    /// Whether the initial read reached the end of the topic.
    pub caught_up: bool,
}

impl SettingsView {
    pub fn org(&self, org_id: &str) -> Option<&Arc<OrgSettings>> {
        self.orgs.get(org_id)
    }

    fn apply(&mut self, key: &str, record: Option<SettingsRecord>) {
        match record {
            Some(SettingsRecord::Org(org)) => {
                self.orgs.insert(org.org_id.clone(), Arc::new(org));
            }
            Some(SettingsRecord::ProducerKey(key)) => {
                self.producer_keys.insert(key.key_id.clone(), Arc::new(key));
            }
            Some(SettingsRecord::ApiToken(token)) => {
                self.api_tokens
                    .insert(token.token_id.clone(), Arc::new(token));
            }
            Some(SettingsRecord::DestinationHealth(health)) => {
                let id = format!("{}/{}", health.destination_id, health.instance);
                self.health.insert(id, Arc::new(health));
            }
            None => {
                let (kind, id) = key.split_once('/').unwrap_or((key, ""));
                match kind {
                    "org" => {
                        self.orgs.remove(id);
                    }
                    "producer_key" => {
                        self.producer_keys.remove(id);
                    }
                    "api_token" => {
                        self.api_tokens.remove(id);
                    }
                    "health" => {
                        self.health.remove(id);
                    }
                    _ => tracing::warn!(key, "tombstone for an unknown settings key"),
                }
            }
        }
    }
}

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct SettingsStore {
    inner: Arc<Inner>,
}

struct Inner {
    topic: String,
    view: watch::Sender<Arc<SettingsView>>,
    producer: Option<FutureProducer>,
    stop: Arc<AtomicBool>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SettingsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsStore")
            .field("topic", &self.inner.topic)
            .finish()
    }
}

impl SettingsStore {
    /// Starts following `topic`. `client_name` labels this instance's Kafka clients.
    pub fn start(kafka: &KafkaConfig, topic: &str, client_name: &str) -> Result<Self> {
        let mut consumer_config = kafka.client_config(&format!("{client_name}-settings"));
        consumer_config
            // No group: this reader assigns the partition itself and never commits.
            .set("group.id", format!("{client_name}-settings-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer<StatsContext> =
            consumer_config.create_with_context(StatsContext::new("settings"))?;
        let mut producer_config = kafka.client_config(&format!("{client_name}-settings-writer"));
        ProducerTuning {
            linger_ms: 0,
            ..ProducerTuning::default()
        }
        .apply(&mut producer_config);
        let producer: FutureProducer = producer_config.create()?;

        let (view, _) = watch::channel(Arc::new(SettingsView {
            offset: -1,
            ..SettingsView::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let follower = Follower {
            consumer,
            topic: topic.to_string(),
            view: view.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("settings-follower".into())
            .spawn(move || follower.run())
            .map_err(|error| Error::Store(format!("cannot start follower thread: {error}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                topic: topic.to_string(),
                view,
                producer: Some(producer),
                stop,
                thread: std::sync::Mutex::new(Some(thread)),
            }),
        })
    }

    /// The current snapshot.
    pub fn view(&self) -> Arc<SettingsView> {
        self.inner.view.borrow().clone()
    }

    pub fn is_caught_up(&self) -> bool {
        self.inner.view.borrow().caught_up
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<SettingsView>> {
        self.inner.view.subscribe()
    }

    /// Waits until the initial read reached the end of the topic.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<()> {
        let mut receiver = self.subscribe();
        let wait = receiver.wait_for(|view| view.caught_up);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Store("settings follower stopped".into())),
            Err(_) => Err(Error::Store(format!(
                "settings topic `{}` not read to its end within {timeout:?}",
                self.inner.topic
            ))),
        }
    }

    /// Writes a record and waits until this store has applied it.
    pub async fn put(&self, record: &SettingsRecord) -> Result<Arc<SettingsView>> {
        let payload =
            serde_json::to_vec(record).map_err(|error| Error::Store(error.to_string()))?;
        self.write(&record.key(), Some(&payload)).await
    }

    /// Deletes a key (tombstone) and waits until this store has applied it.
    pub async fn delete(&self, key: &str) -> Result<Arc<SettingsView>> {
        self.write(key, None).await
    }

    async fn write(&self, key: &str, payload: Option<&[u8]>) -> Result<Arc<SettingsView>> {
        let producer = self
            .inner
            .producer
            .as_ref()
            .ok_or_else(|| Error::Store("read-only settings store".into()))?;
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.inner.topic).key(key);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        let delivery = producer
            .send(record, Duration::from_secs(15))
            .await
            .map_err(|(error, _)| Error::Kafka(error))?;
        let offset = delivery.offset;
        let mut receiver = self.subscribe();
        let applied = receiver.wait_for(|view| view.offset >= offset);
        match tokio::time::timeout(Duration::from_secs(15), applied).await {
            Ok(Ok(view)) => Ok(view.clone()),
            _ => Err(Error::Store(format!(
                "wrote settings offset {offset} but did not read it back in time"
            ))),
        }
    }

    /// Stops the follower thread.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        let thread = self
            .inner
            .thread
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

struct Follower {
    consumer: BaseConsumer<StatsContext>,
    topic: String,
    view: watch::Sender<Arc<SettingsView>>,
    stop: Arc<AtomicBool>,
}

impl Follower {
    fn run(self) {
        let end_at_start = self.end_offset_at_start();
        if end_at_start.is_none() {
            return; // stopped before the broker answered
        }
        let end_at_start = end_at_start.unwrap_or(0);
        let mut partitions = TopicPartitionList::new();
        if let Err(error) = partitions.add_partition_offset(&self.topic, 0, Offset::Beginning) {
            tracing::error!(%error, "cannot build settings assignment");
            return;
        }
        if let Err(error) = self.consumer.assign(&partitions) {
            tracing::error!(%error, "cannot assign the settings topic");
            return;
        }
        drop(partitions);

        let mut working = SettingsView {
            offset: -1,
            caught_up: end_at_start == 0,
            ..SettingsView::default()
        };
        if working.caught_up {
            self.publish(&working);
        }
        let started = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let mut changed = false;
            // Drain what is available, then publish one snapshot (fast initial load).
            let mut timeout = Duration::from_millis(200);
            loop {
                match self.consumer.poll(timeout) {
                    None => break,
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        if !working.caught_up && working.offset + 1 >= end_at_start {
                            working.caught_up = true;
                            changed = true;
                            tracing::info!(
                                orgs = working.orgs.len(),
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "settings loaded"
                            );
                        }
                        break;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "settings follower poll error");
                        break;
                    }
                    Some(Ok(message)) => {
                        let key = message
                            .key()
                            .and_then(|k| std::str::from_utf8(k).ok())
                            .unwrap_or("");
                        match message
                            .payload()
                            .map(serde_json::from_slice::<SettingsRecord>)
                        {
                            None => working.apply(key, None),
                            Some(Ok(record)) => working.apply(key, Some(record)),
                            Some(Err(error)) => {
                                metrics::counter!("settings_records_invalid_total").increment(1);
                                tracing::error!(key, offset = message.offset(), %error, "unreadable settings record skipped");
                            }
                        }
                        working.offset = message.offset();
                        changed = true;
                        timeout = Duration::ZERO;
                    }
                }
            }
            if changed {
                self.publish(&working);
            }
        }
    }

    /// The end offset of the topic when we started (what "caught up" means); retried until
    /// the broker answers or we are stopped.
    fn end_offset_at_start(&self) -> Option<i64> {
        let mut delay = Duration::from_millis(200);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            match self
                .consumer
                .fetch_watermarks(&self.topic, 0, Duration::from_secs(5))
            {
                Ok((_, high)) => return Some(high),
                Err(error) => {
                    tracing::warn!(%error, topic = %self.topic, "settings topic not readable yet; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn publish(&self, working: &SettingsView) {
        metrics::gauge!("settings_offset").set(working.offset as f64);
        metrics::gauge!("settings_orgs").set(working.orgs.len() as f64);
        self.view.send_replace(Arc::new(working.clone()));
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
