//! The integrity tables (migration 0003, docs/integrity.md): window digests and their leaves.
//! Written by the indexer's sealer; read by the gateway's verification API and by a new owner
//! of a partition resuming the chains.

use clickhouse::Row;
use clickhouse::query::Query;
use serde::{Deserialize, Serialize, Serializer};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Result;
use crate::query::datetime_param;
use crate::store::Store;

/// One signed window digest.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct DigestRow {
    pub org_id: String,
    pub seq: u64,
    pub partition: i32,
    pub first_offset: i64,
    pub end_offset: i64,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub sealed_at: OffsetDateTime,
    pub count: u64,
    pub retention_days: u16,
    /// Hex SHA-256 of `note`.
    pub hash: String,
    pub note: String,
    pub key_id: String,
    /// Base64 Ed25519 signature over `note`.
    pub signature: String,
}

/// One leaf of a window.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LeafRow {
    pub org_id: String,
    pub seq: u64,
    pub idx: u32,
    /// Hex hash of the digest the leaf belongs to.
    pub digest_hash: String,
    pub leaf: [u8; 32],
    #[serde(with = "clickhouse::serde::uuid")]
    pub id: Uuid,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub sealed_at: OffsetDateTime,
}

/// A leaf of a sealed window as it is stored: its hash, and the event it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedLeaf {
    pub leaf: [u8; 32],
    pub id: Uuid,
    pub occurred_at: OffsetDateTime,
}

/// One window's leaves as they are inserted: one row per window, the leaves, their ids and
/// times as parallel arrays in leaf order (migration 0004). A row per leaf cost as much to
/// store as the event it covers; packed, a leaf is its 56 bytes in three columns.
#[derive(Debug, Clone, Copy, Row, Serialize)]
pub struct WindowInsert<'a> {
    pub org_id: &'a str,
    pub seq: u64,
    pub digest_hash: &'a str,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub sealed_at: OffsetDateTime,
    #[serde(serialize_with = "leaf_hashes")]
    leaves: &'a [SealedLeaf],
    #[serde(serialize_with = "leaf_ids")]
    ids: &'a [SealedLeaf],
    #[serde(serialize_with = "leaf_times")]
    occurred: &'a [SealedLeaf],
}

impl<'a> WindowInsert<'a> {
    pub fn new(
        org_id: &'a str,
        seq: u64,
        digest_hash: &'a str,
        sealed_at: OffsetDateTime,
        leaves: &'a [SealedLeaf],
    ) -> Self {
        Self {
            org_id,
            seq,
            digest_hash,
            sealed_at,
            leaves,
            ids: leaves,
            occurred: leaves,
        }
    }

    pub fn leaves(&self) -> &'a [SealedLeaf] {
        self.leaves
    }
}

// The three array columns of a window row, each serialized straight from the leaves (no
// per-window copies): serde serializes a field at a time, so each column field holds the same
// slice.
fn leaf_hashes<S: Serializer>(
    leaves: &&[SealedLeaf],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_seq(leaves.iter().map(|leaf| &leaf.leaf))
}

fn leaf_ids<S: Serializer>(
    leaves: &&[SealedLeaf],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    struct Id(Uuid);
    impl Serialize for Id {
        fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
            clickhouse::serde::uuid::serialize(&self.0, serializer)
        }
    }
    serializer.collect_seq(leaves.iter().map(|leaf| Id(leaf.id)))
}

fn leaf_times<S: Serializer>(
    leaves: &&[SealedLeaf],
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    struct Millis(OffsetDateTime);
    impl Serialize for Millis {
        fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
            clickhouse::serde::time::datetime64::millis::serialize(&self.0, serializer)
        }
    }
    serializer.collect_seq(leaves.iter().map(|leaf| Millis(leaf.occurred_at)))
}

const DIGEST_COLUMNS: &str = "org_id, seq, partition, first_offset, end_offset, sealed_at, count, \
     retention_days, hash, note, key_id, signature";

