//! `forwarder`: audit events → SIEM destinations. See the library docs for the guarantees.

// mimalloc, tuned for RSS: see `audit_runtime::alloc`.
audit_runtime::global_allocator!();

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use forwarder::{ForwarderConfig, ReplayRequest};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Parser)]
#[command(
    name = "forwarder",
    version,
    about = "Forwards Enterprise organizations' audit events to their SIEMs (Splunk HEC, Datadog, Wazuh, webhooks)."
)]
struct Cli {
    /// Configuration file (TOML). Environment variables `FORWARDER__SECTION__KEY` override it.
    #[arg(
        long,
        short,
        env = "FORWARDER_CONFIG",
        default_value = "config/forwarder.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume and forward (the default).
    Run,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Re-send dead-lettered events of one organization and destination (by `occurred_at`).
    Replay {
        /// Organization id.
        #[arg(long)]
        org: String,
        /// Destination id (`dst_…`).
        #[arg(long)]
        destination: String,
        /// Events that occurred at or after this time (RFC 3339, e.g. 2026-11-26T00:00:00Z).
        #[arg(long, value_parser = parse_time)]
        since: OffsetDateTime,
        /// Events that occurred before this time (RFC 3339); default: now.
        #[arg(long, value_parser = parse_time)]
        until: Option<OffsetDateTime>,
        /// Only count what would be re-sent.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|error| format!("not RFC 3339: {error}"))
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
    eprintln!("forwarder: {error:#}");
    std::process::ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config: ForwarderConfig = audit_runtime::config::load(Some(&cli.config), "FORWARDER")?;
    config.validate()?;
    let metrics = audit_runtime::telemetry::init(&config.telemetry, "forwarder");
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            tracing::info!(config = %cli.config.display(), "configuration is valid");
            Ok(())
        }
        Command::Replay {
            org,
            destination,
            since,
            until,
            dry_run,
        } => {
            let request = ReplayRequest {
                org_id: org,
                destination_id: destination,
                since,
                until: until.unwrap_or_else(OffsetDateTime::now_utc),
                dry_run,
            };
            let report = forwarder::replay(&config, &request).await?;
            tracing::info!(
                scanned = report.scanned,
                matched = report.matched,
                duplicates = report.duplicates,
                requeued = report.requeued,
                dry_run,
                "replay done"
            );
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string(&report)?);
            }
            Ok(())
        }
        Command::Run => {
            forwarder::run(config, metrics, audit_runtime::shutdown_token()).await?;
            Ok(())
        }
    }
}
