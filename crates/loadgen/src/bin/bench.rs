//! `bench`: the benchmarks behind `make bench`. Starts the release services against the bench
//! instance of Kafka and ClickHouse (started by `deploy/local/bench.sh`), drives them from this
//! process, and prints one Markdown table (events/s, p50/p99 latency, peak RSS).
//!
//! * `ingest`  — gateway: batches of 100 and 1,000, single-event requests, latency at 2,000 req/s.
//! * `indexer` — indexer throughput from a pre-filled topic; freshness at a steady 5,000 events/s.
//! * `read`    — first-page latency on 10M events across 1,000 organizations; export of 1M rows;
//!   indexer freshness while one tenant hammers reads.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use loadgen::{
    BenchRow, BenchService, Latencies, RssSampler, clickhouse, free_port, freshness,
    generated_event, print_table,
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmarks of the audit-log pipeline (run through `make bench`)."
)]
struct Cli {
    /// Kafka of the bench instance.
    #[arg(long, default_value = "127.0.0.1:59092")]
    kafka: String,
    /// ClickHouse HTTP of the bench instance.
    #[arg(long, default_value = "http://127.0.0.1:58123")]
    clickhouse: String,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Logs of the services started by the benchmark.
    #[arg(long, default_value = ".local/bench/logs")]
    log_dir: PathBuf,
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
            kafka: cli.kafka.clone(),
            clickhouse: cli.clickhouse.clone(),
        }
    }

    fn events_topic(&self) -> String {
        format!("{}.audit.events.v1", self.id)
    }

    fn database(&self) -> String {
        format!("bench_{}", self.id)
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
        std::fs::create_dir_all(&self.cli.log_dir)?;
        let log = self.cli.log_dir.join(format!("{}-{binary}.log", ns.id));
        let mut service =
            BenchService::start(binary, &self.cli.bin_dir.join(binary), port, &env, &log)?;
        service
            .wait_ready(Duration::from_secs(90))
            .await
            .with_context(|| format!("log: {}", log.display()))?;
        Ok(service)
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
        Which::Ingest => ingest(&mut bench).await?,
        Which::Indexer { events } => indexer(&mut bench, events).await?,
        Which::Read { events } => read(&mut bench, events).await?,
    }
    print_table(&bench.rows);
    Ok(())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Event bodies without ids (the gateway assigns them), pre-serialised so the client stays cheap.
fn bodies(per_body: usize, count: usize) -> Vec<Bytes> {
    let at = now_rfc3339();
    (0..count)
        .map(|b| {
            let events: Vec<Value> = (0..per_body)
                .map(|i| {
                    let n = (b * per_body + i) as u64;
                    let mut event = generated_event(&format!("org_{:04}", n % 200), n, &at);
                    event.as_object_mut().map(|o| o.remove("id"));
                    event
                })
                .collect();
            let body = if per_body == 1 {
                events[0].to_string()
            } else {
                Value::Array(events).to_string()
            };
            Bytes::from(body)
        })
        .collect()
}

struct LoadResult {
    requests: u64,
    events: u64,
    errors: u64,
    latencies: Latencies,
    elapsed: Duration,
}

