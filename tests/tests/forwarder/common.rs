//! What the forwarder tests share: the forwarder binary as a child process with fast retry
//! settings, destinations created through the gateway, publishing, and waiting for delivery.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook, SIGNING_SECRET};
use audit_tests::infra::repo_root;
use audit_tests::service::{bin_dir, free_port};
use audit_tests::{Namespace, eventually};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use serde_json::{Value, json};

/// Settings that make retries fast enough for tests.
pub const FAST: &[(&str, &str)] = &[
    ("FORWARDER__DELIVERY__LINGER_MS", "50"),
    ("FORWARDER__RETRY__INITIAL_BACKOFF_MS", "200"),
    ("FORWARDER__RETRY__MAX_BACKOFF_MS", "2000"),
    ("FORWARDER__RETRY__IN_MEMORY_ATTEMPTS", "2"),
    ("FORWARDER__RETRY__IN_MEMORY_BUDGET_MS", "3000"),
    ("FORWARDER__RETRY__PAUSED_RECHECK_SECS", "2"),
    ("FORWARDER__HEALTH__PUBLISH_INTERVAL_SECS", "1"),
    ("FORWARDER__CONSUMER__COMMIT_INTERVAL_MS", "200"),
    ("FORWARDER__CONSUMER__DRAIN_TIMEOUT_SECS", "5"),
    ("FORWARDER__TELEMETRY__LOG_FORMAT", "text"),
];

/// The forwarder binary as a child process (SIGKILL-able), in a test's namespace.
pub struct Forwarder {
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Where the process writes its log (read by tests that check what it said).
    pub log: PathBuf,
}

impl Forwarder {
    pub async fn start(ns: &Namespace, extra: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("FORWARDER__KAFKA__BROKERS".into(), ns.infra.kafka.clone()),
            ("FORWARDER__TOPICS__EVENTS".into(), ns.events_topic.clone()),
            (
                "FORWARDER__TOPICS__DEAD_LETTER".into(),
                ns.dead_letter_topic.clone(),
            ),
            (
                "FORWARDER__TOPICS__SETTINGS".into(),
                ns.settings_topic.clone(),
            ),
            (
                "FORWARDER__TOPICS__FORWARDER_RETRY".into(),
                ns.retry_topic.clone(),
            ),
            (
                "FORWARDER__HTTP__LISTEN".into(),
                format!("127.0.0.1:{port}"),
            ),
            (
                "FORWARDER__CONSUMER__GROUP_ID".into(),
                format!("{}-forwarder", ns.id),
            ),
        ];
        for (key, value) in FAST.iter().chain(extra) {
            env.retain(|(existing, _)| existing != key);
            env.push(((*key).to_string(), (*value).to_string()));
        }
        let mut forwarder = Self {
            port,
            env,
            child: None,
            log: ns.dir.join(format!("forwarder-{port}.log")),
        };
        forwarder.launch();
        forwarder.wait_ready().await;
        forwarder
    }

    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = bin_dir().join("forwarder");
        assert!(
            binary.exists(),
            "{} is missing: cargo build --workspace --bins",
            binary.display()
        );
        let child = Command::new(&binary)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "RUST_LOG",
                std::env::var("AUDIT_TEST_SERVICE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.url())).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "forwarder not ready; log:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no drain.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_ready().await;
    }

    /// SIGTERM: drain, commit, leave the group; waits for the exit.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// This instance's view of its destinations.
    pub async fn destinations(&self) -> Value {
        reqwest::get(format!("{}/v1/destinations", self.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Runs `forwarder <args>` (e.g. `replay`) with this instance's settings; returns stdout.
    pub fn command(&self, args: &[&str]) -> String {
        let output = Command::new(bin_dir().join("forwarder"))
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "forwarder {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Puts `org` on the Enterprise plan.
pub async fn enterprise(gateway: &Gateway, org: &str) {
    gateway.enterprise(org).await;
}

/// Creates a destination; returns its id.
pub async fn destination(
    gateway: &Gateway,
    org: &str,
    name: &str,
    config: Value,
    filters: Value,
) -> String {
    let (status, body) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/{org}/destinations"),
            &json!({"name": name, "signing_secret": SIGNING_SECRET, "filters": filters, "config": config}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

pub fn hec_config(hec: &FakeHec) -> Value {
    json!({"type": "splunk_hec", "url": hec.url(), "token": hec.token(), "index": "audit", "sourcetype": "solarius:audit"})
}

pub fn webhook_config(webhook: &FakeWebhook) -> Value {
    json!({"type": "webhook", "url": format!("{}/audit", webhook.url())})
}

/// Publishes events through the gateway, 500 per request; returns their ids.
pub async fn publish(gateway: &Gateway, key: &str, events: &[Value]) -> Vec<String> {
    for chunk in events.chunks(500) {
        let (status, body) = gateway.post_events(key, &json!(chunk)).await;
        assert_eq!(status, 202, "{body}");
    }
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// `n` events of `org` cycling through `actions`.
pub fn events(org: &str, actions: &[&str], n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| event(org, actions[i % actions.len()]))
        .collect()
}

/// Waits until `fake` has accepted every id in `ids`.
pub async fn delivered_all(what: &str, fake: &impl Fake, ids: &[String], timeout: Duration) {
    let wanted: HashSet<&String> = ids.iter().collect();
    eventually(what, timeout, || async {
        let got = fake.unique_ids();
        wanted.iter().all(|id| got.contains(*id)).then_some(())
    })
    .await;
}

/// Whether a consumer group has committed every message of `topic` (it processed them all).
pub fn group_caught_up(brokers: &str, group: &str, topic: &str) -> bool {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut list = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .unwrap();
        ends.insert(partition.id(), high);
        list.add_partition(topic, partition.id());
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    let caught_up = committed.elements().iter().all(|element| {
        let end = ends[&element.partition()];
        match element.offset() {
            rdkafka::Offset::Offset(offset) => offset >= end,
            _ => end == 0,
        }
    });
    drop(committed);
    caught_up
}

pub async fn wait_caught_up(ns: &Namespace) {
    let brokers = ns.infra.kafka.clone();
    let group = format!("{}-forwarder", ns.id);
    let topic = ns.events_topic.clone();
    eventually(
        "the forwarder to commit every event",
        Duration::from_secs(60),
        || {
            let (brokers, group, topic) = (brokers.clone(), group.clone(), topic.clone());
            async move {
                tokio::task::spawn_blocking(move || group_caught_up(&brokers, &group, &topic))
                    .await
                    .unwrap()
                    .then_some(())
            }
        },
    )
    .await;
}

/// The org of each accepted item (webhook: the event; HEC: the envelope's event).
pub fn orgs_of(fake: &impl Fake, pointer: &str) -> HashSet<String> {
    fake.received()
        .iter()
        .filter_map(|e| {
            e.item
                .as_ref()?
                .pointer(pointer)?
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

pub fn assert_signed(name: &str, fake: &impl Fake) {
    let stats = fake.stats();
    assert_eq!(
        stats.signature_failures, 0,
        "{name}: unsigned or badly signed requests"
    );
    assert!(stats.requests > 0, "{name} got no request");
}
