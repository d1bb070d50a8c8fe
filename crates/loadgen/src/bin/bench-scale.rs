//! `bench-scale` (`BENCH=scale make bench`): how the per-tenant costs grow, for the "Scale on
//! paper" section of BENCHMARKS.md.
//!
//! 1. **Settings start-up**: the compacted settings topic holds one record per organization
//!    (a real record written by the gateway's operator API, copied under N organization ids).
//!    For each N, a fresh release gateway and a fresh forwarder start on it; measured: spawn →
//!    `/readyz` 200 (every instance reads the whole topic before it is ready) and RSS then.
//! 2. **Forwarder fan-out**: O organizations on the Enterprise plan with D webhook destinations
//!    in all (created through the operator API, secrets sealed per destination as in
//!    production), `--events` events spread evenly over the organizations pre-filled on a
//!    6-partition topic as a direct producer sends them (untagged: the forwarder validates
//!    each). A release forwarder delivers them all to the fake webhook receiver (in this
//!    process, one URL path per destination); measured: start-up, RSS when ready, events/s and
//!    deliveries/s from the first to the last delivery, peak RSS, RSS once all is delivered and
//!    the size of its `/metrics` page (per-destination series).
//!
//! Kafka, the services, the receiver and this process share the machine's cores.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook, SIGNING_SECRET};
use clap::Parser;
use futures::StreamExt;
use loadgen::{
    BenchInstance, BenchRow, BenchService, RssSampler, free_port, generated_event, print_table,
    rss_kb,
};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "bench-scale",
    about = "Per-tenant costs: settings start-up by organizations, forwarder by destinations."
)]
struct Cli {
    #[command(flatten)]
    instance: BenchInstance,
    /// Organization counts of the settings start-up runs.
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000,100000")]
    settings_orgs: Vec<usize>,
    /// Forwarder runs as ORGANIZATIONS:DESTINATIONS.
    #[arg(long, value_delimiter = ',', default_value = "1:1,200:500,2000:5000")]
    fanout: Vec<String>,
    /// Events per forwarder run, spread evenly over its organizations.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Operator API requests in flight while provisioning.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

const OPERATOR_TOKEN: &str = "dev-operator-token";

/// The topics of one run (own names, so runs never see each other's records).
struct Topics {
    prefix: String,
}

impl Topics {
    fn new(run: &str) -> Self {
        Self {
            prefix: format!("scale{:06x}-{run}", rand::random::<u32>() & 0xff_ffff),
        }
    }

    fn env(&self, service: &str, kafka: &str) -> Vec<(String, String)> {
        let var = |key: &str| format!("{service}__{key}");
        vec![
            (var("KAFKA__BROKERS"), kafka.to_string()),
            (var("TOPICS__EVENTS"), format!("{}.events", self.prefix)),
            (var("TOPICS__DEAD_LETTER"), format!("{}.dlq", self.prefix)),
            (var("TOPICS__SETTINGS"), format!("{}.settings", self.prefix)),
            (
                var("TOPICS__FORWARDER_RETRY"),
                format!("{}.retry", self.prefix),
            ),
            (var("TELEMETRY__LOG_FORMAT"), "text".to_string()),
        ]
    }
}

struct Bench {
    cli: Cli,
    http: reqwest::Client,
}

impl Bench {
    /// Starts a release service of `topics` and waits for `/readyz`; returns it with the time
    /// from spawn to ready.
    async fn start(
        &self,
        binary: &str,
        topics: &Topics,
        extra: &[(String, String)],
    ) -> Result<(BenchService, Duration)> {
        let prefix = binary.to_uppercase();
        let port = free_port();
        let mut env = topics.env(&prefix, &self.cli.instance.kafka);
        env.push((
            format!("{prefix}__HTTP__LISTEN"),
            format!("127.0.0.1:{port}"),
        ));
        if binary == "gateway" {
            env.push((
                "GATEWAY__CLICKHOUSE__URL".to_string(),
                self.cli.instance.clickhouse.clone(),
            ));
        }
        env.extend(extra.iter().cloned());
        let log_name = format!("{}-{binary}-{port}.log", topics.prefix);
        let started = Instant::now();
        let service = self
            .cli
            .instance
            .start_service(binary, port, &env, &log_name, Duration::from_secs(900))
            .await?;
        Ok((service, started.elapsed()))
    }

