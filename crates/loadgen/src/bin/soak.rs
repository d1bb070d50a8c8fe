//! `soak` (make soak): the whole system under mixed load and chaos, then a ledger.
//!
//! Two gateways, two indexers and two forwarders (release binaries) run against a soak
//! instance of Kafka and ClickHouse. Load goes through both gateways (batches) and straight
//! to Kafka across many organizations; the first organizations are Enterprise with a webhook
//! and a Splunk HEC destination each (fake receivers in this process, so their record survives
//! their own outages). A chaos schedule kills and restarts each service, stops ClickHouse and
//! the receivers for a while, throttles a receiver with 429s, and changes settings.
//!
//! With `--cluster` (`SOAK_CLUSTER=1 make soak`) it runs on the cluster topology instead: a
//! 3-node Kafka (topics at replication factor 3, min ISR 2) and 2 ClickHouse shards (the sharded
//! layout); the ClickHouse step then stops one shard, and a further step SIGKILLs the Kafka
//! node that is the active controller (and leads partitions), restarting it after 10 s.
//!
//! The ledger then compares, per event id: acknowledged (gateway 2xx or Kafka ack) → present
//! exactly once in ClickHouse query results → delivered at least once to each destination it
//! matches (or dead-lettered with a reason). The process exits non-zero on any loss.
//!
//! This file holds the command line, the soak's shared state and the wiring; the parts are
//! modules: [`services`] (starting, killing and restarting services and engines),
//! [`operator`] (the operator API: organizations, destinations, keys), [`load`] (the load and
//! the sampler), [`chaos`] (the schedule), [`hostile_step`] (one chaos step of its own) and
//! [`ledger`] (the per-event verdict).

#![allow(clippy::print_stdout)]

#[path = "soak/chaos.rs"]
mod chaos;
#[path = "soak/hostile_step.rs"]
mod hostile_step;
#[path = "soak/ledger.rs"]
mod ledger;
#[path = "soak/load.rs"]
mod load;
#[path = "soak/operator.rs"]
mod operator;
#[path = "soak/services.rs"]
mod services;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook, SIGNING_SECRET};
use clap::Parser;
use loadgen::{BenchService, free_port};
use serde_json::Value;
use tokio::sync::Mutex;

use chaos::chaos;
use ledger::ledger;
use load::{direct_load, gateway_load, sampler};
use operator::{producer_key, seed};

/// The secret rotated in during the soak (fakes accept both).
const ROTATED_SECRET: &str = "whsec_cm90YXRlZC1zb2FrLXNlY3JldC0wMTIzNDU2Nzg5YWI=";
const HEC_TOKEN: &str = "11111111-2222-3333-4444-555555555555";

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    about = "Whole-system soak with chaos and a per-event ledger (make soak)."
)]
struct Cli {
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    #[arg(long, default_value = "127.0.0.1:59192")]
    kafka: String,
    #[arg(long, default_value = "http://127.0.0.1:58223")]
    clickhouse: String,
    /// The soak ClickHouse instance's state dir and ports, to stop and start it.
    #[arg(long, default_value = ".local/soak")]
    state_dir: PathBuf,
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Organizations; the first tenth are Enterprise with two destinations each.
    #[arg(long, default_value_t = 200)]
    orgs: usize,
    /// Events per second through the gateways (plus a quarter of that straight to Kafka).
    #[arg(long, default_value_t = 800)]
    rate: u64,
    /// The cluster topology: `--kafka` lists every broker, `--shard-urls` every ClickHouse
    /// shard of the cluster `audit_shards` (the deploy/local scripts are driven through the
    /// environment soak.sh exports: KAFKA_NODES, CH_SHARDS, ports).
    #[arg(long)]
    cluster: bool,
    #[arg(long, value_delimiter = ',')]
    shard_urls: Vec<String>,
}