/// Closed loop: `concurrency` workers send back to back for `duration`.
async fn closed_loop(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    bodies: Arc<Vec<Bytes>>,
    per_body: u64,
    concurrency: usize,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let merged = Arc::new(Mutex::new(Latencies::default()));
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (http, url, key, bodies, merged, requests, errors) = (
            http.clone(),
            url.to_string(),
            key.to_string(),
            bodies.clone(),
            merged.clone(),
            requests.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut n = worker;
            while started.elapsed() < duration {
                let body = bodies[n % bodies.len()].clone();
                n += concurrency;
                let sent = Instant::now();
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.record(sent.elapsed());
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        let _ = response.bytes().await;
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            merged.lock().await.merge(&latencies);
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let requests = requests.load(Ordering::Relaxed);
    let latencies = std::mem::take(&mut *merged.lock().await);
    LoadResult {
        requests,
        events: requests * per_body,
        errors: errors.load(Ordering::Relaxed),
        latencies,
        elapsed: started.elapsed(),
    }
}

/// Open loop: `rate` requests per second on a fixed schedule; latency counts from the
/// scheduled time, so a slow server cannot hide its queueing (no coordinated omission).
async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    bodies: Arc<Vec<Bytes>>,
    rate: u64,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let errors = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < duration {
        let scheduled = ticker.tick().await;
        for _ in 0..per_tick {
            let (http, url, key, body, latencies, errors, requests) = (
                http.clone(),
                url.to_string(),
                key.to_string(),
                bodies[n % bodies.len()].clone(),
                latencies.clone(),
                errors.clone(),
                requests.clone(),
            );
            n += 1;
            handles.push(tokio::spawn(async move {
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        latencies.lock().await.record(scheduled.elapsed());
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for handle in handles {
        let _ = handle.await;
    }
    let requests = requests.load(Ordering::Relaxed);
    let latencies = std::mem::take(&mut *latencies.lock().await);
    LoadResult {
        requests,
        events: requests,
        errors: errors.load(Ordering::Relaxed),
        latencies,
        elapsed: started.elapsed(),
    }
}

async fn ingest(bench: &mut Bench) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "ingest");
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let key = bench.producer_key(&gateway).await?;
    let url = format!("{}/v1/events", gateway.url());
    let rss = RssSampler::start(gateway.pid());
    let duration = Duration::from_secs(bench.cli.seconds);

    for (per_body, concurrency) in [(100usize, 8usize), (1000, 4)] {
        // Warm up connections and the producer.
        closed_loop(
            &bench.http,
            &url,
            &key,
            Arc::new(bodies(per_body, 4)),
            per_body as u64,
            concurrency,
            Duration::from_secs(2),
        )
        .await;
        rss.reset();
        let result = closed_loop(
            &bench.http,
            &url,
            &key,
            Arc::new(bodies(per_body, 64)),
            per_body as u64,
            concurrency,
            duration,
        )
        .await;
        bench.rows.push(BenchRow {
            name: format!("gateway ingest, batches of {per_body} ({concurrency} connections)"),
            throughput: format!(
                "{:.0} events/s",
                result.events as f64 / result.elapsed.as_secs_f64()
            ),
            p50_ms: Some(result.latencies.percentile_ms(50.0)),
            p99_ms: Some(result.latencies.percentile_ms(99.0)),
            peak_rss_mb: Some(rss.peak_mb()),
            notes: format!(
                "{} requests, {} errors; latency per request",
                result.requests, result.errors
            ),
        });
    }

    let singles = Arc::new(bodies(1, 2000));
    closed_loop(
        &bench.http,
        &url,
        &key,
        singles.clone(),
        1,
        64,
        Duration::from_secs(2),
    )
    .await;
    rss.reset();
    let result = closed_loop(&bench.http, &url, &key, singles.clone(), 1, 64, duration).await;
    bench.rows.push(BenchRow {
        name: "gateway ingest, single-event requests (64 connections)".into(),
        throughput: format!(
            "{:.0} req/s",
            result.requests as f64 / result.elapsed.as_secs_f64()
        ),
        p50_ms: Some(result.latencies.percentile_ms(50.0)),
        p99_ms: Some(result.latencies.percentile_ms(99.0)),
        peak_rss_mb: Some(rss.peak_mb()),
        notes: format!("{} errors", result.errors),
    });

    rss.reset();
    let result = open_loop(&bench.http, &url, &key, singles, 2000, duration).await;
    bench.rows.push(BenchRow {
        name: "gateway ingest, single events at a fixed 2,000 req/s".into(),
        throughput: format!(
            "{:.0} req/s",
            result.requests as f64 / result.elapsed.as_secs_f64()
        ),
        p50_ms: Some(result.latencies.percentile_ms(50.0)),
        p99_ms: Some(result.latencies.percentile_ms(99.0)),
        peak_rss_mb: Some(rss.peak_mb()),
        notes: format!(
            "open loop, latency from the scheduled send time; {} errors",
            result.errors
        ),
    });
    rss.stop();
    Ok(())
}

async fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = NewTopic::new(topic, 6, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime");
    for result in admin.create_topics([&topic], &AdminOptions::new()).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

/// Fills the topic with `count` events as fast as the producer goes.
/// With `integrity`, messages carry the gateway's tag (as the gateway writes them); without,
/// they are what a product team produces straight to Kafka.
async fn prefill(
    brokers: &str,
    topic: &str,
    count: u64,
    integrity: Option<&audit_core::integrity::IntegrityKey>,
) -> anyhow::Result<Duration> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("partitioner", "murmur2_random")
        .create()?;
    let started = Instant::now();
    let at = now_rfc3339();
    for n in 0..count {
        let org = format!("org_{:04}", n % 1000);
        let mut event = generated_event(&org, n, &at);
        if integrity.is_some() {
            // What the gateway writes: its tag proves this provenance.
            event["received_at"] = serde_json::json!(at);
            event["provenance"] = serde_json::json!("gateway");
        }
        let payload = event.to_string();
        let tag = integrity
            .map(|key| key.tag(audit_core::integrity::Signer::Gateway, payload.as_bytes()));
        loop {
            let mut record = FutureRecord::to(topic).key(&org).payload(&payload);
            if let Some(tag) = &tag {
                record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
                    rdkafka::message::Header {
                        key: audit_core::integrity::HEADER,
                        value: Some(tag.as_str()),
                    },
                ));
            }
            match producer.send_result(record) {
                Ok(_) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("producing: {error}"),
            }
        }
        if n > 0 && n % 500_000 == 0 {
            eprintln!("bench: pre-filled {n} events");
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(started.elapsed())
}

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

async fn indexer(bench: &mut Bench, events: u64) -> anyhow::Result<()> {
    let key = audit_core::integrity::IntegrityKey::new(&bench.cli.integrity_key)
        .map_err(|e| anyhow::anyhow!(e))?;
    for (label, integrity) in [
        ("as written by the gateway (tagged)", Some(&key)),
        ("produced straight to Kafka (fully validated)", None),
    ] {
        indexer_throughput(bench, events, label, integrity).await?;
    }
    indexer_freshness(bench).await
}

/// Indexer throughput from a pre-filled topic.
async fn indexer_throughput(
    bench: &mut Bench,
    events: u64,
    label: &str,
    integrity: Option<&audit_core::integrity::IntegrityKey>,
) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "indexer");
    create_topic(&ns.kafka, &ns.events_topic()).await?;
    eprintln!(
        "bench: pre-filling {} with {events} events…",
        ns.events_topic()
    );
    let filled = prefill(&ns.kafka, &ns.events_topic(), events, integrity).await?;
    eprintln!("bench: pre-filled in {filled:.1?}");
    let started = Instant::now();
    let indexer = bench.start(&ns, "indexer", &[]).await?;
    let rss = RssSampler::start(indexer.pid());
    let mut first_row = None;
    loop {
        let rows = count_rows(bench, &ns).await;
        if rows > 0 && first_row.is_none() {
            first_row = Some(Instant::now());
        }
        if rows >= events {
            break;
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("indexed only {rows} of {events} in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let done = Instant::now();
    let indexing = done - first_row.unwrap_or(started);
    bench.rows.push(BenchRow {
        name: format!("indexer, {events} events pre-filled, {label}"),
        throughput: format!("{:.0} events/s", events as f64 / indexing.as_secs_f64()),
        p50_ms: None,
        p99_ms: None,
        peak_rss_mb: Some(rss.peak_mb()),
        notes: format!(
            "first row → last row {indexing:.1?}; from process start {:.1?}",
            done - started
        ),
    });
    drop(indexer);
    rss.stop();
    clickhouse(
        &bench.http,
        &ns.clickhouse,
        "default",
        &format!("DROP DATABASE IF EXISTS {}", ns.database()),
    )
    .await?;
    Ok(())
}

/// The indexer reports ready before its consumer group has assigned it the partitions: one
/// event goes through first, so the freshness run measures steady state, not the group join.
async fn warm_up_indexer(
    bench: &Bench,
    ns: &Namespace,
    url: &str,
    key: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let event = generated_event("org_000", 0, &now_rfc3339());
    let id = event["id"].as_str().unwrap_or_default().to_string();
    let response = bench
        .http
        .post(url)
        .bearer_auth(key)
        .json(&event)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "freshness: the warm-up event was refused: {}",
            response.status()
        );
    }
    let sql = format!("SELECT count() FROM events WHERE id = '{id}'");
    while clickhouse(&bench.http, &ns.clickhouse, &ns.database(), &sql)
        .await
        .ok()
        .and_then(|count| count.trim().parse::<u64>().ok())
        != Some(1)
    {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("freshness: the warm-up event was not queryable within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

/// Where a freshness run publishes (the gateway at `url`) and looks (`ns`'s database).
fn freshness_target(bench: &Bench, ns: &Namespace, url: String, key: String) -> freshness::Target {
    freshness::Target {
        http: bench.http.clone(),
        ingest_url: url,
        key,
        clickhouse: ns.clickhouse.clone(),
        database: ns.database(),
    }
}

/// Freshness: gateway acknowledgement → queryable in ClickHouse, at a steady 5,000 events/s.
async fn indexer_freshness(bench: &mut Bench) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "fresh");
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let indexer = bench.start(&ns, "indexer", &[]).await?;
    let key = bench.producer_key(&gateway).await?;
    let rss = RssSampler::start(indexer.pid());
    let url = format!("{}/v1/events", gateway.url());
    let warm_up = warm_up_indexer(bench, &ns, &url, &key).await?;
    let duration = Duration::from_secs(bench.cli.seconds.max(30));
    let target = freshness_target(bench, &ns, url, key);
    let measured = freshness::measure(&target, duration).await;
    let (latencies, n, unseen) = (measured.latencies, measured.offered, measured.unseen);
    bench.rows.push(BenchRow {
        name: "freshness: gateway ack → queryable, steady 5,000 events/s".into(),
        throughput: format!("{:.0} events/s offered", n as f64 / duration.as_secs_f64()),
        p50_ms: Some(latencies.percentile_ms(50.0)),
        p99_ms: Some(latencies.percentile_ms(99.0)),
        peak_rss_mb: Some(rss.peak_mb()),
        notes: format!(
            "{} sampled events (every 10th), {unseen} not seen; 50 ms polling; RSS of the indexer; after one warm-up event ({warm_up:.0?}: consumer group join)",
            latencies.count()
        ),
    });
    rss.stop();
    drop(gateway);
    Ok(())
}

async fn read(bench: &mut Bench, events: u64) -> anyhow::Result<()> {
    // A fixed namespace: the generated rows are kept and reused by later runs.
    let ns = Namespace {
        id: format!("read{events}"),
        kafka: bench.cli.kafka.clone(),
        clickhouse: bench.cli.clickhouse.clone(),
    };
    // The gateway needs the schema: let an indexer apply it (it then idles on an empty topic).
    let indexer = bench.start(&ns, "indexer", &[]).await?;
    let database = ns.database();
    let big_org_rows = 1_000_000u64.min(events / 2);
    let existing = count_rows(bench, &ns).await;
    let generated = Instant::now();
    let chunk = 1_000_000u64;
    // Resume (or skip) the generation: rows are generated in fixed chunks.
    let mut offset = existing - existing % chunk;
    if offset < events {
        clickhouse(
            &bench.http,
            &ns.clickhouse,
            &database,
            &format!("DELETE FROM events WHERE toUInt64(substring(request_id, 5)) >= {offset}"),
        )
        .await?;
        eprintln!(
            "bench: generating {} events across 1,000 organizations in ClickHouse (kept for later runs)…",
            events - offset
        );
    }
    while offset < events {
        let rows = chunk.min(events - offset);
        clickhouse(
            &bench.http,
            &ns.clickhouse,
            &database,
            &audit_tests::synthetic::generate_sql(offset, rows, big_org_rows),
        )
        .await?;
        offset += rows;
        eprintln!("bench: {offset} rows");
    }
    eprintln!("bench: generated in {:.1?}", generated.elapsed());
    drop(indexer);
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let rss = RssSampler::start(gateway.pid());

    // First page, newest first, with and without filters, over many organizations.
    let orgs: Vec<String> = (0..40).map(|i| format!("org_{:04}", 1 + i * 24)).collect();
    let mut tokens = HashMap::new();
    for org in orgs.iter().chain(std::iter::once(&"org_0000".to_string())) {
        tokens.insert(org.clone(), mint(&bench.cli.bin_dir, org)?);
    }
    let filters = [
        "",
        "category=authentication",
        "action=user.*",
        "actor=user_7",
        "outcome=failure&category=security",
        "q=resource%2012",
        "since=2026-01-01T00:00:00Z&category=billing",
    ];
    let mut latencies = Latencies::default();
    for (round, org) in orgs
        .iter()
        .chain(std::iter::once(&"org_0000".to_string()))
        .enumerate()
    {
        for (index, filter) in filters.iter().enumerate() {
            let url = format!("{}/v1/orgs/{org}/events?limit=100&{filter}", gateway.url());
            let sent = Instant::now();
            let response = bench
                .http
                .get(&url)
                .bearer_auth(&tokens[org])
                .send()
                .await?;
            let status = response.status();
            let _ = response.bytes().await?;
            if !status.is_success() {
                bail!("{url}: {status}");
            }
            // The first request of each organization also records the view in Kafka: keep it
            // out of the figures (warm-up), like the first round.
            if round > 0 && index > 0 {
                latencies.record(sent.elapsed());
            }
        }
    }
    bench.rows.push(BenchRow {
        name: format!("first page (limit 100), {events} events / 1,000 orgs"),
        throughput: format!("{} requests", latencies.count()),
        p50_ms: Some(latencies.percentile_ms(50.0)),
        p99_ms: Some(latencies.percentile_ms(95.0)),
        peak_rss_mb: Some(rss.peak_mb()),
        notes: "p99 column shows **p95**; 7 filter shapes × 40 organizations + the 1M-row one"
            .into(),
    });

    for format in ["csv", "ndjson"] {
        rss.reset();
        let url = format!(
            "{}/v1/orgs/org_0000/events/export?format={format}",
            gateway.url()
        );
        let started = Instant::now();
        let mut response = bench
            .http
            .get(&url)
            .bearer_auth(&tokens["org_0000"])
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{url}: {}", response.status());
        }
        let mut bytes = 0u64;
        let mut lines = 0u64;
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let elapsed = started.elapsed();
        let rows = if format == "csv" {
            lines.saturating_sub(1)
        } else {
            lines
        };
        bench.rows.push(BenchRow {
            name: format!("export {format}, {rows} rows"),
            throughput: format!("{:.0} rows/s", rows as f64 / elapsed.as_secs_f64()),
            p50_ms: None,
            p99_ms: None,
            peak_rss_mb: Some(rss.peak_mb()),
            notes: format!(
                "{:.0} MB in {elapsed:.1?}; RSS of the gateway",
                bytes as f64 / 1e6
            ),
        });
    }
    rss.stop();
    freshness_while_hammered(bench, &ns, &gateway, &tokens["org_0000"]).await
}

/// Freshness of other organizations' new events, first undisturbed, then while one tenant
/// (the 1M-event organization, one credential) hammers reads: 16 connections looping `q=a`
/// and 12 slow exports. The indexer and the reads share the one ClickHouse.
async fn freshness_while_hammered(
    bench: &mut Bench,
    ns: &Namespace,
    gateway: &BenchService,
    token: &str,
) -> anyhow::Result<()> {
    let indexer = bench.start(ns, "indexer", &[]).await?;
    let key = bench.producer_key(gateway).await?;
    let url = format!("{}/v1/events", gateway.url());
    warm_up_indexer(bench, ns, &url, &key).await?;
    let target = freshness_target(bench, ns, url, key);
    let duration = Duration::from_secs(bench.cli.seconds.max(30));
    let quiet = freshness::measure(&target, duration).await;
    let hammer = audit_tests::hostile::ReadHammer::start(&gateway.url(), "org_0000", token, 16, 12);
    let hammered = freshness::measure(&target, duration).await;
    let (searches, exports) = hammer.stop();
    for (name, measured, notes) in [
        (
            "freshness: gateway ack → queryable, 5,000 events/s, reads idle",
            quiet,
            String::new(),
        ),
        (
            "freshness while a tenant hammers reads (16 × `q=a`, 12 slow exports)",
            hammered,
            format!(
                "the hammering tenant's answers: searches {:?}, exports {:?}; ",
                searches.counts, exports.counts
            ),
        ),
    ] {
        bench.rows.push(BenchRow {
            name: name.into(),
            throughput: format!(
                "{:.0} events/s offered",
                measured.offered as f64 / duration.as_secs_f64()
            ),
            p50_ms: Some(measured.latencies.percentile_ms(50.0)),
            p99_ms: Some(measured.latencies.percentile_ms(99.0)),
            peak_rss_mb: None,
            notes: format!(
                "{notes}{} sampled events, {} not seen",
                measured.latencies.count(),
                measured.unseen
            ),
        });
    }
    drop(indexer);
    // Keep the generated dataset as it was for later runs.
    clickhouse(
        &bench.http,
        &ns.clickhouse,
        &ns.database(),
        "DELETE FROM events WHERE source = 'loadgen'",
    )
    .await?;
    Ok(())
}

fn mint(bin_dir: &Path, org: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new(bin_dir.join("gateway"))
        .args([
            "mint-token",
            "--org",
            org,
            "--role",
            "admin",
            "--subject",
            "bench",
        ])
        .output()?;
    if !output.status.success() {
        bail!("mint-token: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}