    async fn admin(
        &self,
        gateway: &str,
        method: reqwest::Method,
        path: String,
        body: Value,
    ) -> Result<Value> {
        let response = self
            .http
            .request(method, format!("{gateway}{path}"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{path}: {status} {body}");
        }
        Ok(body)
    }

    /// Settings start-up with `orgs` organizations on the topic.
    async fn settings_run(&self, orgs: usize) -> Result<Vec<BenchRow>> {
        let topics = Topics::new(&format!("settings{orgs}"));
        // A real organization record, written by the operator API.
        let (mut gateway, _) = self.start("gateway", &topics, &[]).await?;
        self.admin(
            &gateway.url(),
            reqwest::Method::PATCH,
            "/v1/admin/orgs/org_template".to_string(),
            json!({"plan": "team", "retention_days": 60}),
        )
        .await?;
        gateway.stop();
        let settings = format!("{}.settings", topics.prefix);
        let (key, payload) = org_record(&self.cli.instance.kafka, &settings, "org/org_template")?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.cli.instance.kafka)
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            .create()?;
        let filled = Instant::now();
        for n in 1..orgs {
            let org = format!("org_{n:07}");
            let key = key.replace("org_template", &org);
            let payload = payload.replace("\"org_template\"", &format!("\"{org}\""));
            send(&producer, &settings, &key, &payload)?;
        }
        producer.flush(Duration::from_secs(120))?;
        println!(
            "settings: {orgs} organizations written in {:.1?}",
            filled.elapsed()
        );
        let mut rows = Vec::new();
        for binary in ["gateway", "forwarder"] {
            let (mut service, startup) = self.start(binary, &topics, &[]).await?;
            let rss = rss_kb(service.pid()).unwrap_or(0) as f64 / 1024.0;
            service.stop();
            rows.push(BenchRow {
                name: format!("{binary} start-up, {orgs} organizations in settings"),
                throughput: format!("{:.2} s to ready", startup.as_secs_f64()),
                peak_rss_mb: Some(rss),
                notes: format!(
                    "spawn → /readyz 200 (reads the whole compacted settings topic: {orgs} org records of {} bytes)",
                    payload.len()
                ),
                ..BenchRow::default()
            });
        }
        Ok(rows)
    }

    /// The forwarder with `destinations` webhook destinations across `orgs` organizations.
    async fn fanout_run(&self, orgs: usize, destinations: usize) -> Result<BenchRow> {
        let topics = Topics::new(&format!("fanout{orgs}x{destinations}"));
        let webhook = FakeWebhook::start(WebhookSetup {
            record_items: false,
            ..WebhookSetup::default()
        })
        .await;
        let (mut gateway, _) = self.start("gateway", &topics, &[]).await?;
        let provisioned = Instant::now();
        let gateway_url = gateway.url();
        let org_names: Vec<String> = (0..orgs).map(|n| format!("org_{n:05}")).collect();
        let enterprise = futures::stream::iter(org_names.iter().map(|org| {
            self.admin(
                &gateway_url,
                reqwest::Method::PATCH,
                format!("/v1/admin/orgs/{org}"),
                json!({"plan": "enterprise"}),
            )
        }))
        .buffer_unordered(self.cli.concurrency)
        .collect::<Vec<_>>()
        .await;
        enterprise.into_iter().collect::<Result<Vec<_>>>()?;
        // Destinations round-robin over the organizations (2,000 × 2.5 = 5,000). One
        // organization's destinations are created one after the other: the operator API's
        // read-modify-write of an organization's record does not serialise concurrent writers
        // (two concurrent creations for one organization lose one).
        let webhook_url = webhook.url();
        let created = futures::stream::iter((0..orgs).map(|org_index| {
            let org = &org_names[org_index];
            let gateway_url = &gateway_url;
            let webhook_url = &webhook_url;
            async move {
                for n in (org_index..destinations).step_by(orgs) {
                    self.admin(
                        gateway_url,
                        reqwest::Method::POST,
                        format!("/v1/admin/orgs/{org}/destinations"),
                        json!({"name": format!("siem {n}"), "signing_secret": SIGNING_SECRET,
                               "config": {"type": "webhook", "url": format!("{webhook_url}/audit/{org}/{n}")}}),
                    )
                    .await?;
                }
                Ok::<(), anyhow::Error>(())
            }
        }))
        .buffer_unordered(self.cli.concurrency)
        .collect::<Vec<_>>()
        .await;
        created.into_iter().collect::<Result<Vec<_>>>()?;
        gateway.stop();
        println!(
            "fan-out: {orgs} organizations, {destinations} destinations provisioned in {:.1?}",
            provisioned.elapsed()
        );

        // Events spread evenly over the organizations, as a direct producer sends them (the
        // gateway created the topic: 6 partitions).
        let events_topic = format!("{}.events", topics.prefix);
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.cli.instance.kafka)
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "20")
            .set("compression.type", "lz4")
            .create()?;
        let at = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        let mut deliveries_expected = 0u64;
        for n in 0..self.cli.events {
            let org_index = usize::try_from(n).unwrap_or(0) % orgs;
            let org = &org_names[org_index];
            // Destinations of this org: n ≡ org_index (mod orgs), n < destinations.
            deliveries_expected += ((destinations - org_index).div_ceil(orgs)) as u64;
            let payload = generated_event(org, n, &at).to_string();
            send(&producer, &events_topic, org, &payload)?;
        }
        producer.flush(Duration::from_secs(300))?;

