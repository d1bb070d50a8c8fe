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
//!    OCSF format (each event mapped to its OCSF object before sending).
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

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use audit_core::integrity::{self, IntegrityKey};
use clap::Parser;
use loadgen::{BenchRow, Latencies, RssSampler, cpu_seconds, generated_event, print_table};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};

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
    /// Extra forwarder settings, e.g. `FORWARDER__DELIVERY__LINGER_MS=100` (repeatable).
    #[arg(long = "forwarder-env", value_parser = parse_env)]
    forwarder_env: Vec<(String, String)>,
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

/// A child process killed when dropped.
struct Process {
    name: &'static str,
    child: Child,
}

impl Process {
    fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { name, child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("bench: {} did not stop in time; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn wait_ready(http: &reqwest::Client, url: &str, process: &mut Process) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(response) = http.get(url).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            bail!("{} exited during start ({status})", process.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{} not ready at {url} within 60 s", process.name)
}

/// The topics of one run.
struct Topics {
    prefix: String,
}

impl Topics {
    fn events(&self, run: &str) -> String {
        format!("{}.{run}.events", self.prefix)
    }
    fn settings(&self) -> String {
        format!("{}.settings", self.prefix)
    }
    fn dead_letter(&self) -> String {
        format!("{}.dlq", self.prefix)
    }
    fn retry(&self) -> String {
        format!("{}.retry", self.prefix)
    }
}

async fn create_topic(brokers: &str, name: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = NewTopic::new(name, 6, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime")
        .set("retention.ms", "86400000");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("creating {topic}: {code}"),
        }
    }
    Ok(())
}

fn producer(brokers: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .create()?)
}

/// The headers the gateway puts on what it publishes: with its integrity tag when `key` is
/// given (events it validated), without for a direct producer's events.
fn headers(payload: &str, key: Option<&IntegrityKey>) -> OwnedHeaders {
    let tag = key.map(|key| key.tag(integrity::Signer::Gateway, payload.as_bytes()));
    audit_kafka::event_headers("loadgen", tag.as_deref())
}

fn occurred_at_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Sends one event (to `partition`, or the key's), waiting while the producer queue is full;
/// returns its id.
fn send(
    producer: &FutureProducer,
    topic: &str,
    (org, partition): (&str, Option<i32>),
    n: u64,
    key: Option<&IntegrityKey>,
) -> Result<String> {
    let mut event = generated_event(org, n, &occurred_at_now());
    event["received_at"] = json!(occurred_at_now());
    if key.is_some() {
        // What the gateway writes: its tag proves this provenance.
        event["provenance"] = json!("gateway");
    }
    let id = event["id"].as_str().unwrap_or_default().to_string();
    let payload = event.to_string();
    loop {
        let mut record = FutureRecord::to(topic)
            .key(org)
            .payload(&payload)
            .headers(headers(&payload, key));
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        match producer.send_result(record) {
            Ok(_) => return Ok(id),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error.into()),
        }
    }
}

