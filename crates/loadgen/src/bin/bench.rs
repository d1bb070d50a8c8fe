//! `bench`: the benchmarks behind `make bench`. Starts the release services against the bench
//! instance of Kafka and ClickHouse (started by `deploy/local/bench.sh`), drives them from this
//! process, and prints one Markdown table (events/s, p50/p99 latency, peak RSS).
//!
//! * `ingest`  — gateway: batches of 100 and 1,000, single-event requests, latency at 2,000 req/s.
//! * `indexer` — indexer throughput from a pre-filled topic beside ClickHouse's own Kafka engine
//!   and the insert ceiling ([`peers`]); freshness at a steady 5,000 events/s, and through a
//!   SIGKILL of the indexer ([`crash`]).
//! * `read`    — first-page latency on 10M events across 1,000 organizations; export of 1M rows;
//!   indexer freshness while one tenant hammers reads.
//!
//! This file holds the command line, the scenario's namespace and the service launcher; each
//! benchmark is a module: [`ingest`] (with its closed- and open-loop load), [`indexer`], [`read`].

#![allow(clippy::print_stdout)]

#[path = "bench/crash.rs"]
mod crash;
#[path = "bench/indexer.rs"]
mod indexer;
#[path = "bench/ingest.rs"]
mod ingest;
#[path = "bench/peers.rs"]
mod peers;
#[path = "bench/read.rs"]
mod read;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadgen::{BenchInstance, BenchRow, BenchService, clickhouse, free_port, print_table};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmarks of the audit-log pipeline (run through `make bench`)."
)]
struct Cli {
    #[command(flatten)]
    instance: BenchInstance,
    /// Seconds per throughput scenario.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// The `[topics] integrity_key` the services use (the dev key of config/*.toml).
    #[arg(long, default_value = "dev-only-integrity-key-change-me-0123456789")]
    integrity_key: String,
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum Which {
    /// Gateway ingest.
    Ingest,
    /// Indexer throughput and end-to-end freshness.
    Indexer {
        /// Events pre-filled into the topic.
        #[arg(long, default_value_t = 2_000_000)]
        events: u64,
        /// Skip the peer, ceiling and crash rows (A/B runs of the indexer alone).
        #[arg(long)]
        no_peers: bool,
    },
    /// Freshness through an indexer SIGKILL + restart alone, `runs` times (the crash rows of
    /// `indexer`, repeated to look into a run that stalls).
    Crash {
        #[arg(long, default_value_t = 1)]
        runs: u32,
        /// With static group membership (`group_instance_id`) instead of dynamic.
        #[arg(long = "static")]
        static_member: bool,
    },
    /// Read API latency and export throughput.
    Read {
        /// Events generated in ClickHouse.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
    },
}

/// A private namespace (topics, group, database) for one scenario.
struct Namespace {
    id: String,
    kafka: String,
    clickhouse: String,
}

impl Namespace {
    fn new(cli: &Cli, name: &str) -> Self {
        let id = format!("{name}{:06x}", rand::random::<u32>() & 0xff_ffff);
        Self {
            id,
            kafka: cli.instance.kafka.clone(),
            clickhouse: cli.instance.clickhouse.clone(),
        }
    }

    fn events_topic(&self) -> String {
        format!("{}.audit.events.v1", self.id)
    }

    fn database(&self) -> String {
        format!("bench_{}", self.id)
    }

    /// Drops the scenario's database (its rows are not kept between runs).
    async fn drop_database(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.database());
        clickhouse(http, &self.clickhouse, "default", &sql).await?;
        Ok(())
    }

    fn env(&self, prefix: &str, port: u16) -> Vec<(String, String)> {
        let var = |k: &str| format!("{prefix}__{k}");
        vec![
            (var("KAFKA__BROKERS"), self.kafka.clone()),
            (var("TOPICS__EVENTS"), self.events_topic()),
            (
                var("TOPICS__DEAD_LETTER"),
                format!("{}.audit.events.dlq.v1", self.id),
            ),
            (
                var("TOPICS__SETTINGS"),
                format!("{}.audit.settings.v1", self.id),
            ),
            (
                var("TOPICS__FORWARDER_RETRY"),
                format!("{}.audit.forwarder.retry.v1", self.id),
            ),
            (var("CLICKHOUSE__URL"), self.clickhouse.clone()),
            (var("CLICKHOUSE__DATABASE"), self.database()),
            (var("HTTP__LISTEN"), format!("127.0.0.1:{port}")),
            (var("TELEMETRY__LOG_FORMAT"), "json".into()),
        ]
    }
}

struct Bench {
    cli: Cli,
    http: reqwest::Client,
    rows: Vec<BenchRow>,
}

impl Bench {
    async fn start(
        &self,
        ns: &Namespace,
        binary: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<BenchService> {
        let port = free_port();
        let prefix = binary.to_uppercase();
        let mut env = ns.env(&prefix, port);
        if binary == "indexer" {
            env.push((
                "INDEXER__CONSUMER__GROUP_ID".into(),
                format!("{}-indexer", ns.id),
            ));
            env.push(("INDEXER__MIGRATE_ON_START".into(), "true".into()));
        }
        for (key, value) in extra {
            env.push(((*key).into(), (*value).into()));
        }
        let log_name = format!("{}-{binary}.log", ns.id);
        self.cli
            .instance
            .start_service(binary, port, &env, &log_name, Duration::from_secs(90))
            .await
    }

    async fn producer_key(&self, gateway: &BenchService) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/admin/producer-keys", gateway.url()))
            .bearer_auth("dev-operator-token")
            .json(&json!({"name": "bench", "categories": ["*"]}))
            .send()
            .await?;
        let body: Value = response.json().await?;
        body["api_key"]
            .as_str()
            .map(str::to_string)
            .context("no api_key in the answer")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let which = cli.which;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mut bench = Bench {
        cli,
        http,
        rows: Vec::new(),
    };
    match which {
        Which::Ingest => ingest::ingest(&mut bench).await?,
        Which::Indexer { events, no_peers } => {
            indexer::indexer(&mut bench, events, !no_peers).await?
        }
        Which::Crash {
            runs,
            static_member,
        } => {
            for _ in 0..runs {
                crash::crash_freshness(&mut bench, static_member).await?;
            }
        }
        Which::Read { events } => read::read(&mut bench, events).await?,
    }
    print_table(&bench.rows);
    Ok(())
}

/// Rows in the scenario's `events` table (0 when ClickHouse does not answer).
async fn count_rows(bench: &Bench, ns: &Namespace) -> u64 {
    clickhouse(
        &bench.http,
        &ns.clickhouse,
        &ns.database(),
        "SELECT count() FROM events",
    )
    .await
    .ok()
    .and_then(|t| t.trim().parse().ok())
    .unwrap_or(0)
}
