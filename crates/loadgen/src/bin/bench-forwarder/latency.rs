//! The latency runs: a fresh forwarder on an empty topic, one warm-up event end to end, then
//! events at a fixed rate; latency = receiver arrival − produce call, matched per event id.
//! The neighbour runs measure the same with another organization sharing the partition,
//! healthy then hung, to show one tenant's stuck destination does not slow another's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use audit_core::integrity::IntegrityKey;
use loadgen::{BenchRow, Latencies, RssSampler};
use rdkafka::producer::Producer;
use serde_json::Value;

use crate::Cli;
use crate::kafka::{Topics, create_topic, now_us, producer, send};
use crate::services::{accepted_events, start_forwarder};

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

/// One organization at `--rate` for `--latency-secs`, alone on its partitions.
pub(crate) async fn latency_run(
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
pub(crate) async fn neighbour_run(
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
