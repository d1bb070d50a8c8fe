//! Versioned schema migrations, applied in order and recorded in `schema_migrations`.
//!
//! * Idempotent: applied versions are skipped; every statement is also `IF NOT EXISTS`-safe.
//! * Checked: an applied migration whose text changed since is reported (checksum).
//! * Safe against downgrades: a database with a version newer than this build knows is
//!   refused, so an old indexer never writes into a schema it does not understand.
//!
//! Three layouts share the versions and the SQL: [`SchemaLayout::SingleNode`] (one server),
//! [`SchemaLayout::Replicated`] (replicated `events_local` tables on every node of a cluster
//! behind a Distributed `events` table; every DDL statement, the bookkeeping included, runs
//! `ON CLUSTER`) and [`SchemaLayout::Sharded`] (plain `events_local` tables on the shards of a
//! cluster behind a Distributed `events` table, no Keeper; the caller applies the migrations to
//! every node, each with its own bookkeeping). Each migration is one file in `migrations/`
//! holding every layout's text: a `--@ <layouts>` line makes the lines below it, up to the
//! next such line, part of those layouts only (`all`: every layout), and `{local}` (the
//! `_local` of the tables behind a Distributed one) and `{on_cluster}` are filled in for the
//! layout. The text a layout gets is what runs and what the recorded checksum covers, so a
//! released migration's text stays byte-identical in every layout (the unit tests compare it
//! with `tests/fixtures/migrations/`).
//!
//! Placeholders replaced when the statements run: `{database}`, and `{cluster}` in the cluster
//! layouts. `{shard}` and `{replica}` are the servers' own macros and are left as they are.

use clickhouse::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One migration: a version, a name, and the SQL of every layout (see [`Migration::sql`]).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    /// Every layout's statements, separated by `;` at line ends, the layouts' own lines under
    /// `--@ <layouts>` lines.
    pub source: &'static str,
}

/// Starts a line of a migration's source naming the layouts of the lines below it.
const LAYOUT_MARKER: &str = "--@";

/// The migrations, in order; every layout has them all.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        source: include_str!("../migrations/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "provenance",
        source: include_str!("../migrations/0002_provenance.sql"),
    },
    Migration {
        version: 3,
        name: "integrity",
        source: include_str!("../migrations/0003_integrity.sql"),
    },
    Migration {
        version: 4,
        name: "packed_leaves",
        source: include_str!("../migrations/0004_packed_leaves.sql"),
    },
];

impl Migration {
    /// The text of this migration in `layout`, its `{database}` and `{cluster}` not replaced:
    /// the lines of the source under a `--@` line naming `layout` or `all` (lines before the
    /// first one belong to no layout), with `{local}` and `{on_cluster}` filled in. Its
    /// checksum is what `schema_migrations` records.
    pub fn sql(&self, layout: &SchemaLayout) -> String {
        let mut sql = String::with_capacity(self.source.len());
        let mut selected = false;
        for line in self.source.lines() {
            if let Some(layouts) = line.strip_prefix(LAYOUT_MARKER) {
                selected = layouts
                    .split_whitespace()
                    .any(|name| name == "all" || name == layout.name());
                continue;
            }
            if selected {
                sql.push_str(line);
                sql.push('\n');
            }
        }
        let (local, on_cluster) = match layout {
            SchemaLayout::SingleNode => ("", ""),
            SchemaLayout::Replicated { .. } => ("_local", " ON CLUSTER '{cluster}'"),
            SchemaLayout::Sharded { .. } => ("_local", ""),
        };
        sql.replace("{local}", local)
            .replace("{on_cluster}", on_cluster)
    }
}

/// Where the schema lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SchemaLayout {
    /// One server: `events` is a ReplacingMergeTree.
    #[default]
    SingleNode,
    /// A cluster (a `remote_servers` entry, with Keeper): `events_local` is a
    /// ReplicatedReplacingMergeTree on every node and `events` a Distributed table over them,
    /// sharded by organization. DDL runs `ON CLUSTER '{cluster}'`.
    Replicated { cluster: String },
    /// A cluster of shards without replicas or Keeper (a `remote_servers` entry):
    /// `events_local` is a ReplacingMergeTree on every node and `events` a Distributed table
    /// over them, sharded by organization. Each node gets the DDL from the caller
    /// ([`crate::Store::migrate`] runs every migration on every shard).
    Sharded { cluster: String },
}

