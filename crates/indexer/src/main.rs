//! `indexer`: Kafka → ClickHouse. See the library docs for the delivery guarantee.

// mimalloc, tuned for RSS: see `audit_runtime::alloc`.
audit_runtime::global_allocator!();

use std::io::Write;
use std::path::PathBuf;

use audit_store::config::Layout;
use clap::{Parser, Subcommand, ValueEnum};
use indexer::IndexerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "indexer",
    version,
    about = "Consumes audit events from Kafka into ClickHouse with per-organization TTL retention."
)]
struct Cli {
    /// Configuration file (TOML). Environment variables `INDEXER__SECTION__KEY` override it.
    #[arg(
        long,
        short,
        env = "INDEXER_CONFIG",
        default_value = "config/indexer.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
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
enum LayoutArg {
    #[value(name = "single_node")]
    SingleNode,
    Replicated,
    Sharded,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return failure(&error.into()),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => failure(&error),
    }
}

fn failure(error: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("indexer: {error:#}");
    std::process::ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config: IndexerConfig = audit_runtime::config::load(Some(&cli.config), "INDEXER")?;
    let command = cli.command.unwrap_or(Command::Run);
    if let Command::Migrate {
        layout,
        cluster,
        shard_urls,
        ..
    } = &command
    {
        if let Some(layout) = layout {
            config.clickhouse.layout = match layout {
                LayoutArg::SingleNode => Layout::SingleNode,
                LayoutArg::Replicated => Layout::Replicated,
                LayoutArg::Sharded => Layout::Sharded,
            };
        }
        if let Some(cluster) = cluster {
            config.clickhouse.cluster.clone_from(cluster);
        }
        if !shard_urls.is_empty() {
            config.clickhouse.shard_urls.clone_from(shard_urls);
        }
    }
    config.validate()?;
    let metrics = audit_runtime::telemetry::init(&config.telemetry, "indexer");
    match command {
        Command::CheckConfig => {
            tracing::info!(config = %cli.config.display(), "configuration is valid");
            Ok(())
        }
        Command::Migrate {
            print_sql: true, ..
        } => {
            let layout = config.clickhouse.schema_layout();
            let mut stdout = std::io::stdout().lock();
            for statement in audit_store::migrations::script(&config.clickhouse.database, &layout) {
                writeln!(stdout, "{statement};\n")?;
            }
            Ok(())
        }
        Command::Migrate { .. } => indexer::migrate(&config).await,
        Command::IntegrityKeys => {
            let mut stdout = std::io::stdout().lock();
            for entry in config.integrity.keys()?.public_keys().entries() {
                writeln!(stdout, "{entry}")?;
            }
            Ok(())
        }
        Command::Run => indexer::run(config, metrics, audit_runtime::shutdown_token()).await,
    }
}