struct Soak {
    cli: Cli,
    id: String,
    http: reqwest::Client,
    services: Mutex<BTreeMap<String, BenchService>>,
    log_dir: PathBuf,
    ledger: Mutex<HashMap<String, (String, String)>>,
    unacknowledged: std::sync::atomic::AtomicU64,
    peak_rss_kb: Mutex<BTreeMap<String, u64>>,
    max_lag: Mutex<BTreeMap<String, f64>>,
    chaos_log: Mutex<Vec<String>>,
    /// Backfilled events beyond their organization's retention, produced straight to Kafka:
    /// never stored, dead-lettered with the reason.
    beyond_retention: Mutex<Vec<String>>,
}

impl Soak {
    /// An acknowledged event the ledger expects stored (and delivered, if it matches).
    async fn remember(&self, event: &Value) {
        self.ledger.lock().await.insert(
            event["id"].as_str().unwrap_or_default().to_string(),
            (
                event["org_id"].as_str().unwrap_or_default().to_string(),
                event["category"].as_str().unwrap_or_default().to_string(),
            ),
        );
    }

    /// Notes a chaos step for the report (and prints it).
    async fn note(&self, what: String) {
        eprintln!("soak: chaos: {what}");
        self.chaos_log.lock().await.push(what);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let id = format!("soak{:06x}", rand::random::<u32>() & 0xff_ffff);
    let log_dir = cli.state_dir.join("logs").join(&id);
    std::fs::create_dir_all(&log_dir)?;
    let soak = Arc::new(Soak {
        id,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        services: Mutex::new(BTreeMap::new()),
        log_dir,
        ledger: Mutex::new(HashMap::new()),
        unacknowledged: Default::default(),
        peak_rss_kb: Mutex::new(BTreeMap::new()),
        max_lag: Mutex::new(BTreeMap::new()),
        chaos_log: Mutex::new(Vec::new()),
        beyond_retention: Mutex::new(Vec::new()),
        cli,
    });
    let secrets = vec![SIGNING_SECRET.to_string(), ROTATED_SECRET.to_string()];
    let webhook = Arc::new(
        FakeWebhook::start(WebhookSetup {
            signing_secrets: secrets.clone(),
            record_items: false,
            port: 0,
        })
        .await,
    );
    let hec = Arc::new(
        FakeHec::start(HecSetup {
            token: HEC_TOKEN.into(),
            signing_secrets: secrets,
            record_items: false,
            ..HecSetup::default()
        })
        .await,
    );
    eprintln!(
        "soak: namespace {}, logs in {}",
        soak.id,
        soak.log_dir.display()
    );

    for name in [
        "indexer-1",
        "indexer-2",
        "gateway-1",
        "gateway-2",
        "forwarder-1",
        "forwarder-2",
    ] {
        soak.start(name, free_port()).await?;
    }
    let gateways = [
        soak.port_of("gateway-1").await,
        soak.port_of("gateway-2").await,
    ];
    let enterprise = seed(&soak, gateways[0], &webhook.url(), &hec.url()).await?;
    let key = producer_key(&soak, gateways[0]).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let minutes = soak.cli.minutes;
    let duration = Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, port) in gateways.iter().enumerate() {
        tasks.push(tokio::spawn(gateway_load(
            soak.clone(),
            *port,
            key.clone(),
            stop.clone(),
            index as u64,
        )));
    }
    tasks.push(tokio::spawn(direct_load(soak.clone(), stop.clone())));
    tasks.push(tokio::spawn(sampler(soak.clone(), stop.clone())));
    let chaos = tokio::spawn(chaos(
        soak.clone(),
        webhook.clone(),
        hec.clone(),
        (gateways[0], key.clone()),
        enterprise.clone(),
        stop.clone(),
        duration,
    ));
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let _ = chaos.await;
    for task in tasks {
        let _ = task.await;
    }
    eprintln!(
        "soak: load stopped after {:.1?}; waiting for the pipeline to drain…",
        started.elapsed()
    );
    let report = ledger(&soak, &webhook, &hec, &enterprise).await?;
    let mut services = soak.services.lock().await;
    for service in services.values_mut() {
        service.stop();
    }
    println!("{report}");
    if report.contains("FAILED") {
        bail!("the soak found lost events");
    }
    Ok(())
}