impl Store {
    /// Stores digests and their windows' leaves (idempotent: a replayed seal writes the same
    /// rows).
    pub async fn insert_seal<'a>(
        &self,
        digests: &[DigestRow],
        windows: impl IntoIterator<Item = WindowInsert<'a>> + Send,
    ) -> Result<()> {
        self.timed(async {
            if !digests.is_empty() {
                let mut insert = self
                    .client()
                    .insert::<DigestRow>("integrity_digests")
                    .await?;
                for digest in digests {
                    insert.write(digest).await?;
                }
                insert.end().await?;
            }
            let mut windows = windows.into_iter().peekable();
            if windows.peek().is_some() {
                let mut insert = self
                    .client()
                    .insert::<WindowInsert<'_>>("integrity_windows")
                    .await?;
                for window in windows {
                    insert.write(&window).await?;
                }
                insert.end().await?;
            }
            Ok(())
        })
        .await
    }

    /// The newest digest of every organization whose chain is on `partition`: where a new
    /// owner of the partition resumes.
    pub async fn chain_heads(&self, partition: i32) -> Result<Vec<DigestRow>> {
        let query = format!(
            "SELECT {DIGEST_COLUMNS} FROM integrity_digests FINAL WHERE partition = {{p:Int32}} \
             ORDER BY org_id, seq DESC LIMIT 1 BY org_id"
        );
        self.fetch_all_timed(self.client().query(&query).param("p", partition))
            .await
    }

    /// An organization's digests from the first one sealed at or after `from` to the newest,
    /// in `seq` order, at most `limit`.
    pub async fn digests_since(
        &self,
        org_id: &str,
        from: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<DigestRow>> {
        let query = format!(
            "SELECT {DIGEST_COLUMNS} FROM integrity_digests FINAL \
             WHERE org_id = {{org:String}} AND seq >= ( \
               SELECT ifNull(min(seq), 18446744073709551615) FROM integrity_digests FINAL \
               WHERE org_id = {{org:String}} AND sealed_at >= {{from:DateTime64(3, 'UTC')}}) \
             ORDER BY seq LIMIT {{limit:UInt64}}"
        );
        self.fetch_all_timed(
            self.client()
                .query(&query)
                .param("org", org_id)
                .param("from", datetime_param(from))
                .param("limit", limit),
        )
        .await
    }

    /// An organization's digests `first..=last` (by `seq`).
    pub async fn digests_between(
        &self,
        org_id: &str,
        first: u64,
        last: u64,
    ) -> Result<Vec<DigestRow>> {
        let query = format!(
            "SELECT {DIGEST_COLUMNS} FROM integrity_digests FINAL \
             WHERE org_id = {{org:String}} AND seq BETWEEN {{first:UInt64}} AND {{last:UInt64}} ORDER BY seq"
        );
        self.fetch_all_timed(self.windows_query(&query, org_id, first, last))
            .await
    }

    /// The leaves of an organization's windows `first_seq..=last_seq`, in window and leaf
    /// order: the packed windows, and the rows of windows sealed before migration 0004.
    pub async fn leaves_of(
        &self,
        org_id: &str,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<Vec<LeafRow>> {
        let query = "SELECT org_id, seq, idx, digest_hash, leaf, id, occurred_at, sealed_at FROM ( \
               SELECT org_id, seq, toUInt32(n - 1) AS idx, digest_hash, leaf, id, at AS occurred_at, sealed_at \
               FROM integrity_windows FINAL \
               ARRAY JOIN leaves AS leaf, ids AS id, occurred AS at, arrayEnumerate(leaves) AS n \
               WHERE org_id = {org:String} AND seq BETWEEN {first:UInt64} AND {last:UInt64} \
             UNION ALL \
               SELECT org_id, seq, idx, digest_hash, leaf, id, occurred_at, sealed_at \
               FROM integrity_leaves FINAL \
               WHERE org_id = {org:String} AND seq BETWEEN {first:UInt64} AND {last:UInt64}) \
             ORDER BY seq, idx";
        self.fetch_all_timed(self.windows_query(query, org_id, first_seq, last_seq))
            .await
    }

    /// The stored rows of an organization with `occurred_at` in `[since, until)` (after
    /// deduplication, expired rows included), at most `limit`: what verification checks.
    pub async fn stored_rows(
        &self,
        org_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        limit: u64,
    ) -> Result<Vec<crate::rows::EventRow>> {
        let query = "SELECT ?fields FROM events FINAL WHERE org_id = {org:String} \
             AND occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')} \
             ORDER BY occurred_at, id LIMIT {limit:UInt64}";
        let query = self.occurred_query(query, org_id, since, until);
        self.fetch_all_timed(query.param("limit", limit)).await
    }

    /// Ids of the organization's rows in `[since, until)` indexed after `after`: newer than the
    /// newest seal, so not in a window yet.
    pub async fn indexed_between(
        &self,
        org_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
        after: OffsetDateTime,
        before: OffsetDateTime,
    ) -> Result<Vec<String>> {
        let query = "SELECT toString(id) FROM events FINAL WHERE org_id = {org:String} \
             AND occurred_at >= {since:DateTime64(3, 'UTC')} AND occurred_at < {until:DateTime64(3, 'UTC')} \
             AND indexed_at > {after:DateTime64(3, 'UTC')} AND indexed_at <= {before:DateTime64(3, 'UTC')}";
        let query = self
            .occurred_query(query, org_id, since, until)
            .param("after", datetime_param(after))
            .param("before", datetime_param(before));
        self.fetch_all_timed(query).await
    }

    /// The window (seq) holding an event, by its id.
    pub async fn window_of_event(&self, org_id: &str, id: Uuid) -> Result<Option<u64>> {
        let query = "SELECT seq FROM ( \
               SELECT seq FROM integrity_windows FINAL \
               WHERE org_id = {org:String} AND has(ids, {id:UUID}) \
             UNION ALL \
               SELECT seq FROM integrity_leaves FINAL \
               WHERE org_id = {org:String} AND id = {id:UUID}) \
             ORDER BY seq LIMIT 1";
        let query = self
            .client()
            .query(query)
            .param("org", org_id)
            .param("id", id.to_string());
        self.fetch_optional_timed(query).await
    }

    /// `sql` bound to an organization's windows `first..=last` (`{org}`, `{first}`, `{last}`).
    fn windows_query(&self, sql: &str, org_id: &str, first: u64, last: u64) -> Query {
        self.client()
            .query(sql)
            .param("org", org_id)
            .param("first", first)
            .param("last", last)
    }

    /// `sql` bound to an organization's events that occurred in `[since, until)` (`{org}`,
    /// `{since}`, `{until}`).
    fn occurred_query(
        &self,
        sql: &str,
        org_id: &str,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Query {
        self.client()
            .query(sql)
            .param("org", org_id)
            .param("since", datetime_param(since))
            .param("until", datetime_param(until))
    }
}