impl SchemaLayout {
    /// The layout's name in the configuration (`clickhouse.layout`) and in the `--@` lines of
    /// the migrations.
    fn name(&self) -> &'static str {
        match self {
            Self::SingleNode => "single_node",
            Self::Replicated { .. } => "replicated",
            Self::Sharded { .. } => "sharded",
        }
    }

    /// The newest version this build knows.
    pub fn latest_version(&self) -> u32 {
        MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// The engine the `events` table has in this layout (as `system.tables` names it).
    pub fn events_engine(&self) -> &'static str {
        match self {
            Self::SingleNode => "ReplacingMergeTree",
            Self::Replicated { .. } | Self::Sharded { .. } => "Distributed",
        }
    }

    /// The cluster of a cluster layout.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Self::SingleNode => None,
            Self::Replicated { cluster } | Self::Sharded { cluster } => Some(cluster),
        }
    }

    /// ` ON CLUSTER '<cluster>'` on the replicated layout, or nothing (the sharded layout's
    /// DDL goes to each node from the caller).
    fn on_cluster(&self) -> String {
        match self {
            Self::SingleNode | Self::Sharded { .. } => String::new(),
            Self::Replicated { cluster } => format!(" ON CLUSTER '{cluster}'"),
        }
    }

    /// The statements creating the database and the `schema_migrations` table. On a cluster
    /// the table is replicated across every node of every shard (one Keeper path, replica
    /// `{shard}-{replica}`), so any node answers with the applied versions.
    fn bookkeeping(&self, database: &str) -> [String; 2] {
        let on_cluster = self.on_cluster();
        let engine = match self {
            Self::SingleNode | Self::Sharded { .. } => "MergeTree".to_string(),
            Self::Replicated { .. } => format!(
                "ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{{shard}}-{{replica}}')"
            ),
        };
        [
            format!("CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {database}.schema_migrations{on_cluster} \
                 (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) \
                 ENGINE = {engine} ORDER BY version"
            ),
        ]
    }

    /// The statements of `migration` with the placeholders replaced.
    pub fn render(&self, migration: &Migration, database: &str) -> Vec<String> {
        statements(&migration.sql(self))
            .into_iter()
            .map(|statement| {
                let statement = statement.replace("{database}", database);
                match self.cluster() {
                    None => statement,
                    Some(cluster) => statement.replace("{cluster}", cluster),
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct Applied {
    version: u32,
    checksum: String,
}

/// What `migrate` did.
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    pub applied: Vec<u32>,
    pub already_applied: Vec<u32>,
}

/// Every statement `migrate` would run on an empty database, in order (for review before a
/// production migration: `indexer migrate --print-sql`).
pub fn script(database: &str, layout: &SchemaLayout) -> Vec<String> {
    let mut script = layout.bookkeeping(database).to_vec();
    for migration in MIGRATIONS {
        script.extend(layout.render(migration, database));
    }
    script
}

/// Applies the pending migrations of `layout` to `database`.
pub async fn migrate(
    client: &Client,
    database: &str,
    layout: &SchemaLayout,
) -> Result<MigrationReport> {
    for statement in layout.bookkeeping(database) {
        client.query(&statement).execute().await?;
    }
    let applied: Vec<Applied> = client
        .query(&format!(
            "SELECT version, checksum FROM {database}.schema_migrations ORDER BY version"
        ))
        .fetch_all()
        .await?;
    let known = layout.latest_version();
    if let Some(newest) = applied.iter().map(|a| a.version).max()
        && newest > known
    {
        return Err(Error::Schema(format!(
            "database `{database}` is at schema version {newest}, newer than this build knows ({known}); \
             refusing to run — upgrade this binary"
        )));
    }

    let mut report = MigrationReport::default();
    for migration in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(migration.sql(layout).as_bytes()));
        if let Some(done) = applied.iter().find(|a| a.version == migration.version) {
            if done.checksum != checksum {
                tracing::warn!(
                    version = migration.version,
                    name = migration.name,
                    "applied migration differs from this build's text (edited after release?)"
                );
            }
            report.already_applied.push(migration.version);
            continue;
        }
        for statement in layout.render(migration, database) {
            client.query(&statement).execute().await.map_err(|error| {
                Error::Schema(format!(
                    "migration {} ({}) failed: {error}",
                    migration.version, migration.name
                ))
            })?;
        }
        client
            .query(&format!(
                "INSERT INTO {database}.schema_migrations (version, name, checksum) \
                 VALUES ({{version:UInt32}}, {{name:String}}, {{checksum:String}})"
            ))
            .param("version", migration.version)
            .param("name", migration.name)
            .param("checksum", &checksum)
            .execute()
            .await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        report.applied.push(migration.version);
    }
    check_layout(client, database, layout).await?;
    Ok(report)
}

/// Checks that the `events` table of `database` has the engine of `layout`: a single-node
/// schema used as a cluster's (or the reverse) is refused rather than half-working.
pub async fn check_layout(client: &Client, database: &str, layout: &SchemaLayout) -> Result<()> {
    let engines: Vec<String> = client
        .query("SELECT engine FROM system.tables WHERE database = {db:String} AND name = 'events'")
        .param("db", database)
        .fetch_all()
        .await?;
    let expected = layout.events_engine();
    match engines.first() {
        Some(engine) if engine != expected => Err(Error::Schema(format!(
            "`{database}.events` is a {engine} table but `clickhouse.layout` expects {expected}; \
             set the layout the database was created with"
        ))),
        _ => Ok(()),
    }
}

/// Checks that `cluster`, as the node behind `client` sees it, has exactly `expected` shards
/// (the sharded layout's `shard_urls`): a node missing from one list or the other would leave
/// a shard without tables or retention changes.
pub async fn check_shard_count(client: &Client, cluster: &str, expected: usize) -> Result<()> {
    let shards: u64 = client
        .query("SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = {cluster:String}")
        .param("cluster", cluster)
        .fetch_one()
        .await?;
    if shards == expected as u64 {
        return Ok(());
    }
    Err(Error::Schema(format!(
        "the cluster `{cluster}` has {shards} shard(s) in this node's remote_servers, but \
         `clickhouse.shard_urls` lists {expected} node(s); list one node per shard"
    )))
}

/// The schema version recorded in `database` (0 when none).
pub async fn current_version(client: &Client, database: &str) -> Result<u32> {
    let exists: u8 = client
        .query("SELECT count() > 0 FROM system.tables WHERE database = {db:String} AND name = 'schema_migrations'")
        .param("db", database)
        .fetch_one()
        .await?;
    if exists == 0 {
        return Ok(0);
    }
    Ok(client
        .query(&format!(
            "SELECT max(version) FROM {database}.schema_migrations"
        ))
        .fetch_one::<u32>()
        .await?)
}

/// Splits a migration into statements: comment lines dropped, split at `;` ending a line.
fn statements(sql: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').to_string();
            statements.push(statement);
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_string());
    }
    statements
}

#[cfg(test)]
mod tests;
