//! `bench-forwarder`: the forwarder's benchmark (part of `make bench`).
//!
//! 1. Starts the fake receivers (`fake-receivers --ids-only`) and a gateway (only to create the
//!    organizations and their destinations through the operator API, as an operator would;
//!    it is stopped before measuring).
//! 2. **Throughput**, per destination type (Splunk HEC, webhook): pre-fills an events topic
//!    (6 partitions) with `--events` events of one Enterprise organization, starts the release
//!    `forwarder` on it, and measures events/s from the first to the last event the receiver
//!    accepted (batching and Standard Webhooks signing on, JSON, no compression), the
//!    forwarder's peak RSS, and the CPU time per event of the forwarder and of the receivers
//!    (they share the cores, so a receiver with more to parse slows the measured rate too).
//!    The `hec-ocsf` and `webhook-ocsf` runs measure the same with the destination in the
//!    OCSF format (each event mapped to its OCSF object before sending); `hec-direct` with a
//!    direct producer's events (untagged: validated by the forwarder).
//!    Each throughput row is followed by its **peer** (unless `--no-peers`): a bare HTTP client
//!    posting the same batches (same events, encoding, sizes, signatures), built before the
//!    clock, one request at a time, to the same receiver; its rate and forwarder / bare
//!    (issue 19's goal: ≥ 0.7). See [`peer`].
//! 3. **Latency**: a fresh forwarder on an empty topic; once one warm-up event went through
//!    (the consumer group has assigned the partition), events produced at a fixed `--rate`
//!    (1,000/s) for `--latency-secs`; latency = receiver arrival − produce call, per event (ids
//!    matched); p50/p99 and peak RSS.
//! 4. **Neighbour** (isolation): the same latency measurement for one organization at
//!    `--neighbour-rate` (500/s), sharing one partition with another organization at the same
//!    rate, twice: with that neighbour's webhook healthy, then hung (it answers after 20 s, so
//!    every request times out). Prints both p99s and their ratio.
//!
//! Everything runs on this machine: Kafka, the forwarder, the receivers and this process share
//! the cores. Run from the repository root (the services read `config/`).
//!
//! This file holds the command line and the order of the runs; the parts are modules:
//! [`process`] (child processes), [`kafka`] (topics and producing events as the gateway or a
//! direct producer would), [`services`] (provisioning through a gateway, the forwarder, the
//! receivers' counters), [`throughput`], [`peer`] and [`latency`] (the measurements).

#![allow(clippy::print_stdout)]

#[path = "bench-forwarder/kafka.rs"]
mod kafka;
#[path = "bench-forwarder/latency.rs"]
mod latency;
#[path = "bench-forwarder/peer.rs"]
mod peer;
#[path = "bench-forwarder/process.rs"]
mod process;
#[path = "bench-forwarder/services.rs"]
mod services;
#[path = "bench-forwarder/throughput.rs"]
mod throughput;

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use audit_core::integrity::IntegrityKey;
use clap::Parser;
use loadgen::print_table;

use kafka::Topics;
use latency::{latency_run, neighbour_run};
use peer::Peer;
use process::{Process, wait_ready};
use services::provision;
use throughput::{Target, throughput_run};

#[derive(Debug, Parser)]
#[command(
    name = "bench-forwarder",
    about = "Forwarder benchmark: events/s to Splunk HEC and webhook fakes, p99 latency at a fixed rate, peak RSS."
)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:19092")]
    brokers: String,
    /// Where the release binaries are (forwarder, gateway, fake-receivers).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Events pre-filled for each throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Offered rate of the latency run (events/s).
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Duration of the latency run (seconds).
    #[arg(long, default_value_t = 30)]
    latency_secs: u64,
    /// Rate of each organization in the neighbour runs (events/s).
    #[arg(long, default_value_t = 500)]
    neighbour_rate: u64,
    /// Duration of each neighbour run (seconds).
    #[arg(long, default_value_t = 60)]
    neighbour_secs: u64,
    /// Which runs (comma separated): hec, webhook, latency and neighbour use events as the
    /// gateway publishes them (integrity-tagged: not validated again); hec-direct uses events of
    /// a direct producer (untagged: the forwarder runs the full validator on each);
    /// hec-ocsf and webhook-ocsf are hec and webhook with destinations in the OCSF format.
    #[arg(
        long,
        default_value = "hec,webhook,latency,neighbour,hec-direct",
        value_delimiter = ','
    )]
    runs: Vec<String>,
    /// The integrity key shared with the forwarder (`[topics] integrity_key`).
    #[arg(long, default_value = "dev-only-integrity-key-change-me-0123456789")]
    integrity_key: String,
    /// Longest wait for a throughput run to finish (seconds).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Writes each latency run's `sent_us,latency_us` per event to `<dir>/<run>.csv`.
    #[arg(long)]
    latency_trace: Option<PathBuf>,
    /// Extra forwarder settings, e.g. `FORWARDER__DELIVERY__LINGER_MS=100` (repeatable; not
    /// applied to the peers).
    #[arg(long = "forwarder-env", value_parser = parse_env)]
    forwarder_env: Vec<(String, String)>,
    /// Skips the peer row after each throughput run (a bare HTTP client posting the same
    /// batches).
    #[arg(long)]
    no_peers: bool,
}

