//! `audit-verify`: parses the arguments and runs the check; see the library docs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use audit_verify::{Inputs, Options, run};
use clap::Parser;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

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
struct Cli {
    /// The NDJSON export of one organization (GET /v1/orgs/{org}/events/export?format=ndjson),
    /// one event per line, exactly as served; `-` reads standard input. Streamed.
    #[arg(long, value_name = "EVENTS.ndjson")]
    export: PathBuf,
    /// The integrity bundle for the same range (GET /v1/orgs/{org}/integrity/bundle?since&until):
    /// the digests and leaves of the windows that can hold the range's events, up to the newest.
    #[arg(long, value_name = "BUNDLE.json")]
    bundle: PathBuf,
    /// The public keys, as served by GET /v1/integrity/keys, from a copy you trust. Digests are
    /// only ever checked against these keys, never against anything in the bundle.
    #[arg(long, value_name = "KEYS.json")]
    keys: PathBuf,
    /// A digest you hold from outside ClickHouse (a message of the Kafka topic
    /// audit.integrity.v1, or from your SIEM), as JSON: proves the newest windows were not cut.
    #[arg(long, value_name = "DIGEST.json")]
    head: Option<PathBuf>,
    /// The time of the check (RFC 3339), which decides expiry by retention. Default: now.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    now: Option<OffsetDateTime>,
    /// The indexer's integrity.window_secs, used to judge "not sealed recently" without --head.
    /// Default: the median interval between the bundle's seals (300 with fewer than two).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u32).range(1..))]
    window_secs: Option<u32>,
    /// Findings listed one by one; beyond that they are counted by kind.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_findings: usize,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_time(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|error| format!("not an RFC 3339 time ({error}), e.g. 2026-12-03T00:00:00Z"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let inputs = Inputs {
        export: cli.export,
        bundle: cli.bundle,
        keys: cli.keys,
        head: cli.head,
        options: Options {
            now: cli.now.unwrap_or_else(OffsetDateTime::now_utc),
            window_length: cli
                .window_secs
                .map(|secs| Duration::seconds(i64::from(secs))),
            max_findings: cli.max_findings,
        },
        json: cli.json,
    };
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
