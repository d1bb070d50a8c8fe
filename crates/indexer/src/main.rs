//! `indexer`: Kafka → ClickHouse. See the library docs for the delivery guarantee.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
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
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
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
    let config: IndexerConfig = audit_runtime::config::load(Some(&cli.config), "INDEXER")?;
    config.validate()?;
    let metrics = audit_runtime::telemetry::init(&config.telemetry, "indexer");
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            tracing::info!(config = %cli.config.display(), "configuration is valid");
            Ok(())
        }
        Command::Migrate => indexer::migrate(&config).await,
        Command::Run => indexer::run(config, metrics, audit_runtime::shutdown_token()).await,
    }
}
