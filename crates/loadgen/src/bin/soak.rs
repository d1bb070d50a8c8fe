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

#![allow(clippy::print_stdout)]

#[path = "soak/hostile_step.rs"]
mod hostile_step;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook, Injected, SIGNING_SECRET};
use clap::Parser;
use loadgen::{BenchService, clickhouse, free_port, generated_event, rss_kb};
use rdkafka::Message;
use serde_json::{Value, json};
use tokio::sync::Mutex;

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

    fn env(&self, prefix: &str, port: u16) -> Vec<(String, String)> {
        let var = |k: &str| format!("{prefix}__{k}");
        let id = &self.id;
        let mut env = vec![
            (var("KAFKA__BROKERS"), self.cli.kafka.clone()),
            (var("TOPICS__EVENTS"), format!("{id}.audit.events.v1")),
            (
                var("TOPICS__DEAD_LETTER"),
                format!("{id}.audit.events.dlq.v1"),
            ),
            (var("TOPICS__SETTINGS"), format!("{id}.audit.settings.v1")),
            (
                var("TOPICS__FORWARDER_RETRY"),
                format!("{id}.audit.forwarder.retry.v1"),
            ),
            (var("HTTP__LISTEN"), format!("127.0.0.1:{port}")),
        ];
        // The forwarder has no ClickHouse (and refuses unknown configuration keys).
        if prefix != "FORWARDER" {
            env.push((var("CLICKHOUSE__URL"), self.cli.clickhouse.clone()));
            env.push((var("CLICKHOUSE__DATABASE"), format!("soak_{id}")));
        }
        if self.cli.cluster {
            env.push((var("TOPICS__REPLICATION_FACTOR"), "3".into()));
            if prefix != "FORWARDER" {
                let urls: Vec<String> = self
                    .cli
                    .shard_urls
                    .iter()
                    .map(|u| format!("\"{u}\""))
                    .collect();
                env.push((var("CLICKHOUSE__LAYOUT"), "sharded".into()));
                env.push((var("CLICKHOUSE__CLUSTER"), "audit_shards".into()));
                env.push((
                    var("CLICKHOUSE__SHARD_URLS"),
                    format!("[{}]", urls.join(",")),
                ));
            }
        }
        match prefix {
            "INDEXER" => {
                env.push((var("CONSUMER__GROUP_ID"), format!("{id}-indexer")));
                env.push((var("MIGRATE_ON_START"), "true".into()));
                env.push((var("RETRY__MAX_BACKOFF_MS"), "2000".into()));
            }
            "FORWARDER" => {
                env.push((var("CONSUMER__GROUP_ID"), format!("{id}-forwarder")));
                env.push((var("RETRY__INITIAL_BACKOFF_MS"), "500".into()));
                env.push((var("RETRY__MAX_BACKOFF_MS"), "5000".into()));
                env.push((var("RETRY__IN_MEMORY_BUDGET_MS"), "5000".into()));
                env.push((var("RETRY__PAUSED_RECHECK_SECS"), "10".into()));
            }
            _ => {}
        }
        env
    }

    /// Starts (or restarts, same port) service `name` = `<binary>-<n>`.
    async fn start(&self, name: &str, port: u16) -> anyhow::Result<()> {
        let binary = name.split('-').next().unwrap_or(name);
        let env = self.env(&binary.to_uppercase(), port);
        let log = self.log_dir.join(format!("{name}.log"));
        let mut service =
            BenchService::start(name, &self.cli.bin_dir.join(binary), port, &env, &log)?;
        service
            .wait_ready(Duration::from_secs(120))
            .await
            .with_context(|| format!("{name}: see {}", log.display()))?;
        self.services.lock().await.insert(name.to_string(), service);
        Ok(())
    }

    async fn port_of(&self, name: &str) -> u16 {
        self.services
            .lock()
            .await
            .get(name)
            .map(|s| s.port)
            .unwrap_or(0)
    }

    async fn kill(&self, name: &str) {
        if let Some(mut service) = self.services.lock().await.remove(name) {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(service.pid().to_string())
                .status();
            service.stop();
        }
    }

    async fn terminate(&self, name: &str) {
        if let Some(mut service) = self.services.lock().await.remove(name) {
            service.stop();
        }
    }

    async fn note(&self, what: String) {
        eprintln!("soak: chaos: {what}");
        self.chaos_log.lock().await.push(what);
    }

    /// Runs deploy/local/kafka.sh (its ports and node count come from soak.sh's environment).
    fn kafka_script(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = std::process::Command::new("deploy/local/kafka.sh")
            .args(args)
            .env("STATE_DIR", &self.cli.state_dir)
            .output()?;
        if !output.status.success() {
            bail!(
                "kafka.sh {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn clickhouse_script(&self, action: &str) -> anyhow::Result<()> {
        let port = self
            .cli
            .clickhouse
            .rsplit(':')
            .next()
            .unwrap_or("58223")
            .to_string();
        let status = std::process::Command::new("deploy/local/clickhouse.sh")
            .args(action.split_whitespace())
            .env("STATE_DIR", &self.cli.state_dir)
            .env("CH_HTTP_PORT", &port)
            .env(
                "CH_TCP_PORT",
                std::env::var("CH_TCP_PORT").unwrap_or_else(|_| "59200".into()),
            )
            .status()?;
        if !status.success() {
            bail!("clickhouse.sh {action} failed");
        }
        Ok(())
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

async fn admin(
    soak: &Soak,
    port: u16,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = soak
        .http
        .request(method, format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth("dev-operator-token");
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{path}: {status} {body}");
    }
    Ok(body)
}

async fn producer_key(soak: &Soak, port: u16) -> anyhow::Result<String> {
    let body = admin(
        soak,
        port,
        reqwest::Method::POST,
        "/v1/admin/producer-keys",
        Some(json!({"name": "soak", "categories": ["*"]})),
    )
    .await?;
    body["api_key"]
        .as_str()
        .map(str::to_string)
        .context("no api_key")
}

/// Enterprise organizations and their destinations: (org, webhook id, hec id).
async fn seed(
    soak: &Soak,
    port: u16,
    webhook_url: &str,
    hec_url: &str,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let mut enterprise = Vec::new();
    for n in 0..soak.cli.orgs {
        let org = format!("org_{n:03}");
        let plan = if n < soak.cli.orgs / 10 {
            "enterprise"
        } else if n % 2 == 0 {
            "team"
        } else {
            "free"
        };
        admin(
            soak,
            port,
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(json!({"plan": plan})),
        )
        .await?;
        if plan != "enterprise" {
            continue;
        }
        let webhook = admin(
            soak,
            port,
            reqwest::Method::POST,
            &format!("/v1/admin/orgs/{org}/destinations"),
            Some(json!({"name": "soc webhook", "signing_secret": SIGNING_SECRET, "config": {"type": "webhook", "url": format!("{webhook_url}/audit/{org}")}})),
        )
        .await?;
        let hec = admin(
            soak,
            port,
            reqwest::Method::POST,
            &format!("/v1/admin/orgs/{org}/destinations"),
            Some(json!({"name": "splunk", "signing_secret": SIGNING_SECRET, "filters": {"categories": ["authentication", "security"]},
                        "config": {"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}})),
        )
        .await?;
        enterprise.push((
            org,
            webhook["id"].as_str().unwrap_or_default().to_string(),
            hec["id"].as_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(enterprise)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn gateway_load(soak: Arc<Soak>, port: u16, key: String, stop: Arc<AtomicBool>, seed: u64) {
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let per_tick = (soak.cli.rate / 2 / 20).max(1); // 20 ticks a second per gateway
    let mut n = seed * 1_000_000_000;
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let at = now_rfc3339();
        let batch: Vec<Value> = (0..per_tick)
            .map(|i| {
                generated_event(
                    &format!("org_{:03}", (n + i) % soak.cli.orgs as u64),
                    n + i,
                    &at,
                )
            })
            .collect();
        n += per_tick;
        let response = soak
            .http
            .post(&url)
            .bearer_auth(&key)
            .json(&batch)
            .send()
            .await;
        match response {
            Ok(response) if response.status().as_u16() == 202 => {
                let mut ledger = soak.ledger.lock().await;
                for event in &batch {
                    ledger.insert(
                        event["id"].as_str().unwrap_or_default().to_string(),
                        (
                            event["org_id"].as_str().unwrap_or_default().to_string(),
                            event["category"].as_str().unwrap_or_default().to_string(),
                        ),
                    );
                }
            }
            _ => {
                soak.unacknowledged
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn direct_load(soak: Arc<Soak>, stop: Arc<AtomicBool>) {
    let producer = audit_tests::kafka::producer(&soak.cli.kafka);
    let topic = format!("{}.audit.events.v1", soak.id);
    let per_tick = (soak.cli.rate / 4 / 10).max(1);
    let mut n = 5_000_000_000u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let at = now_rfc3339();
        for _ in 0..per_tick {
            let org = format!("org_{:03}", n % soak.cli.orgs as u64);
            let event = generated_event(&org, n, &at);
            n += 1;
            let payload = event.to_string();
            let record = rdkafka::producer::FutureRecord::to(&topic)
                .key(&org)
                .payload(&payload);
            if producer.send(record, Duration::from_secs(10)).await.is_ok() {
                soak.ledger.lock().await.insert(
                    event["id"].as_str().unwrap_or_default().to_string(),
                    (
                        org,
                        event["category"].as_str().unwrap_or_default().to_string(),
                    ),
                );
            } else {
                soak.unacknowledged.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Samples RSS and consumer lag every 2 s, and prints a progress line every 30 s.
async fn sampler(soak: Arc<Soak>, stop: Arc<AtomicBool>) {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut lag_now: BTreeMap<String, f64> = BTreeMap::new();
        let targets: Vec<(String, u32, u16)> = soak
            .services
            .lock()
            .await
            .iter()
            .map(|(n, s)| (n.clone(), s.pid(), s.port))
            .collect();
        for (name, pid, port) in targets {
            if let Some(kb) = rss_kb(pid) {
                let mut peaks = soak.peak_rss_kb.lock().await;
                let peak = peaks.entry(name.clone()).or_default();
                *peak = (*peak).max(kb);
            }
            if name.starts_with("gateway") {
                continue;
            }
            let Ok(response) = soak
                .http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
            else {
                continue;
            };
            let Ok(text) = response.text().await else {
                continue;
            };
            let lag: f64 = text
                .lines()
                .filter(|l| l.starts_with("kafka_consumer_lag{") && l.contains(".audit.events.v1"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            let role = name.split('-').next().unwrap_or_default().to_string();
            *lag_now.entry(role.clone()).or_default() += lag;
            let mut lags = soak.max_lag.lock().await;
            let max = lags.entry(role).or_default();
            *max = max.max(lag);
        }
        if last_progress.elapsed() >= Duration::from_secs(30) {
            last_progress = Instant::now();
            let acknowledged = soak.ledger.lock().await.len();
            let lag: Vec<String> = lag_now
                .iter()
                .map(|(r, l)| format!("{r}s {l:.0}"))
                .collect();
            eprintln!(
                "soak: {:.0?} of {} min: {acknowledged} events acknowledged; lag now: {}",
                started.elapsed(),
                soak.cli.minutes,
                lag.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn chaos(
    soak: Arc<Soak>,
    webhook: Arc<FakeWebhook>,
    hec: Arc<FakeHec>,
    (gateway_port, key): (u16, String),
    enterprise: Vec<(String, String, String)>,
    stop: Arc<AtomicBool>,
    duration: Duration,
) {
    let started = Instant::now();
    let step = Duration::from_secs(25);
    let mut round = 0usize;
    tokio::time::sleep(Duration::from_secs(15)).await;
    while started.elapsed() + Duration::from_secs(40) < duration && !stop.load(Ordering::Relaxed) {
        let result: anyhow::Result<()> = async {
            match round % 9 {
                0 => {
                    let port = soak.port_of("indexer-1").await;
                    soak.note("SIGKILL indexer-1, restart after 10 s".into())
                        .await;
                    soak.kill("indexer-1").await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.start("indexer-1", port).await?;
                }
                1 => {
                    let port = soak.port_of("forwarder-1").await;
                    soak.note("SIGKILL forwarder-1, restart after 10 s".into())
                        .await;
                    soak.kill("forwarder-1").await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.start("forwarder-1", port).await?;
                }
                2 if soak.cli.cluster => {
                    soak.note("ClickHouse shard 2 of 2 stopped for 20 s".into()).await;
                    soak.clickhouse_script("stop-node 2")?;
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    soak.clickhouse_script("start-node 2")?;
                }
                2 => {
                    soak.note("ClickHouse engine stopped for 20 s".into()).await;
                    soak.clickhouse_script("stop")?;
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    soak.clickhouse_script("start")?;
                }
                4 if soak.cli.cluster && round % 16 == 4 => {
                    let node = soak.kafka_script(&["active-controller"])?.trim().to_string();
                    soak.note(format!(
                        "SIGKILL Kafka node {node} (active controller, partition leader), restart after 10 s"
                    ))
                    .await;
                    soak.kafka_script(&["kill-node", &node])?;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.kafka_script(&["start-node", &node])?;
                }
                3 => {
                    soak.note("webhook receiver down (connection refused) for 30 s".into())
                        .await;
                    webhook.server().stop().await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    webhook.server().restart().await?;
                }
                4 => {
                    let port = soak.port_of("gateway-2").await;
                    soak.note("SIGTERM gateway-2 (graceful), restart after 5 s".into())
                        .await;
                    soak.terminate("gateway-2").await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    soak.start("gateway-2", port).await?;
                }
                5 => {
                    soak.note("HEC receiver answers 429 Retry-After: 2 for 20 s".into())
                        .await;
                    hec.core().faults().always = Some(
                        Injected::new(429, r#"{"text":"Server is busy","code":9}"#).retry_after(2),
                    );
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    hec.core().faults().always = None;
                }
                6 => {
                    let (org, webhook_id, _) = &enterprise[round % enterprise.len()];
                    soak.note(format!(
                        "settings: rotate {org}'s webhook secret; change retention of org_150"
                    ))
                    .await;
                    admin(
                        &soak,
                        gateway_port,
                        reqwest::Method::POST,
                        &format!("/v1/admin/orgs/{org}/destinations/{webhook_id}/rotate-secret"),
                        Some(json!({"signing_secret": ROTATED_SECRET, "overlap_secs": 60})),
                    )
                    .await?;
                    admin(
                        &soak,
                        gateway_port,
                        reqwest::Method::PATCH,
                        "/v1/admin/orgs/org_150",
                        Some(json!({"retention_days": 30 + (round as u64 % 50)})),
                    )
                    .await?;
                }
                7 => {
                    let (org, _, _) = &enterprise[0];
                    soak.note(format!("backfill over 101 months and a gzip-bomb receiver on {org}"))
                        .await;
                    let what = hostile_step::run(&soak, gateway_port, &key, org, round).await?;
                    soak.note(what).await;
                }
                _ => {
                    let (indexer, forwarder) = (
                        soak.port_of("indexer-2").await,
                        soak.port_of("forwarder-2").await,
                    );
                    soak.note(
                        "SIGKILL indexer-2 and forwarder-2 together, restart after 10 s".into(),
                    )
                    .await;
                    soak.kill("indexer-2").await;
                    soak.kill("forwarder-2").await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.start("indexer-2", indexer).await?;
                    soak.start("forwarder-2", forwarder).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            soak.note(format!("chaos step failed: {error:#}")).await;
        }
        round += 1;
        tokio::time::sleep(step).await;
    }
}

async fn ledger(
    soak: &Soak,
    webhook: &FakeWebhook,
    hec: &FakeHec,
    enterprise: &[(String, String, String)],
) -> anyhow::Result<String> {
    let ledger = soak.ledger.lock().await.clone();
    let enterprise_orgs: HashSet<&str> =
        enterprise.iter().map(|(org, _, _)| org.as_str()).collect();
    let expected_webhook: HashSet<&str> = ledger
        .iter()
        .filter(|(_, (org, _))| enterprise_orgs.contains(org.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    let expected_hec: HashSet<&str> = ledger
        .iter()
        .filter(|(_, (org, category))| {
            enterprise_orgs.contains(org.as_str())
                && (category == "authentication" || category == "security")
        })
        .map(|(id, _)| id.as_str())
        .collect();
    let database = format!("soak_{}", soak.id);
    let dead_lettered = || dead_letters(soak);

    // Drain: everything indexed and every expected delivery made (or dead-lettered).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let indexed: HashSet<String> = clickhouse(
            &soak.http,
            &soak.cli.clickhouse,
            &database,
            "SELECT toString(id) FROM events FINAL FORMAT TSVRaw",
        )
        .await
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
        let dead: HashSet<String> = dead_lettered().into_iter().map(|(id, _)| id).collect();
        let webhook_seen = webhook.core().unique_ids();
        let hec_seen = hec.core().unique_ids();
        let index_done = ledger.keys().all(|id| indexed.contains(id));
        let webhook_done = expected_webhook
            .iter()
            .all(|id| webhook_seen.contains(*id) || dead.contains(*id));
        let hec_done = expected_hec
            .iter()
            .all(|id| hec_seen.contains(*id) || dead.contains(*id));
        if (index_done && webhook_done && hec_done) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    let rows = clickhouse(
        &soak.http,
        &soak.cli.clickhouse,
        &database,
        "SELECT toString(id), count() FROM events FINAL WHERE category != 'audit_log' GROUP BY id FORMAT TSVRaw",
    )
    .await?;
    let meta_events: u64 = clickhouse(
        &soak.http,
        &soak.cli.clickhouse,
        &database,
        "SELECT count() FROM events FINAL WHERE category = 'audit_log'",
    )
    .await?
    .trim()
    .parse()
    .unwrap_or(0);
    let mut in_results: HashMap<String, u64> = HashMap::new();
    for line in rows.lines() {
        if let Some((id, count)) = line.split_once('\t') {
            in_results.insert(id.to_string(), count.parse().unwrap_or(0));
        }
    }
    let physical: u64 = clickhouse(
        &soak.http,
        &soak.cli.clickhouse,
        &database,
        "SELECT count() FROM events",
    )
    .await?
    .trim()
    .parse()
    .unwrap_or(0);
    let missing = ledger
        .keys()
        .filter(|id| !in_results.contains_key(*id))
        .count();
    let duplicated = in_results.values().filter(|c| **c > 1).count();
    let unacknowledged_but_stored = in_results
        .keys()
        .filter(|id| !ledger.contains_key(*id))
        .count();
    let dead = dead_lettered();
    let dead_ids: HashSet<&str> = dead.iter().map(|(id, _)| id.as_str()).collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, reason) in &dead {
        *reasons
            .entry(reason.chars().take(80).collect())
            .or_default() += 1;
    }
    let delivery = |name: &str, expected: &HashSet<&str>, received: Vec<String>| {
        let unique: HashSet<&str> = received.iter().map(String::as_str).collect();
        let missing = expected
            .iter()
            .filter(|id| !unique.contains(**id) && !dead_ids.contains(**id))
            .count();
        let dead = expected
            .iter()
            .filter(|id| !unique.contains(**id) && dead_ids.contains(**id))
            .count();
        let duplicates = received.len() - unique.len();
        let verdict = if missing == 0 { "ok" } else { "FAILED" };
        (
            format!(
                "| delivered to {name} | {} expected, {} delivered at least once, {dead} dead-lettered, {missing} missing, {duplicates} duplicate deliveries | {verdict} |",
                expected.len(),
                expected.iter().filter(|id| unique.contains(**id)).count()
            ),
            missing,
        )
    };
    let (webhook_row, webhook_missing) = delivery(
        "webhook destinations",
        &expected_webhook,
        webhook.core().received_ids(),
    );
    let (hec_row, hec_missing) = delivery(
        "Splunk HEC destinations",
        &expected_hec,
        hec.core().received_ids(),
    );
    let gateway_acks = ledger.len();
    let mut out = String::new();
    out.push_str(&format!(
        "Soak {} — {:.0} min, {} organizations ({} Enterprise with 2 destinations each)\n\n",
        soak.id,
        soak.cli.minutes,
        soak.cli.orgs,
        enterprise.len()
    ));
    out.push_str("| ledger | value | verdict |\n|---|---|---|\n");
    out.push_str(&format!(
        "| events acknowledged (gateway 2xx + Kafka acks) | {gateway_acks} | |\n"
    ));
    out.push_str(&format!(
        "| events refused or unanswered (client retries would resend) | {} | |\n",
        soak.unacknowledged.load(Ordering::Relaxed)
    ));
    out.push_str(&format!(
        "| indexed, exactly once in query results | {} | |\n",
        ledger.len() - missing
    ));
    out.push_str(&format!(
        "| acknowledged but missing from ClickHouse | {missing} | {} |\n",
        if missing == 0 { "ok" } else { "FAILED" }
    ));
    out.push_str(&format!(
        "| duplicated in query results | {duplicated} | {} |\n",
        if duplicated == 0 { "ok" } else { "FAILED" }
    ));
    out.push_str(&format!("| stored without an acknowledgement (ambiguous 503/timeouts; clients retry with the same ids) | {unacknowledged_but_stored} | |\n"));
    out.push_str(&format!(
        "| audit events of the log itself (settings changes, views) | {meta_events} | |\n"
    ));
    out.push_str(&format!(
        "| physical rows before merges (copies removed by FINAL) | {physical} | |\n"
    ));
    out.push_str(&format!("{webhook_row}\n{hec_row}\n"));
    out.push_str(&format!(
        "| dead-lettered | {} ({}) | |\n",
        dead.len(),
        if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons
                .iter()
                .map(|(r, n)| format!("{n}× {r}"))
                .collect::<Vec<_>>()
                .join("; ")
        }
    ));
    // Backfilled events beyond retention: dead-lettered with the reason, never stored.
    let beyond = soak.beyond_retention.lock().await.clone();
    let beyond_ok = beyond.iter().all(|id| {
        !in_results.contains_key(id)
            && dead.iter().any(|(dead_id, reason)| {
                dead_id == id && reason.contains("deleted as soon as it was stored")
            })
    });
    out.push_str(&format!(
        "| backfill beyond retention, straight to Kafka | {} dead-lettered with the retention reason, none stored | {} |\n",
        beyond.len(),
        if beyond_ok { "ok" } else { "FAILED" }
    ));
    for (role, lag) in soak.max_lag.lock().await.iter() {
        out.push_str(&format!(
            "| max consumer lag, {role}s | {lag:.0} messages | |\n"
        ));
    }
    for (name, kb) in soak.peak_rss_kb.lock().await.iter() {
        out.push_str(&format!(
            "| peak RSS, {name} | {:.0} MB | |\n",
            *kb as f64 / 1024.0
        ));
    }
    out.push_str("\nChaos performed:\n");
    for (index, action) in soak.chaos_log.lock().await.iter().enumerate() {
        out.push_str(&format!("{}. {action}\n", index + 1));
    }
    if webhook_missing + hec_missing > 0 || missing > 0 || duplicated > 0 || !beyond_ok {
        out.push_str("\nRESULT: FAILED\n");
    } else {
        out.push_str("\nRESULT: no acknowledged event lost, none duplicated in results, every forwarded event delivered or dead-lettered\n");
    }
    Ok(out)
}

/// (event id, reason) of every dead letter.
fn dead_letters(soak: &Soak) -> Vec<(String, String)> {
    let topic = format!("{}.audit.events.dlq.v1", soak.id);
    audit_tests::kafka::read_all(&soak.cli.kafka, &topic)
        .iter()
        .filter_map(|message| {
            let payload: Value = serde_json::from_slice(message.payload()?).ok()?;
            let id = payload["id"].as_str()?.to_string();
            Some((
                id,
                audit_tests::kafka::header(message, "dlq-reason").unwrap_or_default(),
            ))
        })
        .collect()
}
