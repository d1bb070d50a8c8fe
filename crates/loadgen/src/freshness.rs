//! Freshness: how long after the gateway acknowledged an event it is queryable in ClickHouse,
//! with events published at a steady rate (50 every 10 ms: 5,000 events/s across 100
//! organizations) and every 10th event tracked, polled every 50 ms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use crate::{Latencies, clickhouse, generated_event, now_rfc3339};

/// Where to publish and where to look.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: reqwest::Client,
    /// `…/v1/events` of the gateway.
    pub ingest_url: String,
    pub key: String,
    pub clickhouse: String,
    pub database: String,
}

/// What one run measured.
#[derive(Debug)]
pub struct Freshness {
    pub latencies: Latencies,
    /// Events offered (published or attempted).
    pub offered: u64,
    /// Tracked events never seen in ClickHouse.
    pub unseen: usize,
    pub probe_errors: ProbeErrors,
}

/// Publishes for `duration`, then waits up to 15 s for the tracked events to appear.
pub async fn measure(target: &Target, duration: Duration) -> Freshness {
    let acked: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Latencies::default()));
    let poller = {
        let (target, acked, latencies) = (target.clone(), acked.clone(), latencies.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut errors = ProbeErrors::default();
            while started.elapsed() < duration + Duration::from_secs(15) {
                let pending: Vec<String> = acked.lock().await.keys().cloned().collect();
                // One query per chunk: the ids of a long stall in one `IN` list would pass
                // ClickHouse's `max_query_size` (256 KiB, ≈ 6,700 ids), and every later probe
                // would fail — the events would look never indexed.
                for chunk in pending.chunks(PROBE_CHUNK) {
                    let list = chunk
                        .iter()
                        .map(|id| format!("'{id}'"))
                        .collect::<Vec<_>>()
                        .join(",");
                    let sql = format!(
                        "SELECT toString(id) FROM events WHERE id IN ({list}) FORMAT TSVRaw"
                    );
                    match clickhouse(&target.http, &target.clickhouse, &target.database, &sql).await
                    {
                        Ok(found) => {
                            let now = Instant::now();
                            let mut acked = acked.lock().await;
                            let mut latencies = latencies.lock().await;
                            for id in found.lines() {
                                if let Some(at) = acked.remove(id) {
                                    latencies.record(now - at);
                                }
                            }
                        }
                        Err(error) => errors.note(error),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            errors
        })
    };
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut n = 0u64;
    let mut sends = Vec::new();
    while started.elapsed() < duration {
        ticker.tick().await;
        let at = now_rfc3339();
        let batch: Vec<Value> = (0..50)
            .map(|i| generated_event(&format!("org_{:03}", (n + i) % 100), n + i, &at))
            .collect();
        n += 50;
        let tracked: Vec<String> = batch
            .iter()
            .step_by(10)
            .map(|e| e["id"].as_str().unwrap_or_default().to_string())
            .collect();
        let (http, url, key, acked) = (
            target.http.clone(),
            target.ingest_url.clone(),
            target.key.clone(),
            acked.clone(),
        );
        sends.push(tokio::spawn(async move {
            if let Ok(response) = http.post(&url).bearer_auth(&key).json(&batch).send().await
                && response.status().is_success()
            {
                let at = Instant::now();
                let mut acked = acked.lock().await;
                for id in tracked {
                    acked.insert(id, at);
                }
            }
        }));
    }
    for send in sends {
        let _ = send.await;
    }
    let probe_errors = poller.await.unwrap_or_default();
    let latencies = std::mem::take(&mut *latencies.lock().await);
    let unseen = acked.lock().await.len();
    Freshness {
        latencies,
        offered: n,
        unseen,
        probe_errors,
    }
}

/// Ids per probe query (≈ 39 bytes each: far below `max_query_size`).
const PROBE_CHUNK: usize = 1_000;

/// Probe queries ClickHouse refused or did not answer: a run with many of them measured the
/// probe, not the indexer.
#[derive(Debug, Default)]
pub struct ProbeErrors {
    pub count: u64,
    pub last: Option<String>,
}

impl ProbeErrors {
    /// For a row's notes: empty when every probe was answered.
    pub fn describe(&self) -> String {
        match &self.last {
            Some(last) => format!("; **{} probe queries failed** (last: {last})", self.count),
            None => String::new(),
        }
    }

    fn note(&mut self, error: anyhow::Error) {
        self.count += 1;
        self.last = Some(format!("{error:#}").chars().take(300).collect());
    }
}
