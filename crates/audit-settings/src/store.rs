//! The settings store: follows the compacted settings topic and serves an in-memory view.
//!
//! Protocol (every instance of every service runs one):
//! 1. At start, read the topic's end offset, assign partition 0 from the beginning, and apply
//!    records until that end is reached: only then is the store *caught up* (services gate
//!    `/readyz` on it, so a restarted instance never serves an older view).
//! 2. Keep following: each record is judged by the rules of [`crate::ledger`] — authenticated
//!    ([`crate::auth`]), continuing its key's revision chain — and, when accepted, replaces the
//!    value at its key (a tombstone removes a health record). Refused records change nothing
//!    and are counted (`settings_records_refused_total{reason}`) and logged.
//!    Views are immutable snapshots (`Arc<SettingsView>`) published through a `watch` channel,
//!    so readers never lock and subscribers (retention applier, forwarder router) wake on change.
//! 3. Writes produce the whole record, signed (acks=all), and then wait until this store has
//!    read that offset back, so the caller reads its own write. Records with a revision are
//!    compare-and-set: a write is refused before it is sent when the key has moved past the
//!    revision it was derived from, and reports [`Error::Conflict`] when a concurrent writer's
//!    record took the revision first (every reader then ignores the loser identically).
//! 4. Repairs ([`SettingsStore::spawn_repairs`], run by the gateway): when the last record of
//!    a key is one readers refused (forged, or a losing concurrent write), compaction would
//!    keep it and drop the valid one; the applied record is written again so it stays last.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use audit_kafka::{KafkaConfig, ProducerTuning, StatsContext, TopicsConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::auth::{self, SettingsAuth};
use crate::error::{Error, Result};
use crate::ledger::{self, Applied, Decision, Refusal};
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
    /// The record each key's state comes from.
    pub applied: HashMap<String, Applied>,
    /// Keys whose last record on the topic was refused (see [`crate::ledger`]): compaction
    /// would keep that one, so the applied record must be written again.
    pub needs_repair: BTreeSet<String>,
    /// Offsets of the most recent authenticated records that were refused (at most
    /// [`REFUSED_KEPT`]): how a writer learns that its compare-and-set lost.
    pub refused: BTreeSet<i64>,
    /// Offset of the last applied record (-1 before any).
    pub offset: i64,
    /// Whether the initial read reached the end of the topic.
    pub caught_up: bool,
}

/// How many refused offsets a view remembers.
pub const REFUSED_KEPT: usize = 1024;

impl SettingsView {
    pub fn org(&self, org_id: &str) -> Option<&Arc<OrgSettings>> {
        self.orgs.get(org_id)
    }

    /// Judges one message of the topic and applies it if accepted.
    fn accept(
        &mut self,
        auth: &SettingsAuth,
        key: &str,
        payload: Option<&[u8]>,
        tag: Option<&[u8]>,
        offset: i64,
    ) {
        let authenticated = auth.verify(key, payload, tag);
        let record = match (&authenticated, payload) {
            (Ok(()), Some(payload)) => Some(serde_json::from_slice::<SettingsRecord>(payload)),
            _ => None,
        };
        let decision = ledger::decide(
            key,
            authenticated,
            payload,
            record.as_ref(),
            self.applied.get(key),
        );
        match decision {
            Decision::Apply { skipped } => {
                if let Some((applied, got)) = skipped {
                    metrics::counter!("settings_revision_anomalies_total", "kind" => "skipped")
                        .increment(1);
                    tracing::warn!(
                        key,
                        offset,
                        applied,
                        got,
                        "settings record skips revisions (this reader missed one); applied"
                    );
                }
                let (Some(Ok(record)), Some(payload)) = (record, payload) else {
                    return;
                };
                self.applied.insert(
                    key.to_string(),
                    Applied {
                        offset,
                        revision: record.revision(),
                        payload: payload.into(),
                    },
                );
                self.needs_repair.remove(key);
                self.store(record);
            }
            Decision::Remove => {
                self.applied.remove(key);
                self.needs_repair.remove(key);
                self.remove(key);
            }
            Decision::Duplicate => {
                if let Some(applied) = self.applied.get_mut(key) {
                    applied.offset = offset;
                }
                self.needs_repair.remove(key);
            }
            Decision::Refuse(refusal) => self.refuse(key, offset, &refusal),
        }
    }

    fn refuse(&mut self, key: &str, offset: i64, refusal: &Refusal) {
        metrics::counter!("settings_records_refused_total", "reason" => refusal.label())
            .increment(1);
        match refusal {
            Refusal::Repeated { .. } => {
                metrics::counter!("settings_revision_anomalies_total", "kind" => "repeated")
                    .increment(1);
                tracing::warn!(key, offset, reason = %refusal, "settings record not applied");
            }
            _ => tracing::error!(key, offset, reason = %refusal, "settings record ignored"),
        }
        if !matches!(refusal, Refusal::Unauthenticated(_)) {
            self.refused.insert(offset);
            while self.refused.len() > REFUSED_KEPT {
                self.refused.pop_first();
            }
        }
        if self.applied.contains_key(key) {
            self.needs_repair.insert(key.to_string());
        }
    }

