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
//!   are committed up to it — never beyond. A crash re-reads everything after the boundary:
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
use audit_integrity::{Hash, Note, SignedDigest, SigningKeys, leaf, root};
use audit_settings::{INTEGRITY_SEALED, PlansConfig, SettingsStore};
use audit_store::{DigestRow, LeafRow, RowKey, Store};
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
    pub fn new(offset: i64, event_bytes: &[u8], key: RowKey) -> Self {
        Self {
            offset,
            leaf: leaf(event_bytes),
            key,
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
    open: HashMap<String, Vec<OpenLeaf>>,
    /// A seal signed but not yet stored and published: retried as it is.
    pending: Option<Seal>,
}

#[derive(Debug, Clone)]
struct Seal {
    end: i64,
    digests: Vec<DigestRow>,
    leaves: Vec<LeafRow>,
    heads: Vec<(String, Head)>,
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

pub struct Sealer {
    pub store: Store,
    pub producer: FutureProducer,
    pub anchors: Anchors,
    pub keys: SigningKeys,
    pub plans: PlansConfig,
    pub settings: SettingsStore,
    pub shared: Arc<Shared>,
    partitions: BTreeMap<i32, Chains>,
}

impl Sealer {
    pub fn new(
        store: Store,
        producer: FutureProducer,
        anchors: Anchors,
        keys: SigningKeys,
        plans: PlansConfig,
        settings: SettingsStore,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            store,
            producer,
            anchors,
            keys,
            plans,
            settings,
            shared,
            partitions: BTreeMap::new(),
        }
    }

    /// Leaves waiting for their window, all partitions together.
    pub fn open_leaves(&self) -> usize {
        self.partitions
            .values()
            .flat_map(|chains| chains.open.values())
            .map(Vec::len)
            .sum()
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
                let fresh = batch.into_iter().filter(|leaf| leaf.offset >= boundary);
                chains.open.entry(org).or_default().extend(fresh);
            }
        }
        Ok(())
    }

    /// Resumes a partition's chains from the newest digests in ClickHouse (first use only).
    async fn load(&mut self, partition: i32, first_offset: i64) -> audit_store::Result<()> {
        if self.partitions.contains_key(&partition) {
            return Ok(());
        }
        let newest = self.store.chain_heads(partition).await?;
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
        if let Err(error) = self.publish(&newest).await {
            tracing::warn!(%error, partition, "could not republish chain heads; they go out with the next seal");
        }
        tracing::info!(partition, chains = chains.heads.len(), boundary = ?chains.boundary, "integrity chains resumed");
        self.partitions.insert(partition, chains);
        Ok(())
    }

    /// Seals every owned partition; returns the new boundaries to commit. A partition that
    /// fails keeps its pending seal for the next attempt.
    pub async fn seal(&mut self, now: OffsetDateTime) -> Vec<(i32, i64)> {
        let owned = self.shared.begin_seal();
        // Chains of partitions given away: their open leaves are re-read by the next owner.
        self.partitions
            .retain(|partition, _| owned.contains(partition));
        let mut sealed = Vec::new();
        let partitions: Vec<i32> = self.partitions.keys().copied().collect();
        for partition in partitions {
            match self.seal_partition(partition, now).await {
                Ok(Some(end)) => sealed.push((partition, end)),
                Ok(None) => {}
                Err(error) => {
                    metrics::counter!("indexer_seal_failures_total").increment(1);
                    tracing::warn!(%error, partition, "sealing failed; retried with the same digests");
                }
            }
        }
        self.shared.end_seal(&sealed);
        sealed
    }

    async fn seal_partition(
        &mut self,
        partition: i32,
        now: OffsetDateTime,
    ) -> Result<Option<i64>, String> {
        let seal = match self.prepare(partition, now) {
            Some(seal) => seal,
            None => return Ok(None),
        };
        self.store
            .insert_seal(&seal.digests, &seal.leaves)
            .await
            .map_err(|error| format!("storing digests: {error}"))?;
        self.publish(&seal.digests).await?;
        self.send_to_destinations(&seal.digests).await?;
        let Some(chains) = self.partitions.get_mut(&partition) else {
            return Ok(None);
        };
        chains.pending = None;
        chains.boundary = Some(seal.end);
        chains.heads.extend(seal.heads);
        metrics::counter!("indexer_digests_total").increment(seal.digests.len() as u64);
        metrics::counter!("indexer_sealed_leaves_total").increment(seal.leaves.len() as u64);
        Ok(Some(seal.end))
    }

    /// The pending seal of a partition, or a new one over its open window.
    fn prepare(&mut self, partition: i32, now: OffsetDateTime) -> Option<Seal> {
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
        let settings = self.settings.view();
        let key = self.keys.current();
        let mut seal = Seal {
            end,
            digests: Vec::with_capacity(orgs.len()),
            leaves: Vec::new(),
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
            for (idx, open) in leaves.iter().enumerate() {
                seal.leaves.push(LeafRow {
                    org_id: org.clone(),
                    seq: note.seq,
                    idx: u32::try_from(idx).unwrap_or(u32::MAX),
                    digest_hash: signed.hash.clone(),
                    leaf: open.leaf,
                    id: open.key.id,
                    occurred_at: open.key.occurred_at,
                    sealed_at: now,
                });
            }
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
        chains.pending = Some(seal.clone());
        Some(seal)
    }

    /// Produces digests onto the anchor topic (key: the organization) and waits for Kafka.
    async fn publish(&self, digests: &[DigestRow]) -> Result<(), String> {
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
            let payload = serde_json::to_vec(&published).map_err(|error| error.to_string())?;
            records.push((digest.org_id.clone(), payload, None));
        }
        self.produce_all(&self.anchors.digests_topic, records)
            .await
            .map_err(|error| format!("publishing digests: {error}"))
    }

    /// Records each digest of an organization that asked for them as an
    /// `audit_log.integrity.sealed` event (the forwarder sends it to those destinations only).
    /// Its id derives from (organization, seq), so a seal retried after a failure writes the
    /// same event again, which the table and receivers collapse.
    async fn send_to_destinations(&self, digests: &[DigestRow]) -> Result<(), String> {
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
            .map_err(|error| format!("recording digests for destinations: {error}"))
    }

    /// Produces `(key, payload, headers)` records onto `topic`, all at once, and waits for
    /// every acknowledgement.
    async fn produce_all(
        &self,
        topic: &str,
        records: Vec<(String, Vec<u8>, Option<OwnedHeaders>)>,
    ) -> Result<(), String> {
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
                    .map_err(|(error, _)| error.to_string())
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
    let actor = audit_core::Actor {
        kind: audit_core::ActorType::System,
        id: "indexer".into(),
        name: Some("Audit log indexer".into()),
        email: None,
    };
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
