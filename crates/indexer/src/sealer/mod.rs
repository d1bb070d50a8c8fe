//! Seals the log: for every organization, a chain of signed window digests over the leaves of
//! the events the indexer wrote (the format is docs/integrity.md).
//!
//! # Protocol
//! * **Leaves** are hashed by the writer while it streams each row (the exact bytes it
//!   stores) and handed here when their batch is written, per partition, in offset order.
//! * **Windows** are cut per owned partition every `integrity.window_secs`: a window covers
//!   the partition's offsets `[boundary, end)` where `end` follows the last written batch.
//!   Every organization with a chain on the partition gets a digest, also when it had no
//!   events (so a cut-off tail shows), and an organization's first event starts its chain.
//! * **Order of a seal**: digests and leaves into ClickHouse, digests onto the Kafka topic
//!   (acks=all, the anchor outside the store), then the partition's boundary moves and offsets
//!   are committed up to it — never beyond. A seal runs in three steps so that the writer
//!   never waits for it: [`Sealer::begin`] closes the windows and signs their digests (under
//!   the chains' lock, no IO), [`SealJob::run`] stores and publishes them (a task of its own,
//!   while the writer goes on writing the next batches), [`Sealer::finish`] moves the
//!   boundaries. One seal runs at a time; the writer waits for it only when twice
//!   `integrity.max_open_leaves` leaves are waiting (bounded memory when sealing is slow). A crash re-reads everything after the boundary:
//!   the rows are inserted again (the table collapses them) and hashed into the same window,
//!   so the digests are the same whatever fails. A seal that failed half-way is retried with
//!   the same signed digests.
//! * **A new owner** of a partition resumes every chain from the newest digests in ClickHouse
//!   and publishes them again (a crash may have happened before they reached Kafka); leaves
//!   below the boundary are ignored (already sealed). A revoke waits for a seal in progress
//!   ([`Shared::begin_seal`]), so two owners never seal the same window.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use audit_core::integrity::{IntegrityKey, Signer};
use audit_core::system::SystemEvent;
use audit_integrity::{Hash, Note, SignedDigest, SigningKeys, root};
use audit_settings::{INTEGRITY_SEALED, PlansConfig, SettingsStore};
use audit_store::{DigestRow, RowKey, SealedLeaf, Store, WindowInsert};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use time::OffsetDateTime;

use crate::shared::Shared;

/// A leaf of a written row, waiting for its window to be sealed.
#[derive(Debug, Clone)]
pub struct OpenLeaf {
    pub offset: i64,
    pub leaf: Hash,
    pub key: RowKey,
}

impl OpenLeaf {
    /// `leaf`: [`audit_integrity::leaf`] of the row's JSON.
    pub fn new(offset: i64, leaf: Hash, key: RowKey) -> Self {
        Self { offset, leaf, key }
    }

    /// The leaf as its window stores it.
    fn sealed(&self) -> SealedLeaf {
        SealedLeaf {
            leaf: self.leaf,
            id: self.key.id,
            occurred_at: self.key.occurred_at,
        }
    }
}

/// Leaves of one written batch: per partition, per organization, in offset order.
pub type BatchLeaves = BTreeMap<i32, HashMap<String, Vec<OpenLeaf>>>;

#[derive(Debug, Clone)]
struct Head {
    seq: u64,
    hash: Hash,
}

/// One partition's chains.
#[derive(Debug, Default)]
struct Chains {
    /// Offsets below are sealed; `None` until the first seal of a partition without chains.
    boundary: Option<i64>,
    /// Where the first window of a partition without chains starts.
    first_offset: Option<i64>,
    /// The offset after the last written batch.
    written_to: Option<i64>,
    heads: HashMap<String, Head>,
    /// Leaves at or above the boundary, per organization, as their window will store them.
    open: HashMap<String, Vec<SealedLeaf>>,
    /// A seal signed but not yet stored and published: retried as it is.
    pending: Option<Arc<Seal>>,
}

/// A partition's closed window, signed: stored and published as it is, retried as it is.
#[derive(Debug)]
struct Seal {
    end: i64,
    sealed_at: OffsetDateTime,
    digests: Vec<DigestRow>,
    /// Each digest's leaves (same order), in offset order.
    leaves: Vec<Vec<SealedLeaf>>,
    heads: Vec<(String, Head)>,
}

impl Seal {
    /// One row per window, borrowing from the seal.
    fn window_rows(&self) -> impl Iterator<Item = WindowInsert<'_>> + Send {
        self.digests
            .iter()
            .zip(&self.leaves)
            .map(move |(digest, leaves)| {
                WindowInsert::new(
                    &digest.org_id,
                    digest.seq,
                    &digest.hash,
                    self.sealed_at,
                    leaves,
                )
            })
    }

    fn leaf_count(&self) -> usize {
        self.leaves.iter().map(Vec::len).sum()
    }
}

