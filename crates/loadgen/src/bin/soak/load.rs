//! The soak's load and what it watches meanwhile: batches through each gateway, events
//! produced straight to Kafka, both recorded in the ledger once acknowledged; and a sampler
//! of peak RSS and consumer lag, with a progress line every 30 s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use loadgen::{generated_event, now_rfc3339, rss_kb};
use serde_json::Value;

use crate::Soak;

/// Batches through the gateway on `port`, 20 a second, until `stop`.
pub(crate) async fn gateway_load(
    soak: Arc<Soak>,
    port: u16,
    key: String,
    stop: Arc<AtomicBool>,
    seed: u64,
) {
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

/// Events produced straight to Kafka (a quarter of the gateway rate), until `stop`.
pub(crate) async fn direct_load(soak: Arc<Soak>, stop: Arc<AtomicBool>) {
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
pub(crate) async fn sampler(soak: Arc<Soak>, stop: Arc<AtomicBool>) {
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
