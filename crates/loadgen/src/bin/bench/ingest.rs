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

/// Gateway ingest: batches, single events back to back, single events at a fixed rate.
pub(crate) async fn ingest(bench: &mut Bench) -> anyhow::Result<()> {
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