        let (mut forwarder, startup) = self.start("forwarder", &topics, &[]).await?;
        let rss_ready = rss_kb(forwarder.pid()).unwrap_or(0) as f64 / 1024.0;
        let sampler = RssSampler::start(forwarder.pid());
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            if webhook.core().stats().events >= deliveries_expected {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {deliveries_expected} deliveries after 30 minutes",
                    webhook.core().stats().events
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let received = webhook.core().received();
        let first = received.iter().map(|r| r.at_us).min().unwrap_or(0);
        let last = received.iter().map(|r| r.at_us).max().unwrap_or(0);
        let seconds = (last.saturating_sub(first)) as f64 / 1e6;
        let stats = webhook.core().stats();
        sampler.stop();
        let peak = sampler.peak_mb();
        // What stays once every event is delivered: the per-destination state (lanes, sinks,
        // metric series), without the events in flight.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let rss_after = rss_kb(forwarder.pid()).unwrap_or(0) as f64 / 1024.0;
        let metrics_bytes = self
            .http
            .get(format!("{}/metrics", forwarder.url()))
            .send()
            .await?
            .bytes()
            .await?
            .len();
        forwarder.stop();
        Ok(BenchRow {
            name: format!(
                "forwarder, {destinations} webhook destinations across {orgs} organizations"
            ),
            throughput: format!(
                "{:.0} events/s ({:.0} deliveries/s)",
                self.cli.events as f64 / seconds.max(1e-3),
                stats.events as f64 / seconds.max(1e-3)
            ),
            peak_rss_mb: Some(peak),
            notes: format!(
                "{} events (direct producer, validated) → {} deliveries ({deliveries_expected} for the events, each to every destination of its organization; the rest: the audit events of the settings changes) in {:.1} s, {} requests, {} signature failures; start-up {:.2} s, {rss_ready:.0} MB when ready, {rss_after:.0} MB 5 s after the last delivery, /metrics {} KB",
                self.cli.events,
                stats.events,
                seconds,
                stats.accepted_requests,
                stats.signature_failures,
                startup.as_secs_f64(),
                metrics_bytes / 1024
            ),
            ..BenchRow::default()
        })
    }
}

/// Queues one message, waiting for room while the producer's queue is full.
fn send(producer: &FutureProducer, topic: &str, key: &str, payload: &str) -> Result<()> {
    loop {
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(_) => return Ok(()),
            Err((error, _))
                if error.rdkafka_error_code()
                    == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => bail!("producing to {topic}: {error}"),
        }
    }
}

/// The newest record at `key` on the settings topic (key, JSON payload).
fn org_record(kafka: &str, topic: &str, key: &str) -> Result<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", "bench-scale-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = None;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.key() == Some(key.as_bytes()) => {
                let payload =
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
                found = Some((key.to_string(), payload));
            }
            Some(_) => {}
            None if found.is_some() => break,
            None => {}
        }
    }
    found.with_context(|| format!("no record {key} on {topic}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let bench = Bench {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?,
        cli,
    };
    let mut rows = Vec::new();
    for orgs in bench.cli.settings_orgs.clone() {
        rows.extend(bench.settings_run(orgs.max(1)).await?);
    }
    for run in bench.cli.fanout.clone() {
        let (orgs, destinations) = run
            .split_once(':')
            .and_then(|(o, d)| Some((o.parse::<usize>().ok()?, d.parse::<usize>().ok()?)))
            .with_context(|| format!("--fanout {run}: expected ORGANIZATIONS:DESTINATIONS"))?;
        if orgs == 0 || destinations < orgs {
            bail!("--fanout {run}: at least one destination per organization");
        }
        rows.push(bench.fanout_run(orgs, destinations).await?);
    }
    print_table(&rows);
    Ok(())
}
