//! `bench ingest`: the gateway's ingest throughput (batches of 100 and 1,000, single-event
//! requests) and its latency at a fixed 2,000 req/s, with the load generators they use: a
//! closed loop (workers back to back) and an open loop (a fixed schedule, latency from the
//! scheduled time).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use loadgen::{BenchRow, Latencies, RssSampler, generated_event, now_rfc3339};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{Bench, Namespace};

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

impl LoadResult {
    /// The table row of this run: its latency percentiles beside the given columns.
    fn row(&self, name: String, throughput: String, peak_rss_mb: f64, notes: String) -> BenchRow {
        BenchRow {
            name,
            throughput,
            p50_ms: Some(self.latencies.percentile_ms(50.0)),
            p99_ms: Some(self.latencies.percentile_ms(99.0)),
            peak_rss_mb: Some(peak_rss_mb),
            notes,
        }
    }

    fn per_second(&self, count: u64) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }
}

/// Where the load goes: the gateway's ingest URL, with a producer key.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: Arc<str>,
    key: Arc<str>,
}

impl Target {
    /// Posts one body; whether the gateway accepted it. The answer is read to its end either
    /// way, so the connection is reused.
    async fn post(&self, body: Bytes) -> bool {
        let response = self
            .http
            .post(&*self.url)
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match response {
            Ok(response) => {
                let accepted = response.status().is_success();
                let _ = response.bytes().await;
                accepted
            }
            Err(_) => false,
        }
    }
}

/// What the requests of one run add up to.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Latencies>,
}

impl Tally {
    /// The run's result once every request is answered (`per_body` events per request).
    async fn result(&self, started: Instant, per_body: u64) -> LoadResult {
        let requests = self.requests.load(Ordering::Relaxed);
        LoadResult {
            requests,
            events: requests * per_body,
            errors: self.errors.load(Ordering::Relaxed),
            latencies: std::mem::take(&mut *self.latencies.lock().await),
            elapsed: started.elapsed(),
        }
    }
}

