//! Writes and maintenance against ClickHouse.

use std::time::{Duration, Instant};

use clickhouse::query::Query;
use clickhouse::{Client, RowOwned, RowRead};
use serde::{Deserialize, Serialize};

use crate::bounds::ReadBounds;
use crate::config::ClickHouseConfig;
use crate::error::{Error, Result};
use crate::migrations::{self, MigrationReport, SchemaLayout};
use crate::rows::{EventRow, PendingEvent};

/// The events table's name inside the configured database.
pub const EVENTS_TABLE: &str = "events";
/// The shard-local table behind `events` on the cluster layouts.
pub const EVENTS_LOCAL_TABLE: &str = "events_local";

#[derive(Clone)]
pub struct Store {
    client: Client,
    /// Every shard's node with its URL (sharded layout only): migrations, schema checks and
    /// retention changes go to each, as there is no Keeper to run them `ON CLUSTER`.
    shards: Vec<(String, Client)>,
    database: String,
    timeout: Duration,
    layout: SchemaLayout,
    search_index_on_insert: bool,
    /// Bounds of pages, single events, the feed and operator views.
    query_bounds: ReadBounds,
    /// Bounds of exports (no result cap).
    export_bounds: ReadBounds,
    /// Names this client in its reads' `query_id` and `log_comment`.
    read_label: &'static str,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("database", &self.database)
            .finish()
    }
}

/// Progress of one retention change being applied to stored rows.
#[derive(Debug, Clone, Serialize, Deserialize, clickhouse::Row)]
pub struct RetentionMutation {
    pub mutation_id: String,
    pub command: String,
    #[serde(with = "clickhouse::serde::time::datetime")]
    pub create_time: time::OffsetDateTime,
    pub parts_to_do: i64,
    pub is_done: u8,
    pub latest_fail_reason: String,
}

impl Store {
    pub fn new(config: &ClickHouseConfig) -> Self {
        let compression = match config.compression {
            crate::config::Compression::Lz4 => clickhouse::Compression::Lz4,
            crate::config::Compression::None => clickhouse::Compression::None,
        };
        let base = Client::default()
            .with_compression(compression)
            .with_user(&config.user)
            .with_password(config.password.expose())
            .with_database(&config.database);
        let layout = config.schema_layout();
        let mut client = base.clone().with_url(&config.url);
        if layout.cluster().is_some() {
            // Every read filters by org_id, the sharding key's input: send it to the shard
            // owning the organization only (fewer shards to wait for, and reads of healthy
            // shards keep answering while another shard is down).
            client = client.with_setting("optimize_skip_unused_shards", "1");
        }
        let shards = config
            .shard_urls
            .iter()
            .map(|url| (url.clone(), base.clone().with_url(url)))
            .collect();
        Self {
            client,
            shards,
            database: config.database.clone(),
            timeout: Duration::from_secs(config.timeout_secs),
            layout,
            search_index_on_insert: config.search_index_on_insert,
            query_bounds: ReadBounds::DEFAULT_QUERIES,
            export_bounds: ReadBounds::DEFAULT_EXPORTS,
            read_label: "store",
        }
    }

    /// The same store naming itself `label` in its reads (`<label>-<kind>-<uuid>` query ids).
    pub fn with_read_label(mut self, label: &'static str) -> Self {
        self.read_label = label;
        self
    }

