//! The throughput runs: a topic pre-filled with `--events` events of one Enterprise
//! organization, then a release forwarder started on it; events/s from the first to the last
//! event the receiver accepted, peak RSS, and CPU per event of the forwarder and the receiver.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use audit_core::integrity::IntegrityKey;
use loadgen::{BenchRow, RssSampler, cpu_seconds};
use rdkafka::producer::Producer;

use crate::Cli;
use crate::kafka::{Topics, create_topic, producer, send};
use crate::services::{accepted_events, batch_sizes, start_forwarder, stats};

/// Pre-fills, forwards, measures.
pub(crate) async fn throughput_run(
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
