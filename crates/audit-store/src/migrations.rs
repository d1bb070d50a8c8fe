//! Versioned schema migrations, applied in order and recorded in `schema_migrations`.
//!
//! * Idempotent: applied versions are skipped; every statement is also `IF NOT EXISTS`-safe.
//! * Checked: an applied migration whose text changed since is reported (checksum).
//! * Safe against downgrades: a database with a version newer than this build knows is
//!   refused, so an old indexer never writes into a schema it does not understand.
//!
//! Three layouts share the versions: [`SchemaLayout::SingleNode`] (`migrations/*.sql`: one
//! server), [`SchemaLayout::Replicated`] (`migrations/replicated/*.sql`: replicated
//! `events_local` tables on every node of a cluster behind a Distributed `events` table; every
//! DDL statement, the bookkeeping included, runs `ON CLUSTER`) and [`SchemaLayout::Sharded`]
//! (`migrations/sharded/*.sql`: plain `events_local` tables on the shards of a cluster behind
//! a Distributed `events` table, no Keeper; the caller applies the migrations to every node,
//! each with its own bookkeeping). A migration added to one layout is added to the others
//! with the same version.
//!
//! Placeholders replaced in the SQL: `{database}`, and `{cluster}` in the cluster layouts.
//! `{shard}` and `{replica}` are the servers' own macros and are left as they are.

use clickhouse::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One migration: a version, a name, and SQL statements separated by `;` at line ends.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of the single-node schema.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        sql: include_str!("../migrations/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "provenance",
        sql: include_str!("../migrations/0002_provenance.sql"),
    },
    Migration {
        version: 3,
        name: "integrity",
        sql: include_str!("../migrations/0003_integrity.sql"),
    },
];

/// The migrations of the replicated schema (same versions as [`MIGRATIONS`]).
pub const MIGRATIONS_REPLICATED: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        sql: include_str!("../migrations/replicated/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "provenance",
        sql: include_str!("../migrations/replicated/0002_provenance.sql"),
    },
    Migration {
        version: 3,
        name: "integrity",
        sql: include_str!("../migrations/replicated/0003_integrity.sql"),
    },
];