    /// The name this client gives itself in its reads.
    pub fn read_label(&self) -> &'static str {
        self.read_label
    }

    /// The same store with these bounds on its reads (see [`crate::bounds`]).
    pub fn with_read_bounds(mut self, queries: ReadBounds, exports: ReadBounds) -> Self {
        self.query_bounds = queries;
        self.export_bounds = exports;
        self
    }

    /// Bounds of pages, single events, the feed and operator views.
    pub fn query_bounds(&self) -> &ReadBounds {
        &self.query_bounds
    }

    /// Bounds of exports.
    pub fn export_bounds(&self) -> &ReadBounds {
        &self.export_bounds
    }

    /// The client, scoped to the audit database.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `future` with the configured timeout.
    pub async fn timed<T>(&self, future: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout(self.timeout, future)
            .await
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }

    /// Runs `query` with the configured timeout; every row it returns.
    pub(crate) async fn fetch_all_timed<T: RowOwned + RowRead>(
        &self,
        query: Query,
    ) -> Result<Vec<T>> {
        self.timed(async { Ok(query.fetch_all().await?) }).await
    }

    /// Runs `query` with the configured timeout; its first row, if any.
    pub(crate) async fn fetch_optional_timed<T: RowOwned + RowRead>(
        &self,
        query: Query,
    ) -> Result<Option<T>> {
        self.timed(async { Ok(query.fetch_optional().await?) })
            .await
    }

    /// `SELECT 1`: ClickHouse answers.
    pub async fn ping(&self) -> Result<()> {
        let probe = async {
            let one: u8 = self.client.query("SELECT 1").fetch_one().await?;
            debug_assert_eq!(one, 1);
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(3), probe)
            .await
            .unwrap_or(Err(Error::Timeout(Duration::from_secs(3))))
    }

    /// Applies pending schema migrations of the configured layout (on the sharded layout: on
    /// every shard, after checking that the cluster has as many shards as `shard_urls`).
    pub async fn migrate(&self) -> Result<MigrationReport> {
        let SchemaLayout::Sharded { cluster } = &self.layout else {
            // DDL runs before the database exists, so use an unscoped client.
            let client = self.client.clone().with_database("default");
            return migrations::migrate(&client, &self.database, &self.layout).await;
        };
        let mut report = MigrationReport::default();
        for (url, shard) in &self.shards {
            let client = shard.clone().with_database("default");
            migrations::check_shard_count(&client, cluster, self.shards.len())
                .await
                .map_err(|error| on_node(url, error))?;
            let applied = migrations::migrate(&client, &self.database, &self.layout)
                .await
                .map_err(|error| on_node(url, error))?;
            tracing::info!(node = %url, applied = ?applied.applied, "shard migrated");
            report.applied.extend(applied.applied);
            report.already_applied.extend(applied.already_applied);
        }
        report.applied.sort_unstable();
        report.applied.dedup();
        report.already_applied.sort_unstable();
        report.already_applied.dedup();
        Ok(report)
    }

    /// Checks that the database has exactly the schema version this build expects, in the
    /// configured layout (on every shard of the sharded layout).
    pub async fn check_schema(&self) -> Result<()> {
        if !matches!(self.layout, SchemaLayout::Sharded { .. }) {
            return self.check_node_schema(&self.client).await;
        }
        for (url, shard) in &self.shards {
            self.check_node_schema(shard)
                .await
                .map_err(|error| on_node(url, error))?;
        }
        Ok(())
    }

    async fn check_node_schema(&self, node: &Client) -> Result<()> {
        let client = node.clone().with_database("default");
        let current = migrations::current_version(&client, &self.database).await?;
        let latest = self.layout.latest_version();
        match current.cmp(&latest) {
            std::cmp::Ordering::Equal => {
                migrations::check_layout(&client, &self.database, &self.layout).await
            }
            std::cmp::Ordering::Less => Err(Error::Schema(format!(
                "database `{}` is at schema version {current}; run `indexer migrate` to reach {latest}",
                self.database
            ))),
            std::cmp::Ordering::Greater => Err(Error::Schema(format!(
                "database `{}` is at schema version {current}, newer than this build ({latest})",
                self.database
            ))),
        }
    }

    /// Starts an INSERT into the events table that streams rows as they are written:
    /// ClickHouse parses them as they arrive and builds one part at [`EventInsert::end`], so a
    /// large batch costs the caller no memory. Dropping it without `end` aborts it (nothing is
    /// stored).
    pub async fn begin_insert(&self) -> Result<EventInsert> {
        let mut insert = self
            .client
            .insert::<EventRow>(EVENTS_TABLE)
            .await?
            // Collapsing duplicates inside each block is wasted work for a table always read
            // with FINAL and merged later anyway; skipping it saves ~35% insert CPU.
            .with_setting("optimize_on_insert", "0")
            // A retry re-reads from Kafka and never repeats a block exactly, so hashing every
            // block for insert deduplication is wasted; the table collapses any copy.
            .with_setting("insert_deduplicate", "0")
            .with_timeouts(Some(self.timeout), Some(self.timeout));
        if self.layout.cluster().is_some() {
            // Through a Distributed table, answer only once every shard stored its rows (the
            // indexer commits Kafka offsets on that answer), never once they are queued on
            // the receiving node's disk.
            insert = insert.with_setting("distributed_foreground_insert", "1");
        }
        if !self.search_index_on_insert {
            // Leave the n-gram index to the merges (see `search_index_on_insert`).
            insert =
                insert.with_setting("exclude_materialize_skip_indexes_on_insert", "idx_search");
        }
        Ok(EventInsert {
            insert,
            started: Instant::now(),
        })
    }

    /// Rewrites the retention of an organization's stored rows (asynchronous mutation; the
    /// TTL of the rewritten rows follows). Rows already at `days` are left alone. On the
    /// cluster layouts the mutation runs on the shards' `events_local` tables (a Distributed
    /// table takes no mutations): `ON CLUSTER` on the replicated layout, and on each node of
    /// `shard_urls` on the sharded one — every shard, not only the one the organization hashes
    /// to now, because rows written before a change of the shard count stay where they are.
    pub async fn apply_retention(&self, org_id: &str, days: u16) -> Result<()> {
        let target = match &self.layout {
            SchemaLayout::SingleNode => EVENTS_TABLE.to_string(),
            SchemaLayout::Replicated { cluster } => {
                format!("{EVENTS_LOCAL_TABLE} ON CLUSTER '{cluster}'")
            }
            SchemaLayout::Sharded { .. } => EVENTS_LOCAL_TABLE.to_string(),
        };
        let statement = format!(
            "ALTER TABLE {target} UPDATE retention_days = {{days:UInt16}} \
             WHERE org_id = {{org:String}} AND retention_days != {{days:UInt16}}"
        );
        let nodes: Vec<(&str, &Client)> = match &self.layout {
            SchemaLayout::Sharded { .. } => self
                .shards
                .iter()
                .map(|(url, client)| (url.as_str(), client))
                .collect(),
            _ => vec![("", &self.client)],
        };
        for (url, client) in nodes {
            self.timed(async {
                client
                    .query(&statement)
                    .param("days", days)
                    .param("org", org_id)
                    .execute()
                    .await?;
                Ok(())
            })
            .await
            .map_err(|error| {
                if url.is_empty() {
                    error
                } else {
                    on_node(url, error)
                }
            })?;
        }
        Ok(())
    }

    /// The retention mutations touching an organization, newest first (on every node of the
    /// cluster layouts).
    pub async fn retention_mutations(&self, org_id: &str) -> Result<Vec<RetentionMutation>> {
        let (source, table) = match &self.layout {
            SchemaLayout::SingleNode => ("system.mutations".to_string(), EVENTS_TABLE),
            SchemaLayout::Replicated { cluster } | SchemaLayout::Sharded { cluster } => (
                format!("clusterAllReplicas('{cluster}', system.mutations)"),
                EVENTS_LOCAL_TABLE,
            ),
        };
        let statement = format!(
            "SELECT mutation_id, command, create_time, parts_to_do, toUInt8(is_done) AS is_done, \
             latest_fail_reason FROM {source} \
             WHERE database = {{db:String}} AND table = {{table:String}} \
             AND position(command, 'retention_days') > 0 AND position(command, {{org_literal:String}}) > 0 \
             ORDER BY create_time DESC LIMIT 20"
        );
        let query = self
            .client
            .query(&statement)
            .param("db", &self.database)
            .param("table", table)
            .param(
                "org_literal",
                format!("'{}'", org_id.replace('\\', "\\\\").replace('\'', "\\'")),
            );
        let query = self
            .query_bounds
            .apply(query, self.read_label, "retention", org_id);
        self.timed(async { query.fetch_all().await.map_err(crate::bounds::classify) })
            .await
    }
}