/// Where digests go besides ClickHouse.
pub struct Anchors {
    /// The anchor topic (`audit.integrity.v1`).
    pub digests_topic: String,
    /// The events topic: an `audit_log.integrity.sealed` event per digest of an organization
    /// with a destination that asks for digests (`filters.integrity_digests`), so its SIEM
    /// holds the chain too.
    pub events_topic: String,
    /// Tags those events as the platform's own (no producer can write them).
    pub tag_key: IntegrityKey,
}

/// What storing and publishing a seal needs: cheap to clone into the sealing task.
#[derive(Clone)]
pub struct SealIo {
    pub store: Store,
    pub producer: FutureProducer,
    pub anchors: Arc<Anchors>,
    pub settings: SettingsStore,
}

pub struct Sealer {
    io: SealIo,
    keys: SigningKeys,
    plans: PlansConfig,
    shared: Arc<Shared>,
    partitions: BTreeMap<i32, Chains>,
    /// Leaves waiting for their window, all partitions together.
    open_leaves: usize,
}

/// The windows closed by [`Sealer::begin`], to store and publish without the chains' lock.
pub struct SealJob {
    io: SealIo,
    seals: Vec<(i32, Arc<Seal>)>,
}

/// What [`SealJob::run`] did, per partition: for [`Sealer::finish`].
pub struct SealOutcome {
    results: Vec<(i32, Arc<Seal>, Result<(), SealError>)>,
}

/// Why a seal was not stored and published (it is retried with the same digests).
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("storing digests: {0}")]
    Store(audit_store::Error),
    #[error("{0}")]
    Encode(serde_json::Error),
    #[error("publishing digests: {0}")]
    Publish(KafkaError),
    #[error("recording digests for destinations: {0}")]
    RecordForDestinations(KafkaError),
}

impl Sealer {
    pub fn new(io: SealIo, keys: SigningKeys, plans: PlansConfig, shared: Arc<Shared>) -> Self {
        Self {
            io,
            keys,
            plans,
            shared,
            partitions: BTreeMap::new(),
            open_leaves: 0,
        }
    }

    /// Leaves waiting for their window, all partitions together.
    pub fn open_leaves(&self) -> usize {
        self.open_leaves
    }

    /// Takes the leaves of a written batch (`ranges`: first and last offset per partition).
    pub async fn batch_written(
        &mut self,
        ranges: &BTreeMap<i32, (i64, i64)>,
        leaves: BatchLeaves,
    ) -> audit_store::Result<()> {
        for (partition, (first, _)) in ranges {
            self.load(*partition, *first).await?;
        }
        let mut leaves = leaves;
        for (partition, (_, last)) in ranges {
            let Some(chains) = self.partitions.get_mut(partition) else {
                continue;
            };
            chains.written_to = Some(chains.written_to.map_or(last + 1, |to| to.max(last + 1)));
            let boundary = chains.boundary.unwrap_or(i64::MIN);
            for (org, batch) in leaves.remove(partition).unwrap_or_default() {
                // Re-read after a crash: already in a sealed window.
                let open = chains.open.entry(org).or_default();
                let before = open.len();
                open.extend(
                    batch
                        .iter()
                        .filter(|leaf| leaf.offset >= boundary)
                        .map(OpenLeaf::sealed),
                );
                self.open_leaves += open.len() - before;
            }
        }
        Ok(())
    }

    /// Resumes a partition's chains from the newest digests in ClickHouse (first use only).
    async fn load(&mut self, partition: i32, first_offset: i64) -> audit_store::Result<()> {
        if self.partitions.contains_key(&partition) {
            return Ok(());
        }
        let newest = self.io.store.chain_heads(partition).await?;
        let mut chains = Chains {
            first_offset: Some(first_offset),
            ..Chains::default()
        };
        for digest in &newest {
            let Ok(hash) = audit_integrity::note::parse_hash(&digest.hash) else {
                tracing::error!(org = %digest.org_id, seq = digest.seq, "stored digest has a malformed hash; its chain restarts from it regardless");
                continue;
            };
            chains.boundary = Some(
                chains
                    .boundary
                    .map_or(digest.end_offset, |b| b.max(digest.end_offset)),
            );
            chains.heads.insert(
                digest.org_id.clone(),
                Head {
                    seq: digest.seq,
                    hash,
                },
            );
        }
        // A crash may have come between ClickHouse and Kafka: publish the heads again
        // (duplicates of a digest are identical, readers keep one).
        if let Err(error) = self.io.publish(&newest).await {
            tracing::warn!(%error, partition, "could not republish chain heads; they go out with the next seal");
        }
        tracing::info!(partition, chains = chains.heads.len(), boundary = ?chains.boundary, "integrity chains resumed");
        self.partitions.insert(partition, chains);
        Ok(())
    }