/// The migrations of the sharded schema (same versions as [`MIGRATIONS`]).
pub const MIGRATIONS_SHARDED: &[Migration] = &[
    Migration {
        version: 1,
        name: "events",
        sql: include_str!("../migrations/sharded/0001_events.sql"),
    },
    Migration {
        version: 2,
        name: "provenance",
        sql: include_str!("../migrations/sharded/0002_provenance.sql"),
    },
    Migration {
        version: 3,
        name: "integrity",
        sql: include_str!("../migrations/sharded/0003_integrity.sql"),
    },
];

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
    /// The migrations of this layout.
    pub fn migrations(&self) -> &'static [Migration] {
        match self {
            Self::SingleNode => MIGRATIONS,
            Self::Replicated { .. } => MIGRATIONS_REPLICATED,
            Self::Sharded { .. } => MIGRATIONS_SHARDED,
        }
    }

    /// The newest version this build knows.
    pub fn latest_version(&self) -> u32 {
        self.migrations()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
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
        statements(migration.sql)
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
    for migration in layout.migrations() {
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
    let migrations = layout.migrations();
    for statement in layout.bookkeeping(database) {
        client.query(&statement).execute().await?;
    }
    let applied: Vec<Applied> = client
        .query(&format!(
            "SELECT version, checksum FROM {database}.schema_migrations ORDER BY version"
        ))
        .fetch_all()
        .await?;
    let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().map(|a| a.version).max()
        && newest > known
    {
        return Err(Error::Schema(format!(
            "database `{database}` is at schema version {newest}, newer than this build knows ({known}); \
             refusing to run — upgrade this binary"
        )));
    }

    let mut report = MigrationReport::default();
    for migration in migrations {
        let checksum = hex::encode(Sha256::digest(migration.sql.as_bytes()));
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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn splits_statements_and_drops_comments() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a (x UInt8);\n\nCREATE TABLE b\n(\n  y UInt8 -- inline\n);\n";
        let statements = statements(sql);
        assert_eq!(statements.len(), 2);
        assert!(statements[0].starts_with("CREATE TABLE a"));
        assert!(statements[1].contains("y UInt8"));
    }

    #[test]
    fn migrations_are_ordered_and_unique() {
        for migrations in [MIGRATIONS, MIGRATIONS_REPLICATED, MIGRATIONS_SHARDED] {
            let versions: Vec<u32> = migrations.iter().map(|m| m.version).collect();
            let mut sorted = versions.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(versions, sorted);
            assert!(
                migrations
                    .iter()
                    .all(|m| statements(m.sql).iter().all(|s| !s.trim().is_empty()))
            );
        }
    }

    #[test]
    fn every_layout_has_the_same_versions() {
        let versions = |migrations: &[Migration]| -> Vec<(u32, &'static str)> {
            migrations.iter().map(|m| (m.version, m.name)).collect()
        };
        assert_eq!(versions(MIGRATIONS), versions(MIGRATIONS_REPLICATED));
        assert_eq!(versions(MIGRATIONS), versions(MIGRATIONS_SHARDED));
        let cluster = SchemaLayout::Replicated {
            cluster: "prod".into(),
        };
        assert_eq!(
            SchemaLayout::SingleNode.latest_version(),
            cluster.latest_version()
        );
    }

    fn replicated() -> SchemaLayout {
        SchemaLayout::Replicated {
            cluster: "audit_cluster".into(),
        }
    }

    #[test]
    fn replicated_schema_renders_replicated_tables_behind_a_distributed_table() {
        let rendered = replicated().render(&MIGRATIONS_REPLICATED[0], "audit_prod");
        assert_eq!(rendered.len(), 2, "{rendered:#?}");
        let (local, distributed) = (&rendered[0], &rendered[1]);

        assert!(local.starts_with(
            "CREATE TABLE IF NOT EXISTS audit_prod.events_local ON CLUSTER 'audit_cluster'"
        ));
        // {database} is ours to fill; {shard} and {replica} are the servers' macros.
        assert!(local.contains(
            "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/audit_prod/events_local', '{replica}', version)"
        ));
        assert!(local.contains("ORDER BY (org_id, occurred_at, id)"));
        assert!(local.contains("TTL toDateTime(occurred_at) + toIntervalDay(retention_days)"));
        assert!(!local.contains("non_replicated_deduplication_window"));

        assert!(distributed.starts_with(
            "CREATE TABLE IF NOT EXISTS audit_prod.events ON CLUSTER 'audit_cluster'"
        ));
        assert!(distributed.contains("AS audit_prod.events_local"));
        assert!(distributed.contains(
            "ENGINE = Distributed('audit_cluster', audit_prod, events_local, cityHash64(org_id))"
        ));

        for statement in &rendered {
            assert!(!statement.contains("{database}") && !statement.contains("{cluster}"));
            assert!(
                !statement.contains("--"),
                "comments are dropped: {statement}"
            );
            assert!(!statement.ends_with(';'));
        }
    }

    #[test]
    fn replicated_schema_has_the_single_node_columns_and_indexes() {
        // Everything between the opening parenthesis and the engine must be identical, so
        // both layouts store and index the same rows.
        fn body(sql: &str) -> &str {
            let start = sql.find("\n(\n").expect("column list");
            let end = sql.find("\nENGINE").expect("engine");
            &sql[start..end]
        }
        assert_eq!(body(MIGRATIONS[0].sql), body(MIGRATIONS_REPLICATED[0].sql));
        assert_eq!(body(MIGRATIONS[0].sql), body(MIGRATIONS_SHARDED[0].sql));
    }

    fn sharded() -> SchemaLayout {
        SchemaLayout::Sharded {
            cluster: "audit_shards".into(),
        }
    }

    #[test]
    fn sharded_schema_renders_local_tables_behind_a_distributed_table_without_on_cluster() {
        let rendered = sharded().render(&MIGRATIONS_SHARDED[0], "audit_prod");
        assert_eq!(rendered.len(), 2, "{rendered:#?}");
        let (local, distributed) = (&rendered[0], &rendered[1]);
        assert!(local.starts_with("CREATE TABLE IF NOT EXISTS audit_prod.events_local\n("));
        assert!(local.contains("ENGINE = ReplacingMergeTree(version)"));
        // Everything after the engine (partitioning, key, TTL, settings) is the single node's.
        let tail = |sql: &str| sql[sql.find("ENGINE").expect("engine")..].to_string();
        assert_eq!(
            tail(local),
            tail(&SchemaLayout::SingleNode.render(&MIGRATIONS[0], "audit_prod")[0])
        );
        assert_eq!(
            distributed,
            "CREATE TABLE IF NOT EXISTS audit_prod.events\nAS audit_prod.events_local\n\
             ENGINE = Distributed('audit_shards', audit_prod, events_local, cityHash64(org_id))"
        );
        for statement in script("audit_prod", &sharded()) {
            assert!(!statement.contains("ON CLUSTER"), "{statement}");
            assert!(
                !statement.contains('{'),
                "placeholders replaced: {statement}"
            );
        }
        let [_, bookkeeping] = sharded().bookkeeping("audit");
        assert!(bookkeeping.ends_with("ENGINE = MergeTree ORDER BY version"));
    }

    #[test]
    fn cluster_layouts_shard_by_organization_alike() {
        // The sharding key decides which shard holds every copy of an event: both cluster
        // layouts must use the same one.
        let key = |layout: &SchemaLayout, migration: &Migration| {
            let rendered = layout.render(migration, "db").join("\n");
            let start = rendered.find("Distributed(").expect("distributed");
            rendered[start..]
                .replace("audit_cluster", "C")
                .replace("audit_shards", "C")
        };
        assert_eq!(
            key(&replicated(), &MIGRATIONS_REPLICATED[0]),
            key(&sharded(), &MIGRATIONS_SHARDED[0])
        );
    }

    #[test]
    fn single_node_rendering_replaces_only_the_database() {
        let rendered = SchemaLayout::SingleNode.render(&MIGRATIONS[0], "audit");
        assert_eq!(rendered.len(), 1);
        assert!(rendered[0].starts_with("CREATE TABLE IF NOT EXISTS audit.events\n("));
        assert!(rendered[0].contains("ENGINE = ReplacingMergeTree(version)"));
        assert!(!rendered[0].contains("ON CLUSTER"));
    }

    #[test]
    fn the_script_is_bookkeeping_then_every_migration() {
        let script = script("audit", &replicated());
        assert_eq!(script.len(), 10);
        assert!(script[0].starts_with("CREATE DATABASE"));
        assert!(script[1].contains(".schema_migrations"));
        assert!(script[2].contains(".events_local"));
        assert!(script[3].contains("Distributed("));
        // 0002: the provenance column on the replicated tables and the Distributed one.
        assert!(script[4].starts_with("ALTER TABLE audit.events_local ON CLUSTER"));
        assert!(script[5].starts_with("ALTER TABLE audit.events ON CLUSTER"));
        // 0003: the integrity tables, local and Distributed.
        assert!(script[6].contains("audit.integrity_digests_local"));
        assert!(script[7].contains("Distributed("));
        assert!(script[8].contains("audit.integrity_leaves_local"));
        assert!(script[9].contains("Distributed("));
        assert!(
            script
                .iter()
                .all(|s| s.contains("ON CLUSTER 'audit_cluster'"))
        );
    }

    #[test]
    fn bookkeeping_runs_on_the_cluster_with_a_replicated_table() {
        let [database, table] = replicated().bookkeeping("audit");
        assert_eq!(
            database,
            "CREATE DATABASE IF NOT EXISTS audit ON CLUSTER 'audit_cluster'"
        );
        assert!(table.starts_with(
            "CREATE TABLE IF NOT EXISTS audit.schema_migrations ON CLUSTER 'audit_cluster' ("
        ));
        assert!(table.contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/audit/schema_migrations', '{shard}-{replica}')"
        ));

        let [database, table] = SchemaLayout::SingleNode.bookkeeping("audit");
        assert_eq!(database, "CREATE DATABASE IF NOT EXISTS audit");
        assert!(table.ends_with("ENGINE = MergeTree ORDER BY version"));
        assert!(!table.contains("ON CLUSTER"));
    }
}