fn parse_env(text: &str) -> Result<(String, String)> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("expected KEY=VALUE"))?;
    if !key.starts_with("FORWARDER__") {
        bail!("the key must start with FORWARDER__");
    }
    Ok((key.to_string(), value.to_string()))
}

const SIGNING_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";
const OPERATOR_TOKEN: &str = "dev-operator-token";

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::new();
    let prefix = format!("bench{:08x}", rand::random::<u32>());
    let topics = Topics {
        prefix: prefix.clone(),
    };
    // The gateway creates the settings, dead-letter and retry topics (compacted settings).
    let ports: [u16; 5] = loadgen::free_ports();
    let port_args: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut receivers = Process::spawn(
        "fake-receivers",
        &cli.bin_dir.join("fake-receivers"),
        &[
            "--ids-only",
            "--hec-port",
            &port_args[0],
            "--datadog-port",
            &port_args[1],
            "--wazuh-port",
            &port_args[2],
            "--webhook-port",
            &port_args[3],
            "--hung-webhook-port",
            &port_args[4],
        ],
        &[],
        Path::new(&format!("/tmp/{prefix}-receivers.log")),
    )?;
    let hec = format!("http://127.0.0.1:{}", ports[0]);
    let webhook = format!("http://127.0.0.1:{}", ports[3]);
    let hung_webhook = format!("http://127.0.0.1:{}", ports[4]);
    wait_ready(&http, &format!("{hec}/_fake/stats"), &mut receivers).await?;
    wait_ready(&http, &format!("{webhook}/_fake/stats"), &mut receivers).await?;
    provision(&cli, &topics, &http, &hec, &webhook, &hung_webhook).await?;

    let key = IntegrityKey::new(&cli.integrity_key)
        .map_err(|reason| anyhow!("--integrity-key {reason}"))?;
    let peer = if cli.no_peers {
        None
    } else {
        Some(Peer::new(&cli, &topics).await?)
    };
    let mut rows = Vec::new();
    for run in &cli.runs {
        let new_rows = match run.as_str() {
            "neighbour" => neighbour_run(&cli, &topics, &http, &hec, Some(&key)).await?,
            "hec" | "hec-direct" | "hec-ocsf" | "webhook" | "webhook-ocsf" => {
                let (kind, receiver) = if run.starts_with("hec") {
                    ("splunk_hec", &hec)
                } else {
                    ("webhook", &webhook)
                };
                // hec-direct: org_bench_hec's destination, with untagged messages, as a direct
                // producer writes them.
                let org = format!(
                    "org_bench_{}",
                    run.trim_end_matches("-direct").replace('-', "_")
                );
                let tag_key = (run != "hec-direct").then_some(&key);
                let target = Target {
                    kind,
                    org: &org,
                    receiver,
                    receiver_pid: receivers.pid(),
                };
                throughput_run(&cli, &topics, &http, &target, tag_key, peer.as_ref()).await?
            }
            "latency" => vec![latency_run(&cli, &topics, &http, &hec, Some(&key)).await?],
            other => bail!(
                "unknown run `{other}` (hec, webhook, latency, neighbour, hec-direct, hec-ocsf, webhook-ocsf)"
            ),
        };
        for row in &new_rows {
            let rss = row
                .peak_rss_mb
                .map_or(String::new(), |mb| format!(" (peak RSS {mb:.0} MB)"));
            println!("bench: {}: {}{rss}", row.name, row.throughput);
        }
        rows.extend(new_rows);
    }
    receivers.stop();
    println!();
    print_table(&rows);
    Ok(())
}