    /// Seals every owned partition at once (begin, run, finish); returns the new boundaries
    /// to commit. For a seal nothing else runs beside (the last one, at shutdown).
    pub async fn seal(&mut self, now: OffsetDateTime) -> Vec<(i32, i64)> {
        let job = self.begin(now);
        let outcome = job.run().await;
        self.finish(outcome)
    }

    /// Closes the window of every owned partition and signs its digests (no IO). Until
    /// [`Sealer::finish`] (or [`Sealer::abandon`]), a revoke waits ([`Shared::begin_seal`]).
    pub fn begin(&mut self, now: OffsetDateTime) -> SealJob {
        let owned = self.shared.begin_seal();
        // Chains of partitions given away: their open leaves are re-read by the next owner.
        self.partitions
            .retain(|partition, _| owned.contains(partition));
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        let seals = partitions
            .into_iter()
            .filter_map(|partition| Some((partition, self.prepare(partition, now)?)))
            .collect();
        self.open_leaves = self
            .partitions
            .values()
            .flat_map(|chains| chains.open.values())
            .map(Vec::len)
            .sum();
        SealJob {
            io: self.io.clone(),
            seals,
        }
    }

    /// Moves the boundaries of the partitions whose seal was stored and published; a
    /// partition that failed keeps its pending seal for the next attempt. Returns the new
    /// boundaries to commit.
    pub fn finish(&mut self, outcome: SealOutcome) -> Vec<(i32, i64)> {
        let mut sealed = Vec::new();
        for (partition, seal, result) in outcome.results {
            if let Err(error) = result {
                metrics::counter!("indexer_seal_failures_total").increment(1);
                tracing::warn!(%error, partition, "sealing failed; retried with the same digests");
                continue;
            }
            let Some(chains) = self.partitions.get_mut(&partition) else {
                continue;
            };
            chains.pending = None;
            chains.boundary = Some(seal.end);
            chains.heads.extend(seal.heads.iter().cloned());
            metrics::counter!("indexer_digests_total").increment(seal.digests.len() as u64);
            metrics::counter!("indexer_sealed_leaves_total").increment(seal.leaf_count() as u64);
            sealed.push((partition, seal.end));
        }
        self.shared.end_seal(&sealed);
        sealed
    }

    /// A sealing task ended without an outcome (it panicked): the pending seals stay and are
    /// retried by the next seal; a revoke no longer waits.
    pub fn abandon(&mut self) {
        self.shared.end_seal(&[]);
    }

    /// The pending seal of a partition, or a new one over its open window.
    fn prepare(&mut self, partition: i32, now: OffsetDateTime) -> Option<Arc<Seal>> {
        let chains = self.partitions.get_mut(&partition)?;
        if let Some(pending) = &chains.pending {
            return Some(pending.clone());
        }
        let start = chains.boundary.or(chains.first_offset)?;
        let end = chains.written_to.unwrap_or(start).max(start);
        let mut orgs: Vec<String> = chains
            .heads
            .keys()
            .chain(chains.open.keys())
            .cloned()
            .collect();
        orgs.sort_unstable();
        orgs.dedup();
        if orgs.is_empty() {
            return None;
        }
        let settings = self.io.settings.view();
        let key = self.keys.current();
        let mut seal = Seal {
            end,
            sealed_at: now,
            digests: Vec::with_capacity(orgs.len()),
            leaves: Vec::with_capacity(orgs.len()),
            heads: Vec::with_capacity(orgs.len()),
        };
        for org in orgs {
            let leaves = chains.open.remove(&org).unwrap_or_default();
            let hashes: Vec<Hash> = leaves.iter().map(|leaf| leaf.leaf).collect();
            let head = chains.heads.get(&org);
            let note = Note {
                seq: head.map_or(0, |head| head.seq + 1),
                prev: head.map_or([0; 32], |head| head.hash),
                partition,
                offsets: (start, end),
                sealed_at: now,
                count: hashes.len() as u64,
                root: root(&hashes),
                retention_days: self
                    .plans
                    .retention_days(settings.org(&org).map(AsRef::as_ref)),
                org_id: org.clone(),
            };
            let signed = SignedDigest::sign(&note, key);
            let hash = audit_integrity::digest_hash(&signed.note);
            seal.leaves.push(leaves);
            seal.digests.push(DigestRow {
                org_id: org.clone(),
                seq: note.seq,
                partition,
                first_offset: start,
                end_offset: end,
                sealed_at: now,
                count: note.count,
                retention_days: note.retention_days,
                hash: signed.hash.clone(),
                note: signed.note,
                key_id: signed.key_id,
                signature: signed.signature,
            });
            seal.heads.push((
                org,
                Head {
                    seq: note.seq,
                    hash,
                },
            ));
        }
        let seal = Arc::new(seal);
        chains.pending = Some(seal.clone());
        Some(seal)
    }
}