/// Creates the organizations and destinations of the benchmark through a gateway.
async fn provision(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    hec_url: &str,
    webhook_url: &str,
    hung_webhook_url: &str,
) -> Result<HashMap<&'static str, String>> {
    let port = free_port()?;
    let ops_port = free_port()?;
    let env = vec![
        ("GATEWAY__KAFKA__BROKERS".to_string(), cli.brokers.clone()),
        (
            "GATEWAY__OPS__LISTEN".to_string(),
            format!("127.0.0.1:{ops_port}"),
        ),
        (
            "GATEWAY__TOPICS__EVENTS".to_string(),
            format!("{}.gateway.events", topics.prefix),
        ),
        (
            "GATEWAY__TOPICS__DEAD_LETTER".to_string(),
            topics.dead_letter(),
        ),
        ("GATEWAY__TOPICS__SETTINGS".to_string(), topics.settings()),
        (
            "GATEWAY__TOPICS__FORWARDER_RETRY".to_string(),
            topics.retry(),
        ),
        (
            "GATEWAY__HTTP__LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "GATEWAY__TELEMETRY__LOG_FORMAT".to_string(),
            "text".to_string(),
        ),
    ];
    let mut gateway = Process::spawn(
        "gateway",
        &cli.bin_dir.join("gateway"),
        &["--config", "config/gateway.toml"],
        &env,
        Path::new(&format!("/tmp/{}-gateway.log", topics.prefix)),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        http,
        &format!("http://127.0.0.1:{ops_port}/readyz"),
        &mut gateway,
    )
    .await?;
    let admin = |method: reqwest::Method, path: String, body: Value| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(anyhow!("{status}: {body}"));
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let mut ids = HashMap::new();
    for (org, config) in [
        (
            "org_bench_hec",
            json!({"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}),
        ),
        (
            "org_bench_webhook",
            json!({"type": "webhook", "url": format!("{webhook_url}/audit")}),
        ),
        (
            "org_bench_hec_ocsf",
            json!({"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}),
        ),
        (
            "org_bench_webhook_ocsf",
            json!({"type": "webhook", "url": format!("{webhook_url}/audit")}),
        ),
        (
            "org_bench_latency",
            json!({"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}),
        ),
        (
            "org_bench_neighbour",
            json!({"type": "webhook", "url": format!("{webhook_url}/neighbour")}),
        ),
        (
            "org_bench_hung",
            json!({"type": "webhook", "url": format!("{hung_webhook_url}/hung")}),
        ),
    ] {
        admin(
            reqwest::Method::PATCH,
            format!("/v1/admin/orgs/{org}"),
            json!({"plan": "enterprise"}),
        )
        .await?;
        let created = admin(
            reqwest::Method::POST,
            format!("/v1/admin/orgs/{org}/destinations"),
            json!({"name": format!("{org} destination"), "signing_secret": SIGNING_SECRET, "config": config,
                   "format": if org.ends_with("_ocsf") { "ocsf" } else { "native" }}),
        )
        .await?;
        ids.insert(org, created["id"].as_str().unwrap_or_default().to_string());
    }
    gateway.stop();
    Ok(ids)
}

/// Starts a release forwarder on `events_topic` with group `group`.
async fn start_forwarder(
    cli: &Cli,
    topics: &Topics,
    events_topic: &str,
    group: &str,
    http: &reqwest::Client,
) -> Result<(Process, String)> {
    let port = free_port()?;
    let env = vec![
        ("FORWARDER__KAFKA__BROKERS".to_string(), cli.brokers.clone()),
        (
            "FORWARDER__TOPICS__EVENTS".to_string(),
            events_topic.to_string(),
        ),
        (
            "FORWARDER__TOPICS__DEAD_LETTER".to_string(),
            topics.dead_letter(),
        ),
        ("FORWARDER__TOPICS__SETTINGS".to_string(), topics.settings()),
        (
            "FORWARDER__TOPICS__FORWARDER_RETRY".to_string(),
            topics.retry(),
        ),
        (
            "FORWARDER__HTTP__LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "FORWARDER__CONSUMER__GROUP_ID".to_string(),
            group.to_string(),
        ),
    ]
    .into_iter()
    .chain(cli.forwarder_env.iter().cloned())
    .collect::<Vec<_>>();
    let mut forwarder = Process::spawn(
        "forwarder",
        &cli.bin_dir.join("forwarder"),
        &["--config", "config/forwarder.toml"],
        &env,
        Path::new(&format!("/tmp/{group}-forwarder.log")),
    )?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(http, &format!("{url}/readyz"), &mut forwarder).await?;
    Ok((forwarder, url))
}

async fn stats(http: &reqwest::Client, receiver: &str) -> Result<Value> {
    Ok(http
        .get(format!("{receiver}/_fake/stats"))
        .send()
        .await?
        .json()
        .await?)
}

async fn accepted_events(http: &reqwest::Client, receiver: &str) -> Result<u64> {
    Ok(stats(http, receiver).await?["events"].as_u64().unwrap_or(0))
}

/// The forwarder's batches so far (`forwarder_batch_rows` and `forwarder_batch_bytes`
/// histograms of its `/metrics`): count, mean events and mean bytes.
async fn batch_sizes(http: &reqwest::Client, forwarder: &str) -> String {
    let Ok(response) = http.get(format!("{forwarder}/metrics")).send().await else {
        return "batches: no metrics".into();
    };
    let text = response.text().await.unwrap_or_default();
    let total = |name: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let count = total("forwarder_batch_rows_count");
    format!(
        "batches: {count:.0}, mean {:.0} events, {:.0} bytes",
        total("forwarder_batch_rows_sum") / count.max(1.0),
        total("forwarder_batch_bytes_sum") / count.max(1.0)
    )
}

/// Pre-fills, forwards, measures.
async fn throughput_run(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    run: &str,
    org: &str,
    (receiver, receiver_pid): (&str, u32),
    key: Option<&IntegrityKey>,
) -> Result<BenchRow> {
    let ocsf = org.ends_with("_ocsf");
    let slug = match (key, ocsf) {
        (None, _) => format!("{run}-direct"),
        (Some(_), true) => format!("{run}-ocsf"),
        (Some(_), false) => run.to_string(),
    };
    let topic = topics.events(&slug);
    create_topic(&cli.brokers, &topic).await?;
    let producer = producer(&cli.brokers)?;
    let started = Instant::now();
    for n in 0..cli.events {
        send(&producer, &topic, (org, None), n, key)?;
    }
    producer.flush(Duration::from_secs(120))?;
    let fill = started.elapsed();
    println!(
        "bench: {run}: pre-filled {} events in {:.1} s ({:.0}/s)",
        cli.events,
        fill.as_secs_f64(),
        cli.events as f64 / fill.as_secs_f64()
    );
    // The receivers serve every run: their counters are read before and after this one.
    let stats_before = stats(http, receiver).await?;
    let before = stats_before["events"].as_u64().unwrap_or(0);
    let target = before + cli.events;
    let group = format!("{}-{slug}", topics.prefix);
    let receiver_cpu_before = cpu_seconds(receiver_pid);
    let launched = Instant::now();
    let (mut forwarder, forwarder_url) = start_forwarder(cli, topics, &topic, &group, http).await?;
    let rss = RssSampler::start(forwarder.pid());
    let deadline = Instant::now() + Duration::from_secs(cli.timeout_secs);
    let mut first: Option<(Instant, u64)> = None;
    let mut last = (Instant::now(), before);
    loop {
        let count = accepted_events(http, receiver).await?;
        let now = Instant::now();
        if count > before && first.is_none() {
            first = Some((now, count));
        }
        if count != last.1 {
            last = (now, count);
        }
        if count >= target {
            break;
        }
        if now > deadline {
            bail!(
                "{run}: only {} of {} events delivered within {} s",
                count - before,
                cli.events,
                cli.timeout_secs
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = launched.elapsed();
    rss.stop();
    let peak = rss.peak_mb();
    // CPU per event, a second figure less sensitive to the machine's load than events/s
    // (the receiver shares the cores: the forwarder's own cost is its CPU, not the rate).
    let per_event_us =
        |seconds: Option<f64>| seconds.map_or(f64::NAN, |s| s * 1e6 / cli.events as f64);
    let forwarder_cpu = per_event_us(cpu_seconds(forwarder.pid()));
    let batches = batch_sizes(http, &forwarder_url).await;
    let receiver_cpu = per_event_us(
        cpu_seconds(receiver_pid)
            .zip(receiver_cpu_before)
            .map(|(after, before)| after - before),
    );
    forwarder.stop();
    let (first_at, first_count) = first.unwrap_or((launched, before));
    let measured = last.0.duration_since(first_at).as_secs_f64().max(0.001);
    let rate = (last.1 - first_count) as f64 / measured;
    println!(
        "bench: {slug}: CPU per event: forwarder {forwarder_cpu:.1} µs, receiver {receiver_cpu:.1} µs; {batches}"
    );
    let stats_after = stats(http, receiver).await?;
    let counted = |name: &str| {
        stats_after[name]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(stats_before[name].as_u64().unwrap_or(0))
    };
    Ok(BenchRow {
        name: match (key, ocsf) {
            (Some(_), false) => format!("forwarder → {run} (fake), Kafka → receiver"),
            (Some(_), true) => format!("forwarder → {run} (fake), format ocsf, Kafka → receiver"),
            (None, _) => format!("forwarder → {run} (fake), direct producer's events (validated)"),
        },
        throughput: format!("{rate:.0} events/s"),
        p50_ms: None,
        p99_ms: None,
        peak_rss_mb: Some(peak),
        notes: format!(
            "{} events of one organization (one partition, in order), batching + HMAC signing, JSON, no compression; {:.1} s incl. start; CPU per event: forwarder {forwarder_cpu:.1} µs, receiver {receiver_cpu:.1} µs; {} requests, {} duplicates, {} signature failures",
            cli.events,
            total.as_secs_f64(),
            counted("accepted_requests"),
            counted("duplicates"),
            counted("signature_failures"),
        ),
    })
}

/// What a latency measurement sends.
struct LatencyPlan<'a> {
    /// Names the run's topic and consumer group.
    slug: &'a str,
    /// The measured organization (its destination is the Splunk HEC fake).
    org: &'a str,
    rate: u64,
    secs: u64,
    /// Every event goes to this partition (`None`: the key's).
    partition: Option<i32>,
    /// Another organization producing at its own rate, interleaved with the measured one.
    neighbour: Option<(&'a str, u64)>,
}

/// The measured organization's latencies.
struct LatencyOutcome {
    latencies: Latencies,
    /// Measured events offered per second.
    offered: f64,
    warm_up: Duration,
    peak_rss_mb: f64,
}

/// A fixed offered rate; per-event latency from produce to receiver arrival.
async fn measure_latency(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    receiver: &str,
    key: Option<&IntegrityKey>,
    plan: &LatencyPlan<'_>,
) -> Result<LatencyOutcome> {
    let topic = topics.events(plan.slug);
    create_topic(&cli.brokers, &topic).await?;
    let group = format!("{}-{}", topics.prefix, plan.slug);
    let (mut forwarder, _) = start_forwarder(cli, topics, &topic, &group, http).await?;
    let rss = RssSampler::start(forwarder.pid());
    // The forwarder reports ready before its consumer group has assigned it the partition:
    // one event goes end to end first, so the run measures steady state, not the group join.
    let producer = producer(&cli.brokers)?;
    let measured = (plan.org, plan.partition);
    let warm_up = Instant::now();
    let warm_up_before = accepted_events(http, receiver).await?;
    send(&producer, &topic, measured, 0, key)?;
    producer.flush(Duration::from_secs(30))?;
    while accepted_events(http, receiver).await? <= warm_up_before {
        if warm_up.elapsed() > Duration::from_secs(60) {
            bail!("latency: the warm-up event was not delivered within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let warm_up = warm_up.elapsed();
    let from: u64 = http
        .get(format!("{receiver}/_fake/received?from=0&limit=0"))
        .send()
        .await?
        .json::<Value>()
        .await?["next"]
        .as_u64()
        .unwrap_or(0);
    let before = accepted_events(http, receiver).await?;
    let mut sent_at: HashMap<String, u64> = HashMap::new();
    let total = plan.rate * plan.secs;
    let tick = Duration::from_millis(10);
    let per_tick = (plan.rate / 100).max(1);
    let neighbour = plan
        .neighbour
        .map(|(org, rate)| ((org, plan.partition), (rate / 100).max(1)));
    let started = Instant::now();
    let mut n = 0;
    let mut neighbour_n = 0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while n < total {
        interval.tick().await;
        let measured_now = per_tick.min(total - n);
        let neighbour_now = neighbour.map_or(0, |(_, per_tick)| per_tick);
        // Interleaved, so that both organizations' events share every fetch.
        for i in 0..measured_now.max(neighbour_now) {
            if i < measured_now {
                let id = send(&producer, &topic, measured, n, key)?;
                sent_at.insert(id, now_us());
                n += 1;
            }
            if let Some((target, _)) = neighbour
                && i < neighbour_now
            {
                send(&producer, &topic, target, neighbour_n, key)?;
                neighbour_n += 1;
            }
        }
    }
    let offered = n as f64 / started.elapsed().as_secs_f64();
    producer.flush(Duration::from_secs(30))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while accepted_events(http, receiver).await? < before + total {
        if Instant::now() > deadline {
            bail!("latency: not every event delivered within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rss.stop();
    forwarder.stop();
    let mut latencies = Latencies::default();
    let mut trace = String::new();
    let mut next = from;
    loop {
        let page: Value = http
            .get(format!("{receiver}/_fake/received?from={next}&limit=50000"))
            .send()
            .await?
            .json()
            .await?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.is_empty() {
            break;
        }
        for pair in &events {
            let (Some(id), Some(at)) = (pair[0].as_str(), pair[1].as_u64()) else {
                continue;
            };
            if let Some(sent) = sent_at.remove(id) {
                latencies.record(Duration::from_micros(at.saturating_sub(sent)));
                if cli.latency_trace.is_some() {
                    trace.push_str(&format!("{sent},{}\n", at.saturating_sub(sent)));
                }
            }
        }
        next = page["next"].as_u64().unwrap_or(next);
    }
    if !sent_at.is_empty() {
        bail!(
            "latency: {} events not matched at the receiver",
            sent_at.len()
        );
    }
    if let Some(dir) = &cli.latency_trace {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(format!("{}.csv", plan.slug)), trace)?;
    }
    Ok(LatencyOutcome {
        latencies,
        offered,
        warm_up,
        peak_rss_mb: rss.peak_mb(),
    })
}

async fn latency_run(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    receiver: &str,
    key: Option<&IntegrityKey>,
) -> Result<BenchRow> {
    let plan = LatencyPlan {
        slug: "latency",
        org: "org_bench_latency",
        rate: cli.rate,
        secs: cli.latency_secs,
        partition: None,
        neighbour: None,
    };
    let outcome = measure_latency(cli, topics, http, receiver, key, &plan).await?;
    let notes = format!(
        "{} events over {} s; produce call → receiver arrival; default config (linger 200 ms); after one warm-up event ({:.0?}: consumer group join)",
        outcome.latencies.count(),
        cli.latency_secs,
        outcome.warm_up
    );
    Ok(outcome.row(
        "forwarder delivery latency @ fixed rate (Splunk HEC fake)".into(),
        notes,
    ))
}

impl LatencyOutcome {
    fn row(&self, name: String, notes: String) -> BenchRow {
        BenchRow {
            name,
            throughput: format!("{:.0} events/s offered", self.offered),
            p50_ms: Some(self.latencies.percentile_ms(50.0)),
            p99_ms: Some(self.latencies.percentile_ms(99.0)),
            peak_rss_mb: Some(self.peak_rss_mb),
            notes,
        }
    }
}

/// The healthy organization's latency with a healthy neighbour, then with a hung one (its
/// webhook answers after `fake-receivers --hung-webhook-latency-ms`, 20 s: every request
/// times out). Both organizations produce into one partition at `--neighbour-rate`, each.
async fn neighbour_run(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    receiver: &str,
    key: Option<&IntegrityKey>,
) -> Result<Vec<BenchRow>> {
    let mut outcomes = Vec::new();
    for (slug, neighbour) in [
        ("undisturbed", "org_bench_neighbour"),
        ("hung-neighbour", "org_bench_hung"),
    ] {
        let plan = LatencyPlan {
            slug,
            org: "org_bench_latency",
            rate: cli.neighbour_rate,
            secs: cli.neighbour_secs,
            partition: Some(0),
            neighbour: Some((neighbour, cli.neighbour_rate)),
        };
        let outcome = measure_latency(cli, topics, http, receiver, key, &plan).await?;
        println!(
            "bench: neighbour: {slug}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            outcome.latencies.percentile_ms(50.0),
            outcome.latencies.percentile_ms(99.0),
            outcome.latencies.percentile_ms(100.0)
        );
        outcomes.push((slug, outcome));
    }
    let undisturbed_p99 = outcomes[0].1.latencies.percentile_ms(99.0);
    let hung_p99 = outcomes[1].1.latencies.percentile_ms(99.0);
    let ratio = hung_p99 / undisturbed_p99.max(0.001);
    println!(
        "bench: neighbour: healthy destination p99 {undisturbed_p99:.1} ms undisturbed, {hung_p99:.1} ms with a hung neighbour: ratio {ratio:.2}"
    );
    Ok(outcomes
        .into_iter()
        .map(|(slug, outcome)| {
            let (name, neighbour) = if slug == "undisturbed" {
                ("healthy neighbour", "a healthy webhook")
            } else {
                ("hung neighbour", "a webhook answering after 20 s (every request times out at 15 s)")
            };
            let notes = format!(
                "{} events over {} s, one partition shared with another organization at {} events/s whose destination is {neighbour}; max {:.0} ms; p99 ratio hung/healthy {ratio:.2}",
                outcome.latencies.count(),
                cli.neighbour_secs,
                cli.neighbour_rate,
                outcome.latencies.percentile_ms(100.0),
            );
            outcome.row(
                format!("forwarder delivery latency, {name} (Splunk HEC fake)"),
                notes,
            )
        })
        .collect())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let http = reqwest::Client::new();
    let prefix = format!("bench{:08x}", rand::random::<u32>());
    let topics = Topics {
        prefix: prefix.clone(),
    };
    // The gateway creates the settings, dead-letter and retry topics (compacted settings).
    let ports = [
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
        free_port()?,
    ];
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
    let mut rows = Vec::new();
    for run in &cli.runs {
        let row = match run.as_str() {
            "neighbour" => {
                let pair = neighbour_run(&cli, &topics, &http, &hec, Some(&key)).await?;
                rows.extend(pair);
                continue;
            }
            "hec" | "hec-direct" => {
                // hec-direct: untagged messages, as a direct producer writes them.
                let tag_key = (run == "hec").then_some(&key);
                throughput_run(
                    &cli,
                    &topics,
                    &http,
                    "splunk_hec",
                    "org_bench_hec",
                    (&hec, receivers.pid()),
                    tag_key,
                )
                .await?
            }
            "webhook" | "webhook-ocsf" => {
                let org = if run == "webhook" {
                    "org_bench_webhook"
                } else {
                    "org_bench_webhook_ocsf"
                };
                throughput_run(
                    &cli,
                    &topics,
                    &http,
                    "webhook",
                    org,
                    (&webhook, receivers.pid()),
                    Some(&key),
                )
                .await?
            }
            "hec-ocsf" => {
                throughput_run(
                    &cli,
                    &topics,
                    &http,
                    "splunk_hec",
                    "org_bench_hec_ocsf",
                    (&hec, receivers.pid()),
                    Some(&key),
                )
                .await?
            }
            "latency" => latency_run(&cli, &topics, &http, &hec, Some(&key)).await?,
            other => bail!(
                "unknown run `{other}` (hec, webhook, latency, neighbour, hec-direct, hec-ocsf, webhook-ocsf)"
            ),
        };
        println!(
            "bench: {}: {} (peak RSS {:.0} MB)",
            row.name,
            row.throughput,
            row.peak_rss_mb.unwrap_or(0.0)
        );
        rows.push(row);
    }
    receivers.stop();
    println!();
    print_table(&rows);
    Ok(())
}
