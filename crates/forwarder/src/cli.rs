//! The command line: `forwarder [--config FILE] [run | check-config | replay …]`. The binary
//! only calls [`main`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Error, ForwarderConfig, ReplayRequest, Result};

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

/// A `--since`/`--until` value that is not an RFC 3339 time.
#[derive(Debug, thiserror::Error)]
#[error("not RFC 3339: {0}")]
struct NotRfc3339(#[from] time::error::Parse);

fn parse_time(text: &str) -> Result<OffsetDateTime, NotRfc3339> {
    Ok(OffsetDateTime::parse(text, &Rfc3339)?)
}

/// Parses the command line, runs the command on a new runtime and reports an error on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = tokio::runtime::Runtime::new()
        .map_err(Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("forwarder: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
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
            let report = crate::replay(&config, &request).await?;
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
                let line = serde_json::to_string(&report)
                    .map_err(|error| Error::Invalid(error.to_string()))?;
                println!("{line}");
            }
            Ok(())
        }
        Command::Run => {
            crate::run(config, metrics, audit_runtime::shutdown_token()).await?;
            Ok(())
        }
    }
}
