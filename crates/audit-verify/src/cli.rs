//! The `audit-verify` command line: its arguments, their help, and the exit code of a check.
//! The binary only parses the arguments and runs [`main_with`] (see `main.rs`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::run::{Inputs, run};
use crate::verify::Options;

const AFTER_HELP: &str = "\
Checks, in order (docs/integrity.md, \"Verifying an export\"):
  1. every digest of the bundle: the note parses and names the organization; the signature
     verifies under its key_id in YOUR keys file; seq has no gap; prev is the previous
     digest's hash; root and count are recomputed from the window's leaves;
  2. with --head: it verifies and the chain reaches it (else truncated / head_mismatch);
     without (or with an older one): the newest digest was sealed at most two windows
     before the bundle was made (else not_sealed_recently);
  3. every export line: its leaf is a leaf of some window, else altered (a leaf has its id)
     or inserted (or unreadable: not even a JSON event; the export is the evidence under
     check, so this is a finding, not an input error); the same (id, occurred_at) twice is
     duplicated; the bundle's id/occurred_at beside a found leaf equal the event's own
     (else leaf_metadata: that listing is not signed);
  4. every leaf with occurred_at in the bundle's [since, until): its event is in the export,
     else expired by retention (occurred_at + retention_days of the newest digest <= now;
     reported, not a finding) or deleted.

Output: one line per finding (kind, window seq, event id, what), the windows with events
expired by retention, the throughput, then `intact` or `NOT intact: N findings`.

Finding kinds: bad_digest, unknown_key, bad_signature, missing_window, broken_chain,
count_mismatch, root_mismatch, bad_head, truncated, head_mismatch, not_sealed_recently,
altered, inserted, duplicated, deleted, unreadable, leaf_metadata.

Exit codes: 0 intact; 1 findings; 2 the check could not be made (bad arguments, an
unreadable file, malformed JSON in the keys, bundle or head file: the file and line are named).";

#[derive(Debug, Parser)]
#[command(
    name = "audit-verify",
    version,
    about = "Verifies an audit-log export against its signed integrity digests: prints `intact` or exactly what is wrong.",
    after_long_help = AFTER_HELP
)]
pub struct Cli {
    /// The NDJSON export of one organization (GET /v1/orgs/{org}/events/export?format=ndjson),
    /// one event per line, exactly as served; `-` reads standard input. Streamed.
    #[arg(long, value_name = "EVENTS.ndjson")]
    pub export: PathBuf,
    /// The integrity bundle for the same range (GET /v1/orgs/{org}/integrity/bundle?since&until):
    /// the digests and leaves of the windows that can hold the range's events, up to the newest.
    #[arg(long, value_name = "BUNDLE.json")]
    pub bundle: PathBuf,
    /// The public keys, as served by GET /v1/integrity/keys, from a copy you trust. Digests are
    /// only ever checked against these keys, never against anything in the bundle.
    #[arg(long, value_name = "KEYS.json")]
    pub keys: PathBuf,
    /// A digest you hold from outside ClickHouse (a message of the Kafka topic
    /// audit.integrity.v1, or from your SIEM), as JSON: proves the newest windows were not cut.
    #[arg(long, value_name = "DIGEST.json")]
    pub head: Option<PathBuf>,
    /// The time of the check (RFC 3339), which decides expiry by retention. Default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub now: Option<OffsetDateTime>,
    /// The indexer's integrity.window_secs, used to judge "not sealed recently" without --head.
    /// Default: the median interval between the bundle's seals (300 with fewer than two).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    pub window_secs: Option<u32>,
    /// Findings listed one by one; beyond that they are counted by kind.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_findings: usize,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `--now` that is not an RFC 3339 time (clap prints it after the argument's name).
#[derive(Debug, thiserror::Error)]
#[error("not an RFC 3339 time ({0}), e.g. 2026-12-03T00:00:00Z")]
pub struct NotRfc3339(time::error::Parse);

fn parse_time(text: &str) -> Result<OffsetDateTime, NotRfc3339> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(NotRfc3339)
}

impl Cli {
    /// What to check, and how (`--now` defaults to the current time).
    pub fn into_inputs(self) -> Inputs {
        Inputs {
            export: self.export,
            bundle: self.bundle,
            keys: self.keys,
            head: self.head,
            options: Options {
                now: self.now.unwrap_or_else(OffsetDateTime::now_utc),
                window_length: self
                    .window_secs
                    .map(|secs| Duration::seconds(i64::from(secs))),
                max_findings: self.max_findings,
            },
            json: self.json,
        }
    }
}

/// Runs the check, writes the report to stdout and returns the exit code: 0 intact, 1
/// findings, 2 the check could not be made (the reason goes to stderr).
pub fn main_with(cli: Cli) -> ExitCode {
    let inputs = cli.into_inputs();
    let mut stdout = std::io::stdout().lock();
    match run(&inputs, &mut stdout) {
        Ok(report) if report.is_intact() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(error) => {
            let _ = stdout.flush();
            eprintln!("audit-verify: {error}");
            ExitCode::from(2)
        }
    }
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
    fn the_defaults_fill_the_options() {
        let cli = Cli::try_parse_from([
            "audit-verify",
            "--export",
            "-",
            "--bundle",
            "b.json",
            "--keys",
            "k.json",
            "--now",
            "2026-12-03T00:00:00Z",
        ])
        .expect("valid arguments");
        let inputs = cli.into_inputs();
        assert_eq!(inputs.options.now.unix_timestamp(), 1_796_256_000);
        assert_eq!(inputs.options.window_length, None);
        assert_eq!(inputs.options.max_findings, 10_000);
        assert!(!inputs.json);
        let error = Cli::try_parse_from(["audit-verify", "--now", "yesterday"]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not an RFC 3339 time (the 'year' component could not be parsed), e.g. 2026-12-03T00:00:00Z"),
            "{error}"
        );
    }
}