/// Names the shard node an error came from (an operator then knows which server to look at).
fn on_node(url: &str, error: Error) -> Error {
    match error {
        Error::Schema(message) => Error::Schema(format!("{url}: {message}")),
        Error::ClickHouse(clickhouse::error::Error::BadResponse(message)) => Error::ClickHouse(
            clickhouse::error::Error::BadResponse(format!("{url}: {message}")),
        ),
        other => other,
    }
}

/// What identifies a stored row: rows with the same `(org_id, occurred_at, id)` collapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowKey {
    pub id: uuid::Uuid,
    pub occurred_at: time::OffsetDateTime,
}

/// An event skipped by [`EventInsert::write`]: its JSON is not a canonical event (the
/// message is its dead-letter reason).
#[derive(Debug, thiserror::Error)]
#[error("not a canonical event: {0}")]
pub struct NotCanonical(serde_json::Error);

/// A streaming INSERT of events (see [`Store::begin_insert`]).
#[must_use = "dropping an insert without `end` aborts it"]
pub struct EventInsert {
    insert: clickhouse::insert::Insert<EventRow>,
    started: Instant,
}

impl EventInsert {
    /// Sends one event (its row is built from the canonical JSON here) and returns its key.
    /// `Ok(Err(_))`: the JSON is not a canonical event and was skipped. After an `Err` the
    /// insert is aborted and must be dropped.
    pub async fn write(&mut self, event: &PendingEvent) -> Result<Result<RowKey, NotCanonical>> {
        let row = match event.to_row() {
            Ok(row) => row,
            Err(error) => return Ok(Err(NotCanonical(error))),
        };
        self.insert.write(&row).await?;
        Ok(Ok(RowKey {
            id: row.id,
            occurred_at: row.occurred_at,
        }))
    }

