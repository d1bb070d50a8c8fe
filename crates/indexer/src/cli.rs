//! The `indexer` command line: its arguments and subcommands, and what each one does. The
//! binary only parses the arguments and runs [`dispatch`] (see `main.rs`).
//!
//! Every subcommand loads and validates the configuration first (`migrate`'s flags override
//! the `[clickhouse]` section before it is validated), so `check-config` fails exactly where
//! `run` would.

use std::io::Write;
use std::path::PathBuf;

use audit_store::ClickHouseConfig;
use audit_store::config::Layout;
use clap::{Parser, Subcommand, ValueEnum};

use crate::IndexerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "indexer",
    version,
    about = "Consumes audit events from Kafka into ClickHouse with per-organization TTL retention."
)]
pub struct Cli {
    /// Configuration file (TOML). Environment variables `INDEXER__SECTION__KEY` override it.
    #[arg(
        long,
        short,
        env = "INDEXER_CONFIG",
        default_value = "config/indexer.toml"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume and index (the default).
    Run,
    /// Apply the ClickHouse schema migrations and exit.
    Migrate {
        /// Schema layout, overriding `clickhouse.layout` (the running indexers must be
        /// configured with the same one: they check it at start).
        #[arg(long, value_enum)]
        layout: Option<LayoutArg>,
        /// Cluster for the replicated and sharded layouts, overriding `clickhouse.cluster`.
        #[arg(long)]
        cluster: Option<String>,
        /// HTTP URL of a shard's node for the sharded layout (repeat for every shard),
        /// overriding `clickhouse.shard_urls`.
        #[arg(long = "shard-url")]
        shard_urls: Vec<String>,
        /// Print every statement a migration of an empty database runs, and exit without
        /// connecting.
        #[arg(long)]
        print_sql: bool,
    },
    /// Validate the configuration and exit.
    CheckConfig,
    /// Print the public keys of `integrity.signing_keys` (the gateway's `[integrity]
    /// public_keys`) and exit.
    IntegrityKeys,
}

/// `--layout` values (the `[clickhouse] layout` names).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LayoutArg {
    #[value(name = "single_node")]
    SingleNode,
    Replicated,
    Sharded,
}

impl From<LayoutArg> for Layout {
    fn from(layout: LayoutArg) -> Self {
        match layout {
            LayoutArg::SingleNode => Layout::SingleNode,
            LayoutArg::Replicated => Layout::Replicated,
            LayoutArg::Sharded => Layout::Sharded,
        }
    }
}

/// Runs the subcommand (`run` when none is given).
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let mut config: IndexerConfig = audit_runtime::config::load(Some(&cli.config), "INDEXER")?;
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Migrate {
        layout,
        cluster,
        shard_urls,
        ..
    } = &command
    {
        override_clickhouse(
            &mut config.clickhouse,
            *layout,
            cluster.as_deref(),
            shard_urls,
        );
    }
    config.validate()?;
    let metrics = audit_runtime::telemetry::init(&config.telemetry, "indexer");
    match command {
        Command::CheckConfig => {
            // The binary's target, as when this ran in `main.rs`.
            tracing::info!(target: "indexer", config = %cli.config.display(), "configuration is valid");
            Ok(())
        }
        Command::Migrate {
            print_sql: true, ..
        } => print_migration_sql(&config),
        Command::Migrate { .. } => crate::migrate(&config).await,
        Command::IntegrityKeys => print_integrity_keys(&config),
        Command::Run => crate::run(config, metrics, audit_runtime::shutdown_token()).await,
    }
}

/// `migrate --layout/--cluster/--shard-url`: what they override in `[clickhouse]`.
fn override_clickhouse(
    clickhouse: &mut ClickHouseConfig,
    layout: Option<LayoutArg>,
    cluster: Option<&str>,
    shard_urls: &[String],
) {
    if let Some(layout) = layout {
        clickhouse.layout = layout.into();
    }
    if let Some(cluster) = cluster {
        clickhouse.cluster = cluster.to_owned();
    }
    if !shard_urls.is_empty() {
        clickhouse.shard_urls = shard_urls.to_vec();
    }
}

/// `migrate --print-sql`: every statement a migration of an empty database runs.
fn print_migration_sql(config: &IndexerConfig) -> anyhow::Result<()> {
    let layout = config.clickhouse.schema_layout();
    let mut stdout = std::io::stdout().lock();
    for statement in audit_store::migrations::script(&config.clickhouse.database, &layout) {
        writeln!(stdout, "{statement};\n")?;
    }
    Ok(())
}

/// `integrity-keys`: the public keys of `integrity.signing_keys`, one per line.
fn print_integrity_keys(config: &IndexerConfig) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for entry in config.integrity.keys()?.public_keys().entries() {
        writeln!(stdout, "{entry}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn migrate_flags_override_the_clickhouse_section() {
        let cli = Cli::try_parse_from([
            "indexer",
            "migrate",
            "--layout",
            "sharded",
            "--cluster",
            "audit",
            "--shard-url",
            "http://ch-1:8123",
            "--shard-url",
            "http://ch-2:8123",
        ])
        .expect("valid arguments");
        let Some(Command::Migrate {
            layout,
            cluster,
            shard_urls,
            ..
        }) = cli.command
        else {
            panic!("not migrate: {:?}", cli.command);
        };
        let mut clickhouse: ClickHouseConfig =
            serde_json::from_value(serde_json::json!({"url": "http://127.0.0.1:8123"}))
                .expect("a [clickhouse] section");
        override_clickhouse(&mut clickhouse, layout, cluster.as_deref(), &shard_urls);
        assert_eq!(clickhouse.layout, Layout::Sharded);
        assert_eq!(clickhouse.cluster, "audit");
        assert_eq!(
            clickhouse.shard_urls,
            ["http://ch-1:8123", "http://ch-2:8123"]
        );

        // Without the flags the file's section is kept.
        let before = clickhouse.clone();
        override_clickhouse(&mut clickhouse, None, None, &[]);
        assert_eq!(format!("{clickhouse:?}"), format!("{before:?}"));
    }
}
