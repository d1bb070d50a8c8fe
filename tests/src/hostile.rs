//! What every hostile-input case checks after the hostile input: the pipeline still indexes
//! other organizations' events.

use std::time::{Duration, Instant};

use crate::events::{Gateway, event};
use crate::{Namespace, eventually};

/// Publishes one event of `org` through the gateway (202) and waits until ClickHouse serves
/// it; returns the time from the gateway's acknowledgement to the event being queryable.
pub async fn still_indexing(ns: &Namespace, gateway: &Gateway, key: &str, org: &str) -> Duration {
    let probe = event(org, "resource.created");
    let id = probe["id"].as_str().unwrap_or_default().to_string();
    let (status, body) = gateway.post_events(key, &probe).await;
    assert_eq!(
        status, 202,
        "another organization's event is accepted: {body}"
    );
    let acknowledged = Instant::now();
    let query = format!("SELECT count() FROM events FINAL WHERE org_id = '{org}' AND id = '{id}'");
    eventually(
        &format!("{org}'s new event indexed"),
        Duration::from_secs(60),
        || async { (ns.try_sql_u64(&query).await == Some(1)).then_some(()) },
    )
    .await;
    acknowledged.elapsed()
}

/// The answers one side of a [`ReadHammer`] got, by `"<status> <error code>"`.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub counts: std::collections::BTreeMap<String, u64>,
    /// 429s and 503s that did not say when to retry.
    pub without_retry_after: u64,
}

impl Answers {
    fn record(&mut self, status: u16, retry_after: bool, body: &str) {
        let code = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        *self
            .counts
            .entry(format!("{status} {code}").trim_end().to_string())
            .or_default() += 1;
        if matches!(status, 429 | 503) && !retry_after {
            self.without_retry_after += 1;
        }
    }

    /// How many answers start with `prefix` (`"429"`, `"200"`, …).
    pub fn count(&self, prefix: &str) -> u64 {
        self.counts
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// One tenant hammering the read API with one credential: `searches` connections looping a
/// search that matches almost everything (`q=a`, 1,000 per page) and `exports` connections
/// each opening an export and reading it slowly (a chunk every 500 ms), reopening when
/// refused or done. Runs until [`ReadHammer::stop`].
#[derive(Debug)]
pub struct ReadHammer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    searches: std::sync::Arc<std::sync::Mutex<Answers>>,
    exports: std::sync::Arc<std::sync::Mutex<Answers>>,
}

impl ReadHammer {
    pub fn start(
        gateway_url: &str,
        org: &str,
        token: &str,
        searches: usize,
        exports: usize,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let hammer = Self {
            stop: Default::default(),
            tasks: Vec::new(),
            searches: Default::default(),
            exports: Default::default(),
        };
        let http = reqwest::Client::new();
        let mut tasks = Vec::new();
        for _ in 0..searches {
            let (http, token, stop, answers) = (
                http.clone(),
                token.to_string(),
                hammer.stop.clone(),
                hammer.searches.clone(),
            );
            let url = format!("{gateway_url}/v1/orgs/{org}/events?q=a&limit=1000");
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(response) = http.get(&url).bearer_auth(&token).send().await else {
                        continue;
                    };
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    let body = response.text().await.unwrap_or_default();
                    let mut answers = answers.lock().unwrap_or_else(|e| e.into_inner());
                    answers.record(status, retry_after, &body);
                }
            }));
        }
        for _ in 0..exports {
            let (http, token, stop, answers) = (
                http.clone(),
                token.to_string(),
                hammer.stop.clone(),
                hammer.exports.clone(),
            );
            let url = format!("{gateway_url}/v1/orgs/{org}/events/export?format=ndjson");
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut response) = http.get(&url).bearer_auth(&token).send().await else {
                        continue;
                    };
                    let status = response.status().as_u16();
                    let retry_after = response.headers().contains_key("retry-after");
                    if status != 200 {
                        let body = response.text().await.unwrap_or_default();
                        answers.lock().unwrap_or_else(|e| e.into_inner()).record(
                            status,
                            retry_after,
                            &body,
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    answers.lock().unwrap_or_else(|e| e.into_inner()).record(
                        status,
                        retry_after,
                        "",
                    );
                    while !stop.load(Ordering::Relaxed) {
                        match response.chunk().await {
                            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(500)).await,
                            _ => break,
                        }
                    }
                }
            }));
        }
        Self { tasks, ..hammer }
    }

    /// Stops hammering; returns the answers to the searches and to the exports.
    pub fn stop(self) -> (Answers, Answers) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
        let take = |answers: &std::sync::Mutex<Answers>| {
            answers.lock().unwrap_or_else(|e| e.into_inner()).clone()
        };
        (take(&self.searches), take(&self.exports))
    }
}
