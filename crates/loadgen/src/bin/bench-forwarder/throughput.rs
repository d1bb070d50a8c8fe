//! The throughput runs: a topic pre-filled with `--events` events of one Enterprise
//! organization, then a release forwarder started on it; events/s from the first to the last
//! event the receiver accepted, peak RSS, and CPU per event of the forwarder and the receiver.
//! Each is followed by its peer's row ([`crate::peer`]): a bare client posting the same batches.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use audit_core::integrity::IntegrityKey;
use loadgen::{BenchRow, RssSampler, cpu_seconds, cpu_seconds_since};
use rdkafka::producer::Producer;

use crate::Cli;
use crate::kafka::{Topics, create_topic, producer, send};
use crate::peer::Peer;
use crate::services::{Counters, accepted_events, batch_sizes, start_forwarder};

/// Where a throughput run forwards to.
pub(crate) struct Target<'a> {
    /// The destination type (`splunk_hec`, `webhook`).
    pub(crate) kind: &'a str,
    /// The organization, whose one destination is of that type.
    pub(crate) org: &'a str,
    /// The fake receiver's URL and the fake receivers' process.
    pub(crate) receiver: &'a str,
    pub(crate) receiver_pid: u32,
}

/// Pre-fills, forwards, measures; then the peer, when there is one. The forwarder's row, and
/// the peer's.
pub(crate) async fn throughput_run(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    target: &Target<'_>,
    key: Option<&IntegrityKey>,
    peer: Option<&Peer>,
) -> Result<Vec<BenchRow>> {
    let Target {
        kind: run,
        org,
        receiver,
        receiver_pid,
    } = *target;
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
    let counters_before = Counters::read(http, receiver).await?;
    let before = counters_before.get("events");
    let expected = before + cli.events;
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
        if count >= expected {
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
    let receiver_cpu = per_event_us(cpu_seconds_since(receiver_pid, receiver_cpu_before));
    forwarder.stop();
    let (first_at, first_count) = first.unwrap_or((launched, before));
    let measured = last.0.duration_since(first_at).as_secs_f64().max(0.001);
    let rate = (last.1 - first_count) as f64 / measured;
    println!(
        "bench: {slug}: CPU per event: forwarder {forwarder_cpu:.1} µs, receiver {receiver_cpu:.1} µs; {batches}"
    );
    let counters_after = Counters::read(http, receiver).await?;
    let forwarder_row = BenchRow {
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
            "{} events of one organization (one partition, in order), batching + HMAC signing, JSON, no compression; {:.1} s incl. start; CPU per event: forwarder {forwarder_cpu:.1} µs, receiver {receiver_cpu:.1} µs; {}",
            cli.events,
            total.as_secs_f64(),
            counters_after.summary_since(&counters_before),
        ),
    };
    let Some(peer) = peer else {
        return Ok(vec![forwarder_row]);
    };
    let posted = peer.run(http, &topic, target, cli.events).await?;
    let name = match (key, ocsf) {
        (Some(_), false) => format!("peer: bare HTTP client → {run} (fake), same signed batches"),
        (Some(_), true) => {
            format!("peer: bare HTTP client → {run} (fake), format ocsf, same signed batches")
        }
        (None, _) => format!(
            "peer: bare HTTP client → {run} (fake), same signed batches of the direct producer's events"
        ),
    };
    Ok(vec![forwarder_row, posted.row(name, rate)])
}
