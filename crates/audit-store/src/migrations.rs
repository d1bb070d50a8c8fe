//! Versioned schema migrations, applied in order and recorded in `schema_migrations`.
//!
//! * Idempotent: applied versions are skipped; every statement is also `IF NOT EXISTS`-safe.
//! * Checked: an applied migration whose text changed since is reported (checksum).
//! * Safe against downgrades: a database with a version newer than this build knows is
//!   refused, so an old indexer never writes into a schema it does not understand.

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
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "events",
    sql: include_str!("../migrations/0001_events.sql"),
}];

/// The newest version this build knows.
pub fn latest_version() -> u32 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
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

/// Applies the pending migrations to `database`.
pub async fn migrate(
    client: &Client,
    database: &str,
    migrations: &[Migration],
) -> Result<MigrationReport> {
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await?;
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {database}.schema_migrations \
             (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) \
             ENGINE = MergeTree ORDER BY version"
        ))
        .execute()
        .await?;
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
        for statement in statements(migration.sql) {
            let statement = statement.replace("{database}", database);
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
    Ok(report)
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
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let mut sorted = versions.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(versions, sorted);
        assert!(
            statements(MIGRATIONS[0].sql)
                .iter()
                .all(|s| !s.trim().is_empty())
        );
    }
}
