//! The integrity tables (migration 0003, docs/integrity.md): window digests and their leaves.
//! Written by the indexer's sealer; read by the gateway's verification API and by a new owner
//! of a partition resuming the chains.

use clickhouse::Row;
use clickhouse::query::Query;
use serde::{Deserialize, Serialize};
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

/// A [`LeafRow`] as it is inserted: borrows its window's organization and digest hash, so a
/// seal of many leaves allocates nothing per leaf.
#[derive(Debug, Clone, Copy, Row, Serialize)]
pub struct LeafInsert<'a> {
    pub org_id: &'a str,
    pub seq: u64,
    pub idx: u32,
    pub digest_hash: &'a str,
    pub leaf: &'a [u8; 32],
    #[serde(with = "clickhouse::serde::uuid")]
    pub id: Uuid,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub sealed_at: OffsetDateTime,
}

const DIGEST_COLUMNS: &str = "org_id, seq, partition, first_offset, end_offset, sealed_at, count, \
     retention_days, hash, note, key_id, signature";

impl Store {
    /// Stores digests and their leaves (idempotent: a replayed seal writes the same rows).
    pub async fn insert_seal<'a>(
        &self,
        digests: &[DigestRow],
        leaves: impl IntoIterator<Item = LeafInsert<'a>> + Send,
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
            let mut leaves = leaves.into_iter().peekable();
            if leaves.peek().is_some() {
                let mut insert = self
                    .client()
                    .insert::<LeafInsert<'_>>("integrity_leaves")
                    .await?;
                for leaf in leaves {
                    insert.write(&leaf).await?;
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

    /// The leaves of the digests `(seq, hash)` of an organization, in window and leaf order.
    pub async fn leaves_of(
        &self,
        org_id: &str,
        first_seq: u64,
        last_seq: u64,
    ) -> Result<Vec<LeafRow>> {
        let query = "SELECT org_id, seq, idx, digest_hash, leaf, id, occurred_at, sealed_at \
             FROM integrity_leaves FINAL \
             WHERE org_id = {org:String} AND seq BETWEEN {first:UInt64} AND {last:UInt64} \
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
        let query = "SELECT seq FROM integrity_leaves FINAL \
             WHERE org_id = {org:String} AND id = {id:UUID} ORDER BY seq LIMIT 1";
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