    /// Sends a row already built (the benchmark's insert ceiling: the same INSERT without
    /// the indexer's per-event work). After an `Err` the insert is aborted and must be dropped.
    pub async fn write_row(&mut self, row: &EventRow) -> Result<()> {
        self.insert.write(row).await?;
        Ok(())
    }

    /// Finishes the INSERT: Ok once ClickHouse has stored every row written.
    pub async fn end(self) -> Result<()> {
        let started = self.started;
        self.insert.end().await?;
        metrics::histogram!("clickhouse_insert_seconds").record(started.elapsed().as_secs_f64());
        Ok(())
    }
}

/// Stored rows of one organization with one retention value.
#[derive(Debug, Clone, Serialize, Deserialize, clickhouse::Row)]
pub struct RetentionClass {
    pub org_id: String,
    pub retention_days: u16,
    pub rows: u64,
}

impl Store {
    /// How many stored rows each organization has per retention value (physical rows,
    /// duplicates included: every copy must carry the right retention).
    pub async fn retention_classes(&self) -> Result<Vec<RetentionClass>> {
        self.fetch_all_timed(self.client().query(
            "SELECT org_id, retention_days, count() AS rows FROM events \
             GROUP BY org_id, retention_days ORDER BY org_id, retention_days",
        ))
        .await
    }

    /// Whether a retention mutation for `org_id` to `days` is still running.
    pub async fn retention_mutation_running(&self, org_id: &str, days: u16) -> Result<bool> {
        let mutations = self.retention_mutations(org_id).await?;
        // Bound parameters appear in the command as `_CAST(30, 'UInt16')`.
        let literal = format!("retention_days = {days}");
        let cast = format!("retention_days = _CAST({days},");
        Ok(mutations.iter().any(|m| {
            let command = m.command.replace('`', "");
            m.is_done == 0 && (command.contains(&literal) || command.contains(&cast))
        }))
    }
}
