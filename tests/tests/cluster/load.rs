//! Load through a gateway and straight to Kafka during a test, and the ledger of what clients
//! were told (acknowledged, refused with Retry-After, anything else).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::events::event;
use audit_tests::kafka;
use serde_json::Value;
use tokio::sync::Mutex;

/// What clients were told, per event id.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged (gateway 202, or a Kafka ack for direct producers): id → org.
    pub acknowledged: HashMap<String, String>,
    /// Answered 503 with Retry-After (not acknowledged; a client retries them).
    pub refused: usize,
    /// Any other answer: (status, Retry-After, body). Must stay empty.
    pub unexpected: Vec<(u16, Option<String>, String)>,
}

/// Posts batches of `batch` events for `orgs` every `every` until `stop`, through `gateway`.
pub async fn gateway_load(
    gateway: String,
    key: String,
    orgs: Vec<String>,
    batch: usize,
    every: Duration,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let mut n = 0usize;
    let mut ticker = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let events: Vec<Value> = (0..batch)
            .map(|i| event(&orgs[(n + i) % orgs.len()], "user.login.succeeded"))
            .collect();
        n += batch;
        let answer = http
            .post(format!("{gateway}/v1/events"))
            .bearer_auth(&key)
            .json(&events)
            .send()
            .await;
        let mut ledger = ledger.lock().await;
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                ledger
                    .unexpected
                    .push((0, None, format!("no answer: {error}")));
                continue;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match status {
            202 => {
                for event in &events {
                    ledger.acknowledged.insert(
                        event["id"].as_str().unwrap().to_string(),
                        event["org_id"].as_str().unwrap().to_string(),
                    );
                }
            }
            503 if retry_after.is_some() => ledger.refused += events.len(),
            _ => {
                let body = response.text().await.unwrap_or_default();
                ledger.unexpected.push((status, retry_after, body));
            }
        }
    }
}

/// Produces one event per org every `every` straight to Kafka until `stop`.
pub async fn kafka_load(
    brokers: String,
    topic: String,
    orgs: Vec<String>,
    every: Duration,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let producer = kafka::producer(&brokers);
    let mut ticker = tokio::time::interval(every);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        for org in &orgs {
            let sent = event(org, "resource.created");
            let payload = sent.to_string();
            let record = rdkafka::producer::FutureRecord::to(&topic)
                .key(org.as_str())
                .payload(&payload);
            if producer.send(record, Duration::from_secs(30)).await.is_ok() {
                ledger
                    .lock()
                    .await
                    .acknowledged
                    .insert(sent["id"].as_str().unwrap().to_string(), org.clone());
            }
        }
    }
}