/// Closed loop: `concurrency` workers send back to back for `duration`.
async fn closed_loop(
    target: &Target,
    bodies: Arc<Vec<Bytes>>,
    per_body: u64,
    concurrency: usize,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (target, bodies, tally) = (target.clone(), bodies.clone(), tally.clone());
        workers.push(tokio::spawn(async move {
            // Each worker keeps its own histogram: one lock per worker, not per request.
            let mut latencies = Latencies::default();
            let mut n = worker;
            while started.elapsed() < duration {
                let body = bodies[n % bodies.len()].clone();
                n += concurrency;
                let sent = Instant::now();
                if target.post(body).await {
                    latencies.record(sent.elapsed());
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            tally.latencies.lock().await.merge(&latencies);
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    tally.result(started, per_body).await
}

/// Open loop: `rate` requests per second on a fixed schedule; latency counts from the
/// scheduled time, so a slow server cannot hide its queueing (no coordinated omission).
async fn open_loop(
    target: &Target,
    bodies: Arc<Vec<Bytes>>,
    rate: u64,
    duration: Duration,
) -> LoadResult {
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < duration {
        let scheduled = ticker.tick().await;
        for _ in 0..per_tick {
            let (target, body, tally) = (
                target.clone(),
                bodies[n % bodies.len()].clone(),
                tally.clone(),
            );
            n += 1;
            handles.push(tokio::spawn(async move {
                if target.post(body).await {
                    tally.latencies.lock().await.record(scheduled.elapsed());
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                } else {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for handle in handles {
        let _ = handle.await;
    }
    tally.result(started, 1).await
}

/// Gateway ingest: batches, single events back to back, single events at a fixed rate.
pub(crate) async fn ingest(bench: &mut Bench) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "ingest");
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let target = Target {
        http: bench.http.clone(),
        url: format!("{}/v1/events", gateway.url()).into(),
        key: bench.producer_key(&gateway).await?.into(),
    };
    let rss = RssSampler::start(gateway.pid());
    let duration = Duration::from_secs(bench.cli.seconds);
    let warm_up = Duration::from_secs(2);

    // The batches-of-1,000 rate, beside its bare-producer peer below.
    let mut batched = 0.0;
    for (per_body, concurrency) in [(100usize, 8usize), (1000, 4)] {
        // Warm up connections and the producer.
        let warm_up_bodies = Arc::new(bodies(per_body, 4));
        closed_loop(
            &target,
            warm_up_bodies,
            per_body as u64,
            concurrency,
            warm_up,
        )
        .await;
        rss.reset();
        let bodies = Arc::new(bodies(per_body, 64));
        let result = closed_loop(&target, bodies, per_body as u64, concurrency, duration).await;
        batched = result.per_second(result.events);
        bench.rows.push(result.row(
            format!("gateway ingest, batches of {per_body} ({concurrency} connections)"),
            format!("{batched:.0} events/s"),
            rss.peak_mb(),
            format!(
                "{} requests, {} errors; latency per request",
                result.requests, result.errors
            ),
        ));
    }

    let bare = bare_produce(&ns, &bodies(1000, 64), duration).await?;
    bench.rows.push(BenchRow {
        name: "peer: bare rdkafka producer, the same events, the gateway's producer settings".into(),
        throughput: format!("{bare:.0} events/s"),
        notes: format!(
            "**gateway (batches of 1,000) / bare = {:.2}**; acks=all, idempotent, linger 2 ms, lz4, one message per event keyed by organization, up to 4,000 in flight, every delivery awaited",
            batched / bare
        ),
        ..BenchRow::default()
    });

    let singles = Arc::new(bodies(1, 2000));
    closed_loop(&target, singles.clone(), 1, 64, warm_up).await;
    rss.reset();
    let result = closed_loop(&target, singles.clone(), 1, 64, duration).await;
    bench.rows.push(result.row(
        "gateway ingest, single-event requests (64 connections)".into(),
        format!("{:.0} req/s", result.per_second(result.requests)),
        rss.peak_mb(),
        format!("{} errors", result.errors),
    ));

    rss.reset();
    let result = open_loop(&target, singles, 2000, duration).await;
    bench.rows.push(result.row(
        "gateway ingest, single events at a fixed 2,000 req/s".into(),
        format!("{:.0} req/s", result.per_second(result.requests)),
        rss.peak_mb(),
        format!(
            "open loop, latency from the scheduled send time; {} errors",
            result.errors
        ),
    ));
    rss.stop();
    Ok(())
}

/// The gateway's peer: the events of `bodies` produced straight to the gateway's topic by one
/// rdkafka producer with the gateway's settings (`config/gateway.toml` `[producer]`), as many
/// in flight as the batched run has (4 connections × 1,000 events). Events per second
/// acknowledged by the broker.
async fn bare_produce(ns: &Namespace, bodies: &[Bytes], duration: Duration) -> anyhow::Result<f64> {
    use futures::StreamExt;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

    let mut events = Vec::new();
    for body in bodies {
        let batch: Vec<Value> = serde_json::from_slice(body)?;
        for event in batch {
            let org = event["org_id"].as_str().unwrap_or_default().to_string();
            events.push((org, event.to_string()));
        }
    }
    let kafka = audit_kafka::KafkaConfig {
        brokers: ns.kafka.clone(),
        properties: Default::default(),
        secret_properties: Default::default(),
    };
    let mut config = kafka.client_config("bench-bare");
    audit_kafka::ProducerTuning {
        linger_ms: 2,
        delivery_timeout_ms: 5_000,
        ..Default::default()
    }
    .apply(&mut config);
    let producer: FutureProducer = config.create()?;
    let topic = ns.events_topic();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let (mut delivered, mut failed) = (0u64, 0u64);
    let started = Instant::now();
    let mut n = 0usize;
    // Send while the run lasts, settling one delivery whenever 4,000 are in flight; then
    // settle the rest.
    loop {
        if started.elapsed() < duration {
            let (org, payload) = &events[n % events.len()];
            n += 1;
            let record = FutureRecord::to(&topic).key(org).payload(payload);
            match producer.send_result(record) {
                Ok(delivery) => in_flight.push(delivery),
                Err((error, _)) => anyhow::bail!("bare producer: {error}"),
            }
            if in_flight.len() < 4_000 {
                continue;
            }
        }
        match in_flight.next().await {
            Some(Ok(Ok(_))) => delivered += 1,
            Some(_) => failed += 1,
            None => break,
        }
    }
    let elapsed = started.elapsed();
    producer.flush(Duration::from_secs(10))?;
    if failed > 0 {
        anyhow::bail!("bare producer: {failed} deliveries failed");
    }
    Ok(delivered as f64 / elapsed.as_secs_f64())
}