impl SealJob {
    /// Stores and publishes every closed window (partitions one after another).
    pub async fn run(self) -> SealOutcome {
        let mut results = Vec::with_capacity(self.seals.len());
        for (partition, seal) in self.seals {
            let result = self.io.store_and_publish(&seal).await;
            results.push((partition, seal, result));
        }
        SealOutcome { results }
    }
}

impl SealIo {
    async fn store_and_publish(&self, seal: &Seal) -> Result<(), SealError> {
        self.store
            .insert_seal(&seal.digests, seal.window_rows())
            .await
            .map_err(SealError::Store)?;
        self.publish(&seal.digests).await?;
        self.send_to_destinations(&seal.digests).await
    }

    /// Produces digests onto the anchor topic (key: the organization) and waits for Kafka.
    async fn publish(&self, digests: &[DigestRow]) -> Result<(), SealError> {
        let mut records = Vec::with_capacity(digests.len());
        for digest in digests {
            let published = SignedDigest {
                org_id: digest.org_id.clone(),
                seq: digest.seq,
                note: digest.note.clone(),
                key_id: digest.key_id.clone(),
                signature: digest.signature.clone(),
                hash: digest.hash.clone(),
            };
            let payload = serde_json::to_vec(&published).map_err(SealError::Encode)?;
            records.push((digest.org_id.clone(), payload, None));
        }
        self.produce_all(&self.anchors.digests_topic, records)
            .await
            .map_err(SealError::Publish)
    }

    /// Records each digest of an organization that asked for them as an
    /// `audit_log.integrity.sealed` event (the forwarder sends it to those destinations only).
    /// Its id derives from (organization, seq), so a seal retried after a failure writes the
    /// same event again, which the table and receivers collapse.
    async fn send_to_destinations(&self, digests: &[DigestRow]) -> Result<(), SealError> {
        let settings = self.settings.view();
        let wanted = |org: &str| {
            settings.org(org).is_some_and(|org| {
                org.destinations
                    .iter()
                    .any(|destination| destination.enabled && destination.filters.integrity_digests)
            })
        };
        let records = digests
            .iter()
            .filter(|digest| wanted(&digest.org_id))
            .map(|digest| {
                let json = sealed_event(digest).to_json();
                let tag = self.anchors.tag_key.tag(Signer::System, &json);
                let headers = audit_kafka::event_headers(audit_core::system::SOURCE, Some(&tag));
                (digest.org_id.clone(), json, Some(headers))
            })
            .collect();
        self.produce_all(&self.anchors.events_topic, records)
            .await
            .map_err(SealError::RecordForDestinations)
    }

    /// Produces `(key, payload, headers)` records onto `topic`, all at once, and waits for
    /// every acknowledgement.
    async fn produce_all(
        &self,
        topic: &str,
        records: Vec<(String, Vec<u8>, Option<OwnedHeaders>)>,
    ) -> Result<(), KafkaError> {
        let deliveries = records.into_iter().map(|(key, payload, headers)| {
            let producer = self.producer.clone();
            async move {
                let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
                    .key(key.as_str())
                    .payload(payload.as_slice());
                if let Some(headers) = headers {
                    record = record.headers(headers);
                }
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(error, _)| error)
            }
        });
        futures::future::join_all(deliveries)
            .await
            .into_iter()
            .collect()
    }
}

/// The `audit_log.integrity.sealed` event of one digest: the signed note and its signature in
/// metadata (a verifier needs nothing else), occurred when the window was sealed.
pub fn sealed_event(digest: &DigestRow) -> audit_core::AuditEvent {
    let actor = audit_core::system::indexer_actor();
    // The note is signed: a verifier needs it whole. A note (≈ 400 characters with the
    // longest organization id) is far below the builder's metadata limit.
    let mut event = SystemEvent::new(&digest.org_id, INTEGRITY_SEALED, actor)
        .target("integrity_window", &digest.seq.to_string(), None)
        .meta("seq", digest.seq.to_string())
        .meta("note", digest.note.clone())
        .meta("key_id", digest.key_id.clone())
        .meta("signature", digest.signature.clone())
        .meta("hash", digest.hash.clone())
        .build(digest.sealed_at);
    event.id = sealed_event_id(&digest.org_id, digest.seq);
    event
}

/// A UUID (version 8, RFC 9562) from SHA-256 of the organization and the window's seq.
fn sealed_event_id(org_id: &str, seq: u64) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let hash = Sha256::new()
        .chain_update(b"audit_log.integrity.sealed\0")
        .chain_update(org_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(seq.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests;