    fn store(&mut self, record: SettingsRecord) {
        match record {
            SettingsRecord::Org(org) => {
                self.orgs.insert(org.org_id.clone(), Arc::new(org));
            }
            SettingsRecord::ProducerKey(key) => {
                self.producer_keys.insert(key.key_id.clone(), Arc::new(key));
            }
            SettingsRecord::ApiToken(token) => {
                self.api_tokens
                    .insert(token.token_id.clone(), Arc::new(token));
            }
            SettingsRecord::DestinationHealth(health) => {
                let id = format!("{}/{}", health.destination_id, health.instance);
                self.health.insert(id, Arc::new(health));
            }
        }
    }

    fn remove(&mut self, key: &str) {
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

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct SettingsStore {
    inner: Arc<Inner>,
}

struct Inner {
    topic: String,
    auth: SettingsAuth,
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
    /// Starts following the settings topic of `topics`, authenticating its records with its
    /// `settings_keys`. `client_name` labels this instance's Kafka clients.
    pub fn start_for(
        kafka: &KafkaConfig,
        topics: &TopicsConfig,
        client_name: &str,
    ) -> Result<Self> {
        let auth = SettingsAuth::from_config(&topics.settings_keys, "topics.settings_keys")?;
        Self::start(kafka, &topics.settings, auth, client_name)
    }

    /// Starts following `topic`, authenticating its records with `auth`. `client_name`
    /// labels this instance's Kafka clients.
    pub fn start(
        kafka: &KafkaConfig,
        topic: &str,
        auth: SettingsAuth,
        client_name: &str,
    ) -> Result<Self> {
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
            auth: auth.clone(),
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
                auth,
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

    /// Writes a record and waits until this store has read it back (read-your-writes).
    ///
    /// Records with a revision (all but destination health) are compare-and-set: `record`
    /// must be the successor (revision + 1) of what this store holds for its key. When the
    /// key has already moved on, nothing is written and the answer is [`Error::Conflict`];
    /// when a concurrent writer's record took the revision first, every reader ignores this
    /// one and the answer is [`Error::Conflict`] too. The caller re-reads and decides.
    pub async fn put(&self, record: &SettingsRecord) -> Result<Arc<SettingsView>> {
        let key = record.key();
        if let Some(revision) = record.revision()
            && let Some(current) = self.view().applied.get(&key).and_then(|a| a.revision)
            && revision != current + 1
        {
            return Err(Error::Conflict(format!(
                "`{key}` is at revision {current}; this change was made from revision {}",
                revision.saturating_sub(1)
            )));
        }
        let payload =
            serde_json::to_vec(record).map_err(|error| Error::Store(error.to_string()))?;
        let (offset, view) = self.write(&key, Some(&payload)).await?;
        if view.refused.contains(&offset) {
            return Err(Error::Conflict(format!(
                "a concurrent change of `{key}` took revision {} first",
                record.revision().unwrap_or_default()
            )));
        }
        Ok(view)
    }

    /// Deletes a key (a signed tombstone; only health records may be deleted) and waits until
    /// this store has read it back.
    pub async fn delete(&self, key: &str) -> Result<Arc<SettingsView>> {
        if !crate::model::deletable(key) {
            return Err(Error::Store(format!("`{key}` is never deleted")));
        }
        self.write(key, None).await.map(|(_, view)| view)
    }

    /// Produces `key` = `payload` with its `settings-auth` tag; returns its offset and the
    /// view once this store has read it.
    async fn write(&self, key: &str, payload: Option<&[u8]>) -> Result<(i64, Arc<SettingsView>)> {
        let producer = self
            .inner
            .producer
            .as_ref()
            .ok_or_else(|| Error::Store("read-only settings store".into()))?;
        let tag = self.inner.auth.sign(key, payload);
        let headers = OwnedHeaders::new().insert(Header {
            key: auth::HEADER,
            value: Some(tag.as_str()),
        });
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(&self.inner.topic)
            .key(key)
            .headers(headers);
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
            Ok(Ok(view)) => Ok((offset, view.clone())),
            _ => Err(Error::Store(format!(
                "wrote settings offset {offset} but did not read it back in time"
            ))),
        }
    }

    /// Keeps every key's applied record last on the topic (gateway): whenever a key's last
    /// record was refused — forged, or a concurrent write that lost — the applied record is
    /// written again (readers see it as a duplicate), so compaction cannot drop it in favour
    /// of the refused one. Runs until `stop` resolves.
    pub fn spawn_repairs(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            tokio::pin!(stop);
            let mut receiver = store.subscribe();
            loop {
                let pending: Vec<(String, Arc<[u8]>)> = {
                    let view = receiver.borrow_and_update();
                    if view.caught_up {
                        view.needs_repair
                            .iter()
                            .filter_map(|key| {
                                view.applied
                                    .get(key)
                                    .map(|applied| (key.clone(), applied.payload.clone()))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    }
                };
                for (key, payload) in pending {
                    metrics::counter!("settings_repairs_total").increment(1);
                    tracing::warn!(
                        key,
                        "re-writing the applied settings record after a refused one"
                    );
                    if let Err(error) = store.write(&key, Some(&payload)).await {
                        tracing::warn!(key, %error, "settings repair failed; retrying");
                    }
                }
                tokio::select! {
                    () = &mut stop => return,
                    changed = receiver.changed() => if changed.is_err() { return },
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        })
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
    auth: SettingsAuth,
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
                        let tag = message.headers().and_then(|headers| {
                            headers
                                .iter()
                                .find(|header| header.key == auth::HEADER)
                                .and_then(|header| header.value)
                        });
                        working.accept(&self.auth, key, message.payload(), tag, message.offset());
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
