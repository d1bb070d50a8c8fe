//! The services around the forwarder: a gateway started only to create the organizations and
//! destinations through the operator API (stopped before measuring), a release forwarder per
//! run, and the counters the fake receivers and the forwarder expose.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};

use crate::kafka::Topics;
use crate::process::{Process, wait_ready};
use crate::{Cli, HEC_TOKEN, OPERATOR_TOKEN, SIGNING_SECRET};

/// The forwarder's configuration file (relative to the repository root).
pub(crate) const FORWARDER_CONFIG: &str = "config/forwarder.toml";

/// Creates the organizations and destinations of the benchmark through a gateway.
pub(crate) async fn provision(
    cli: &Cli,
    topics: &Topics,
    http: &reqwest::Client,
    hec_url: &str,
    webhook_url: &str,
    hung_webhook_url: &str,
) -> Result<HashMap<&'static str, String>> {
    let [port, ops_port] = loadgen::free_ports();
    let env = vec![
        ("GATEWAY__KAFKA__BROKERS".to_string(), cli.brokers.clone()),
        (
            "GATEWAY__OPS__LISTEN".to_string(),
            format!("127.0.0.1:{ops_port}"),
        ),
        (
            "GATEWAY__TOPICS__EVENTS".to_string(),
            format!("{}.gateway.events", topics.prefix),
        ),
        (
            "GATEWAY__TOPICS__DEAD_LETTER".to_string(),
            topics.dead_letter(),
        ),
        ("GATEWAY__TOPICS__SETTINGS".to_string(), topics.settings()),
        (
            "GATEWAY__TOPICS__FORWARDER_RETRY".to_string(),
            topics.retry(),
        ),
        (
            "GATEWAY__HTTP__LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "GATEWAY__TELEMETRY__LOG_FORMAT".to_string(),
            "text".to_string(),
        ),
    ];
    let mut gateway = Process::spawn(
        "gateway",
        &cli.bin_dir.join("gateway"),
        &["--config", "config/gateway.toml"],
        &env,
        Path::new(&format!("/tmp/{}-gateway.log", topics.prefix)),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        http,
        &format!("http://127.0.0.1:{ops_port}/readyz"),
        &mut gateway,
    )
    .await?;
    let admin = |method: reqwest::Method, path: String, body: Value| {
        let request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body);
        async move {
            let response = request.send().await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                return Err(anyhow!("{status}: {body}"));
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    let mut ids = HashMap::new();
    for (org, config) in [
        (
            "org_bench_hec",
            json!({"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}),
        ),
        (
            "org_bench_webhook",
            json!({"type": "webhook", "url": format!("{webhook_url}/audit")}),
        ),
        (
            "org_bench_hec_ocsf",
            json!({"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}),
        ),
        (
            "org_bench_webhook_ocsf",
            json!({"type": "webhook", "url": format!("{webhook_url}/audit")}),
        ),
        (
            "org_bench_latency",
            json!({"type": "splunk_hec", "url": hec_url, "token": HEC_TOKEN, "index": "audit"}),
        ),
        (
            "org_bench_neighbour",
            json!({"type": "webhook", "url": format!("{webhook_url}/neighbour")}),
        ),
        (
            "org_bench_hung",
            json!({"type": "webhook", "url": format!("{hung_webhook_url}/hung")}),
        ),
    ] {
        admin(
            reqwest::Method::PATCH,
            format!("/v1/admin/orgs/{org}"),
            json!({"plan": "enterprise"}),
        )
        .await?;
        let created = admin(
            reqwest::Method::POST,
            format!("/v1/admin/orgs/{org}/destinations"),
            json!({"name": format!("{org} destination"), "signing_secret": SIGNING_SECRET, "config": config,
                   "format": if org.ends_with("_ocsf") { "ocsf" } else { "native" }}),
        )
        .await?;
        ids.insert(org, created["id"].as_str().unwrap_or_default().to_string());
    }
    gateway.stop();
    Ok(ids)
}

/// Starts a release forwarder on `events_topic` with group `group`.
pub(crate) async fn start_forwarder(
    cli: &Cli,
    topics: &Topics,
    events_topic: &str,
    group: &str,
    http: &reqwest::Client,
) -> Result<(Process, String)> {
    let port = loadgen::free_port();
    let env = vec![
        ("FORWARDER__KAFKA__BROKERS".to_string(), cli.brokers.clone()),
        (
            "FORWARDER__TOPICS__EVENTS".to_string(),
            events_topic.to_string(),
        ),
        (
            "FORWARDER__TOPICS__DEAD_LETTER".to_string(),
            topics.dead_letter(),
        ),
        ("FORWARDER__TOPICS__SETTINGS".to_string(), topics.settings()),
        (
            "FORWARDER__TOPICS__FORWARDER_RETRY".to_string(),
            topics.retry(),
        ),
        (
            "FORWARDER__HTTP__LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "FORWARDER__CONSUMER__GROUP_ID".to_string(),
            group.to_string(),
        ),
    ]
    .into_iter()
    .chain(cli.forwarder_env.iter().cloned())
    .collect::<Vec<_>>();
    let mut forwarder = Process::spawn(
        "forwarder",
        &cli.bin_dir.join("forwarder"),
        &["--config", FORWARDER_CONFIG],
        &env,
        Path::new(&format!("/tmp/{group}-forwarder.log")),
    )?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(http, &format!("{url}/readyz"), &mut forwarder).await?;
    Ok((forwarder, url))
}

/// A fake receiver's counters at one moment (`/_fake/stats`).
pub(crate) struct Counters(Value);

impl Counters {
    pub(crate) async fn read(http: &reqwest::Client, receiver: &str) -> Result<Self> {
        let stats = http
            .get(format!("{receiver}/_fake/stats"))
            .send()
            .await?
            .json()
            .await?;
        Ok(Self(stats))
    }

    /// The counter `name` (`events`, `accepted_requests`, `duplicates`, …).
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.0[name].as_u64().unwrap_or(0)
    }

    /// How much `name` grew since `earlier`.
    pub(crate) fn since(&self, earlier: &Self, name: &str) -> u64 {
        self.get(name).saturating_sub(earlier.get(name))
    }

    /// What the receiver saw since `earlier`, for a row's notes.
    pub(crate) fn summary_since(&self, earlier: &Self) -> String {
        format!(
            "{} requests, {} duplicates, {} signature failures",
            self.since(earlier, "accepted_requests"),
            self.since(earlier, "duplicates"),
            self.since(earlier, "signature_failures"),
        )
    }
}

/// Events a fake receiver accepted so far.
pub(crate) async fn accepted_events(http: &reqwest::Client, receiver: &str) -> Result<u64> {
    Ok(Counters::read(http, receiver).await?.get("events"))
}

/// The forwarder's batches so far (`forwarder_batch_rows` and `forwarder_batch_bytes`
/// histograms of its `/metrics`): count, mean events and mean bytes.
pub(crate) async fn batch_sizes(http: &reqwest::Client, forwarder: &str) -> String {
    let Ok(response) = http.get(format!("{forwarder}/metrics")).send().await else {
        return "batches: no metrics".into();
    };
    let text = response.text().await.unwrap_or_default();
    let total = |name: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let count = total("forwarder_batch_rows_count");
    format!(
        "batches: {count:.0}, mean {:.0} events, {:.0} bytes",
        total("forwarder_batch_rows_sum") / count.max(1.0),
        total("forwarder_batch_bytes_sum") / count.max(1.0)
    )
}
