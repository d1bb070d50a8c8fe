//! The forwarder end to end, on the real Kafka broker, with the real gateway creating the
//! destinations and the fake SIEM receivers (tests/src/fakes) on the other side.
//!
//! Retry schedules are shortened through `FORWARDER__…` variables so that a 30 s outage test
//! takes about 40 s. No test asserts timings: each waits (bounded) for an outcome.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::datadog::DatadogSetup;
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::wazuh::WazuhSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{
    Fake, FakeDatadog, FakeHec, FakeWazuh, FakeWebhook, Injected, SIGNING_SECRET,
};
use audit_tests::infra::repo_root;
use audit_tests::service::{bin_dir, free_port};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, TopicPartitionList};
use serde_json::{Value, json};

/// Settings that make retries fast enough for tests.
const FAST: &[(&str, &str)] = &[
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
struct Forwarder {
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl Forwarder {
    async fn start(ns: &Namespace, extra: &[(&str, &str)]) -> Self {
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

    fn launch(&mut self) {
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    async fn wait_ready(&self) {
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
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_ready().await;
    }

    /// SIGTERM: drain, commit, leave the group; waits for the exit.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// This instance's view of its destinations.
    async fn destinations(&self) -> Value {
        reqwest::get(format!("{}/v1/destinations", self.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Runs `forwarder <args>` (e.g. `replay`) with this instance's settings; returns stdout.
    fn command(&self, args: &[&str]) -> String {
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
async fn enterprise(gateway: &Gateway, org: &str) {
    gateway.enterprise(org).await;
}

/// Creates a destination; returns its id.
async fn destination(
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

fn hec_config(hec: &FakeHec) -> Value {
    json!({"type": "splunk_hec", "url": hec.url(), "token": hec.token(), "index": "audit", "sourcetype": "solarius:audit"})
}

fn webhook_config(webhook: &FakeWebhook) -> Value {
    json!({"type": "webhook", "url": format!("{}/audit", webhook.url())})
}

/// Publishes events through the gateway, 500 per request; returns their ids.
async fn publish(gateway: &Gateway, key: &str, events: &[Value]) -> Vec<String> {
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
fn events(org: &str, actions: &[&str], n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| event(org, actions[i % actions.len()]))
        .collect()
}

/// Waits until `fake` has accepted every id in `ids`.
async fn delivered_all(what: &str, fake: &impl Fake, ids: &[String], timeout: Duration) {
    let wanted: HashSet<&String> = ids.iter().collect();
    eventually(what, timeout, || async {
        let got = fake.unique_ids();
        wanted.iter().all(|id| got.contains(*id)).then_some(())
    })
    .await;
}

/// Whether a consumer group has committed every message of `topic` (it processed them all).
fn group_caught_up(brokers: &str, group: &str, topic: &str) -> bool {
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

async fn wait_caught_up(ns: &Namespace) {
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
fn orgs_of(fake: &impl Fake, pointer: &str) -> HashSet<String> {
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

fn assert_signed(name: &str, fake: &impl Fake) {
    let stats = fake.stats();
    assert_eq!(
        stats.signature_failures, 0,
        "{name}: unsigned or badly signed requests"
    );
    assert!(stats.requests > 0, "{name} got no request");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_enterprise_organizations_reach_their_own_destinations_through_their_filters() {
    let ns = Namespace::new("fwd-routing");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup {
        allowed_indexes: Some(vec!["audit".into()]),
        ..HecSetup::default()
    })
    .await;
    let hook_a = FakeWebhook::start(WebhookSetup::default()).await;
    let hook_b = FakeWebhook::start(WebhookSetup::default()).await;

    for org in ["org_ent_a", "org_ent_b", "org_downgraded"] {
        enterprise(&gateway, org).await;
    }
    destination(
        &gateway,
        "org_ent_a",
        "Splunk (auth only)",
        hec_config(&hec),
        json!({"categories": ["authentication"]}),
    )
    .await;
    destination(
        &gateway,
        "org_ent_a",
        "SOC hook (no billing)",
        webhook_config(&hook_a),
        json!({"exclude_actions": ["billing.*"]}),
    )
    .await;
    destination(
        &gateway,
        "org_ent_b",
        "B hook",
        webhook_config(&hook_b),
        json!({}),
    )
    .await;
    destination(
        &gateway,
        "org_downgraded",
        "would-be hook",
        webhook_config(&hook_b),
        json!({}),
    )
    .await;
    let (status, body) = gateway
        .admin(
            reqwest::Method::PATCH,
            "/v1/admin/orgs/org_downgraded",
            Some(&json!({"plan": "team"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let forwarder = Forwarder::start(&ns, &[]).await;

    let key = gateway.producer_key("routing-tests", &["*"], None).await;
    let actions = [
        "user.login.succeeded",
        "user.login.failed",
        "billing.invoice.generated",
        "resource.created",
        "api_key.generated",
    ];
    let a = events("org_ent_a", &actions, 40);
    let b = events("org_ent_b", &actions, 20);
    let downgraded = events("org_downgraded", &actions, 20);
    let free = events("org_free", &actions, 20);
    for batch in [&a, &b, &downgraded, &free] {
        publish(&gateway, &key, batch).await;
    }
    // Direct producers (not through the gateway) are forwarded too, once validated.
    let direct = event("org_ent_b", "member.role.changed");
    let producer = kafka::producer(&ns.infra.kafka);
    kafka::produce(
        &producer,
        &ns.events_topic,
        Some("org_ent_b"),
        direct.to_string().as_bytes(),
    )
    .await;

    let ids = |events: &[Value], keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let a_auth = ids(&a, &|e| e["category"] == "authentication");
    let a_not_billing = ids(&a, &|e| e["category"] != "billing");
    let mut b_all = ids(&b, &|_| true);
    b_all.push(direct["id"].as_str().unwrap().to_string());
    delivered_all(
        "org A's authentication events in Splunk",
        &hec,
        &a_auth,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "org A's non-billing events on its hook",
        &hook_a,
        &a_not_billing,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "org B's events on its hook",
        &hook_b,
        &b_all,
        Duration::from_secs(60),
    )
    .await;
    wait_caught_up(&ns).await;

    // Filters: nothing else of org A.
    let hec_ids = hec.unique_ids();
    for id in ids(&a, &|e| e["category"] != "authentication") {
        assert!(
            !hec_ids.contains(&id),
            "a filtered-out event reached Splunk"
        );
    }
    let hook_a_ids = hook_a.unique_ids();
    for id in ids(&a, &|e| e["category"] == "billing") {
        assert!(
            !hook_a_ids.contains(&id),
            "an excluded billing event reached the hook"
        );
    }
    // Isolation: each destination only ever saw its own organization.
    assert_eq!(
        orgs_of(&hec, "/event/org_id"),
        HashSet::from(["org_ent_a".to_string()])
    );
    assert_eq!(
        orgs_of(&hook_a, "/org_id"),
        HashSet::from(["org_ent_a".to_string()])
    );
    assert_eq!(
        orgs_of(&hook_b, "/org_id"),
        HashSet::from(["org_ent_b".to_string()])
    );
    // The HEC envelope: time with milliseconds, metadata, the event.
    let envelope = hec.received()[0].item.clone().unwrap();
    assert_eq!(envelope["index"], "audit");
    assert_eq!(envelope["sourcetype"], "solarius:audit");
    assert_eq!(envelope["fields"]["org_id"], "org_ent_a");
    assert!(envelope["time"].as_f64().is_some());
    for (name, fake) in [("hook_a", &hook_a), ("hook_b", &hook_b)] {
        assert_signed(name, fake);
    }
    assert_signed("hec", &hec);
    assert!(
        forwarder.destinations().await["destinations"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_30_s_gets_every_event_after_it_returns_while_others_keep_flowing() {
    let ns = Namespace::new("fwd-outage");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup::default()).await;
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    enterprise(&gateway, "org_outage").await;
    let hec_id = destination(
        &gateway,
        "org_outage",
        "Splunk",
        hec_config(&hec),
        json!({}),
    )
    .await;
    destination(
        &gateway,
        "org_outage",
        "SOC hook",
        webhook_config(&hook),
        json!({}),
    )
    .await;
    let forwarder = Forwarder::start(&ns, &[]).await;
    let key = gateway.producer_key("outage-tests", &["*"], None).await;
    let actions = ["user.login.failed", "resource.created", "api_key.revoked"];

    // Splunk goes down: connections refused for 30 s while events keep coming.
    hec.server().stop().await;
    let down_at = tokio::time::Instant::now();
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.extend(publish(&gateway, &key, &events("org_outage", &actions, 100)).await);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // The other destination is not held back.
    delivered_all(
        "the hook to keep receiving during the outage",
        &hook,
        &sent,
        Duration::from_secs(20),
    )
    .await;
    assert!(hec.received_ids().is_empty());
    let view = forwarder.destinations().await;
    let splunk = view["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination_id"] == hec_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(splunk["state"], "retrying", "{splunk}");
    assert_eq!(splunk["last_failure_status"], "connect", "{splunk}");
    assert!(splunk["parked_total"].as_u64().unwrap() > 0, "{splunk}");

    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    hec.server().restart().await.unwrap();
    delivered_all(
        "every event in Splunk after it returned",
        &hec,
        &sent,
        Duration::from_secs(60),
    )
    .await;
    let stats = hec.stats();
    println!(
        "outage: {} events sent, Splunk accepted {} ({} duplicates)",
        sent.len(),
        stats.events,
        stats.duplicates
    );
    assert_signed("hec", &hec);
    assert_signed("hook", &hook);
    // Health comes back, and the operator API shows it (published by the forwarder).
    eventually("Splunk healthy again", Duration::from_secs(30), || async {
        let (status, body) = gateway
            .admin(
                reqwest::Method::GET,
                &format!("/v1/admin/orgs/org_outage/destinations/{hec_id}/health"),
                None,
            )
            .await;
        (status == 200 && body["state"] == "healthy" && body["delivered_total"].as_u64() > Some(0))
            .then_some(body)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_is_dead_lettered_alone_and_replay_resends_it() {
    let ns = Namespace::new("fwd-poison");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup::default()).await;
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    enterprise(&gateway, "org_poison").await;
    let hec_id = destination(
        &gateway,
        "org_poison",
        "Splunk",
        hec_config(&hec),
        json!({"categories": ["service"]}),
    )
    .await;
    let hook_id = destination(
        &gateway,
        "org_poison",
        "SOC hook",
        webhook_config(&hook),
        json!({"categories": ["service"]}),
    )
    .await;
    let forwarder =
        Forwarder::start(&ns, &[("FORWARDER__DELIVERY__MAX_EVENT_AGE_SECS", "3600")]).await;
    let key = gateway.producer_key("poison-tests", &["*"], None).await;

    let since = audit_tests::events::now_rfc3339();
    let batch = events("org_poison", &["resource.created", "resource.deleted"], 60);
    let poison_id = batch[23]["id"].as_str().unwrap().to_string();
    hec.poison(&poison_id);
    hook.poison(&poison_id);
    let sent = publish(&gateway, &key, &batch).await;
    let healthy: Vec<String> = sent
        .iter()
        .filter(|id| **id != poison_id)
        .cloned()
        .collect();
    delivered_all(
        "every other event in Splunk",
        &hec,
        &healthy,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "every other event on the hook",
        &hook,
        &healthy,
        Duration::from_secs(60),
    )
    .await;

    // Exactly the poison event is dead-lettered, once per destination, with the evidence.
    let brokers = ns.infra.kafka.clone();
    let letters = eventually("two dead letters", Duration::from_secs(30), || {
        let (brokers, topic) = (brokers.clone(), ns.dead_letter_topic.clone());
        async move {
            let letters = kafka::read_all(&brokers, &topic);
            (letters.len() >= 2).then_some(letters)
        }
    })
    .await;
    assert_eq!(letters.len(), 2);
    let mut by_destination = HashMap::new();
    for letter in &letters {
        let payload: Value =
            serde_json::from_slice(rdkafka::Message::payload(letter).unwrap()).unwrap();
        assert_eq!(payload["id"], poison_id.as_str());
        assert_eq!(
            kafka::header(letter, "dlq-stage").as_deref(),
            Some("forwarder")
        );
        by_destination.insert(
            kafka::header(letter, "dlq-destination-id").unwrap(),
            (
                kafka::header(letter, "dlq-last-status").unwrap(),
                kafka::header(letter, "dlq-response-excerpt").unwrap_or_default(),
            ),
        );
    }
    let (hec_status, hec_excerpt) = &by_destination[&hec_id];
    assert_eq!(hec_status, "400");
    assert!(
        hec_excerpt.contains("invalid-event-number"),
        "{hec_excerpt}"
    );
    let (hook_status, _) = &by_destination[&hook_id];
    assert_eq!(
        hook_status, "422",
        "the hook found it by splitting its batch"
    );
    assert!(!hec.unique_ids().contains(&poison_id));

    // The receivers are fixed; a replay re-sends it (to Splunk only, as asked).
    hec.cure(&poison_id);
    hook.cure(&poison_id);
    let output = forwarder.command(&[
        "replay",
        "--org",
        "org_poison",
        "--destination",
        &hec_id,
        "--since",
        &since,
    ]);
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["requeued"], 1, "{report}");
    delivered_all(
        "the replayed event in Splunk",
        &hec,
        std::slice::from_ref(&poison_id),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        !hook.unique_ids().contains(&poison_id),
        "replay was for Splunk only"
    );
    assert_signed("hec", &hec);
    // An event older than max_event_age is dead-lettered instead of delivered.
    let mut stale = event("org_poison", "resource.deleted");
    let two_hours_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let stamp = two_hours_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    stale["occurred_at"] = json!(stamp);
    stale["received_at"] = json!(stamp);
    let stale_id = stale["id"].as_str().unwrap().to_string();
    let producer = kafka::producer(&ns.infra.kafka);
    kafka::produce(
        &producer,
        &ns.events_topic,
        Some("org_poison"),
        stale.to_string().as_bytes(),
    )
    .await;
    let aged = eventually(
        "the stale event dead-lettered",
        Duration::from_secs(30),
        || {
            let (brokers, topic, stale_id) = (
                brokers.clone(),
                ns.dead_letter_topic.clone(),
                stale_id.clone(),
            );
            async move {
                let letters: Vec<String> = kafka::read_all(&brokers, &topic)
                    .iter()
                    .filter(|m| {
                        rdkafka::Message::payload(*m)
                            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                            .is_some_and(|e| e["id"] == stale_id.as_str())
                    })
                    .filter_map(|m| kafka::header(m, "dlq-reason"))
                    .collect();
                (letters.len() >= 2).then_some(letters)
            }
        },
    )
    .await;
    assert!(
        aged.iter().all(|reason| reason.contains("max_event_age")),
        "{aged:?}"
    );
    assert!(!hec.unique_ids().contains(&stale_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_then_restart_delivers_every_event_at_least_once() {
    let ns = Namespace::new("fwd-sigkill");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    hook.set_latency(Duration::from_millis(40));
    enterprise(&gateway, "org_kill").await;
    destination(
        &gateway,
        "org_kill",
        "SOC hook",
        json!({"type": "webhook", "url": format!("{}/audit", hook.url()), "max_batch_events": 50}),
        json!({"categories": ["authentication"]}),
    )
    .await;
    let mut forwarder = Forwarder::start(&ns, &[]).await;

    // Produced straight to Kafka, as a product team may: validated by the forwarder itself.
    let producer = kafka::producer(&ns.infra.kafka);
    let mut sent = Vec::new();
    let mut acks = Vec::new();
    for i in 0..3000 {
        let action = if i % 2 == 0 {
            "user.login.succeeded"
        } else {
            "user.login.failed"
        };
        let payload = event("org_kill", action).to_string();
        let id: Value = serde_json::from_str(&payload).unwrap();
        sent.push(id["id"].as_str().unwrap().to_string());
        let record = rdkafka::producer::FutureRecord::to(&ns.events_topic)
            .key("org_kill")
            .payload(&payload);
        acks.push(
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .unwrap(),
        );
    }
    for ack in futures::future::join_all(acks).await {
        ack.unwrap().map_err(|(error, _)| error).unwrap();
    }
    eventually("a good part delivered", Duration::from_secs(60), || async {
        (hook.unique_ids().len() >= 800).then_some(())
    })
    .await;
    forwarder.kill();
    let before_restart = hook.unique_ids().len();
    assert!(before_restart < sent.len(), "killed mid-stream");
    forwarder.restart().await;
    delivered_all(
        "every event after the restart",
        &hook,
        &sent,
        Duration::from_secs(120),
    )
    .await;
    let stats = hook.stats();
    let unique = hook.unique_ids();
    assert!(sent.iter().all(|id| unique.contains(id)));
    println!(
        "sigkill: {} events sent, {} delivered before the kill, {} deliveries in total, {} duplicates (at-least-once; receivers dedupe on id)",
        sent.len(),
        before_restart,
        stats.events,
        stats.duplicates
    );
    assert_eq!(stats.events - stats.duplicates, sent.len() as u64);
    assert_signed("hook", &hook);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_token_expiry_oversized_batches_partial_failures_and_indexer_acks_are_handled() {
    let ns = Namespace::new("fwd-limits");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    // 429 with Retry-After, twice.
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    hook.fail_next([
        Injected::new(429, r#"{"error":"slow down"}"#).retry_after(1),
        Injected::new(429, r#"{"error":"slow down"}"#).retry_after(1),
    ]);
    // Tokens that expire every 3 s; a rate limit the destination's pacing must respect.
    let wazuh = FakeWazuh::start(WazuhSetup {
        token_lifetime: Duration::from_secs(3),
        requests_per_minute: 240,
        ..WazuhSetup::default()
    })
    .await;
    // An intake that refuses payloads over 20 kB: the forwarder's 5 MB batches must be split.
    let datadog = FakeDatadog::start(DatadogSetup {
        max_request_bytes: 20_000,
        ..DatadogSetup::default()
    })
    .await;
    // "Delivered" means "indexed".
    let hec = FakeHec::start(HecSetup {
        indexer_ack: true,
        ack_delay: Duration::from_millis(300),
        ..HecSetup::default()
    })
    .await;
    enterprise(&gateway, "org_limits").await;
    let only_auth = json!({"categories": ["authentication"]});
    destination(
        &gateway,
        "org_limits",
        "hook",
        webhook_config(&hook),
        only_auth.clone(),
    )
    .await;
    destination(
        &gateway,
        "org_limits",
        "wazuh",
        json!({"type": "wazuh", "url": wazuh.url(), "username": wazuh.username(), "password": wazuh.password(), "requests_per_minute": 120}),
        only_auth.clone(),
    )
    .await;
    destination(
        &gateway,
        "org_limits",
        "datadog",
        json!({"type": "datadog", "site": "datadoghq.eu", "url": datadog.url(), "api_key": datadog.api_key(), "ddtags": "env:test"}),
        only_auth.clone(),
    )
    .await;
    let mut hec_config = hec_config(&hec);
    hec_config["indexer_ack"] = json!(true);
    destination(&gateway, "org_limits", "splunk", hec_config, only_auth).await;
    let _forwarder = Forwarder::start(&ns, &[]).await;
    let key = gateway.producer_key("limits-tests", &["*"], None).await;

    let mut sent = Vec::new();
    for wave in 0..4 {
        let batch = events(
            "org_limits",
            &["user.login.failed", "user.mfa.enrolled"],
            120,
        );
        if wave == 1 {
            // Partial failures: Wazuh refuses these once; only they are retried.
            for event in batch.iter().take(5) {
                wazuh.flaky(event["id"].as_str().unwrap());
            }
        }
        if wave == 2 {
            // Every token issued so far stops working: the next request gets 401.
            wazuh.revoke_tokens();
        }
        sent.extend(publish(&gateway, &key, &batch).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    delivered_all(
        "every event on the hook despite 429s",
        &hook,
        &sent,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "every event in Wazuh across token expiries",
        &wazuh,
        &sent,
        Duration::from_secs(90),
    )
    .await;
    delivered_all(
        "every event in Datadog in split batches",
        &datadog,
        &sent,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "every event indexed by Splunk",
        &hec,
        &sent,
        Duration::from_secs(60),
    )
    .await;

    assert_eq!(hook.stats().statuses.get(&429), Some(&2));
    let wazuh_stats = wazuh.stats();
    assert!(
        wazuh.logins() >= 2,
        "tokens were refreshed: {} logins",
        wazuh.logins()
    );
    assert_eq!(
        wazuh_stats.statuses.get(&429),
        None,
        "pacing keeps under the manager's limit"
    );
    assert_eq!(
        wazuh_stats.duplicates, 0,
        "partial failures resend only the failed items"
    );
    let datadog_stats = datadog.stats();
    assert!(
        datadog_stats.statuses.get(&413).is_some_and(|n| *n >= 1),
        "{datadog_stats:?}"
    );
    assert!(datadog.gzip_requests() > 0);
    let log = datadog.received()[0].item.clone().unwrap();
    assert_eq!(log["ddsource"], "solarius-audit-log");
    assert!(
        log["ddtags"]
            .as_str()
            .unwrap()
            .starts_with("env:test,org_id:org_limits")
    );
    assert!(log["timestamp"].as_i64().is_some());
    for (name, stats) in [
        ("hook", hook.stats()),
        ("wazuh", wazuh_stats),
        ("datadog", datadog_stats),
        ("hec", hec.stats()),
    ] {
        assert_eq!(stats.signature_failures, 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn misconfigured_or_failing_destinations_are_paused_audited_and_resumed_without_loss() {
    let ns = Namespace::new("fwd-pause");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup::default()).await;
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    let broken = FakeWebhook::start(WebhookSetup::default()).await;
    broken.fail_always(Some(Injected::new(503, r#"{"error":"maintenance"}"#)));
    enterprise(&gateway, "org_pause").await;
    let mut wrong_token = hec_config(&hec);
    wrong_token["token"] = json!("00000000-0000-0000-0000-000000000000");
    let filters = json!({"categories": ["security"]});
    let hec_id = destination(
        &gateway,
        "org_pause",
        "Splunk",
        wrong_token,
        filters.clone(),
    )
    .await;
    let hook_id = destination(
        &gateway,
        "org_pause",
        "hook",
        webhook_config(&hook),
        filters.clone(),
    )
    .await;
    let broken_id = destination(
        &gateway,
        "org_pause",
        "broken",
        webhook_config(&broken),
        filters,
    )
    .await;
    let _forwarder = Forwarder::start(&ns, &[("FORWARDER__RETRY__PAUSE_AFTER_SECS", "4")]).await;
    let key = gateway.producer_key("pause-tests", &["*"], None).await;
    let sent = publish(
        &gateway,
        &key,
        &events(
            "org_pause",
            &["api_key.generated", "user.password.changed"],
            30,
        ),
    )
    .await;

    // 403 "Invalid token" pauses Splunk at once; 503 for longer than pause_after pauses the other.
    let destination_state = |id: String| {
        let gateway = gateway.clone();
        async move {
            let (status, body) = gateway
                .admin(
                    reqwest::Method::GET,
                    &format!("/v1/admin/orgs/org_pause/destinations/{id}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["state"].clone()
        }
    };
    for id in [&hec_id, &broken_id] {
        let state = eventually(
            "the destination paused",
            Duration::from_secs(60),
            || async {
                let state = destination_state(id.clone()).await;
                (state["status"] == "paused").then_some(state)
            },
        )
        .await;
        println!("paused: {state}");
    }
    assert!(
        destination_state(hec_id.clone()).await["reason"]
            .as_str()
            .unwrap()
            .contains("403")
    );
    assert!(
        destination_state(broken_id.clone()).await["reason"]
            .as_str()
            .unwrap()
            .contains("failing continuously")
    );
    delivered_all(
        "the healthy destination unaffected",
        &hook,
        &sent,
        Duration::from_secs(30),
    )
    .await;
    // Each pause is in the organization's audit log, by the forwarder.
    let brokers = ns.infra.kafka.clone();
    let paused_events = eventually("two pause audit events", Duration::from_secs(30), || {
        let (brokers, topic) = (brokers.clone(), ns.events_topic.clone());
        async move {
            let paused: Vec<Value> = kafka::read_all(&brokers, &topic)
                .iter()
                .filter_map(|m| serde_json::from_slice::<Value>(rdkafka::Message::payload(m)?).ok())
                .filter(|e| e["action"] == "audit_log.destination.paused")
                .collect();
            (paused.len() >= 2).then_some(paused)
        }
    })
    .await;
    for event in &paused_events {
        assert_eq!(event["actor"]["type"], "system");
        assert_eq!(event["org_id"], "org_pause");
    }
    let targets: HashSet<String> = paused_events
        .iter()
        .map(|e| e["targets"][0]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, HashSet::from([hec_id.clone(), broken_id.clone()]));
    let (_, health) = gateway
        .admin(
            reqwest::Method::GET,
            &format!("/v1/admin/orgs/org_pause/destinations/{hec_id}/health"),
            None,
        )
        .await;
    assert_eq!(health["state"], "paused", "{health}");

    // The operator fixes the token and resumes: the parked events arrive, none lost.
    assert!(hec.received_ids().is_empty());
    let (status, body) = gateway
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/org_pause/destinations/{hec_id}"),
            Some(&json!({"config": hec_config(&hec)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/org_pause/destinations/{hec_id}/resume"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    delivered_all(
        "the parked events after the resume",
        &hec,
        &sent,
        Duration::from_secs(60),
    )
    .await;

    // The operator's test button: one signed event, the answer, and an audit record.
    let (status, tested) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/org_pause/destinations/{hook_id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivered"], true, "{tested}");
    assert_eq!(tested["status"], "200");
    let test_event_id = tested["event_id"].as_str().unwrap().to_string();
    assert!(hook.unique_ids().contains(&test_event_id));
    let (status, tested) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/org_pause/destinations/{broken_id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivered"], false);
    assert_eq!(tested["status"], "503");
    assert!(
        tested["response_excerpt"]
            .as_str()
            .unwrap()
            .contains("maintenance")
    );
    eventually(
        "the tests in the audit log",
        Duration::from_secs(30),
        || {
            let (brokers, topic) = (brokers.clone(), ns.events_topic.clone());
            async move {
                let tested = kafka::read_all(&brokers, &topic)
                    .iter()
                    .filter_map(|m| {
                        serde_json::from_slice::<Value>(rdkafka::Message::payload(m)?).ok()
                    })
                    .filter(|e| e["action"] == "audit_log.destination.tested")
                    .count();
                (tested >= 2).then_some(())
            }
        },
    )
    .await;
    for (name, fake) in [("hook", &hook), ("broken", &broken)] {
        assert_signed(name, fake);
    }
    assert_signed("hec", &hec);
}

/// Issue 8: a second forwarder joins mid-stream (the group rebalances its partitions), then
/// the first leaves gracefully: every event is still delivered at least once; duplicates are
/// counted and reported.
#[tokio::test(flavor = "multi_thread")]
async fn adding_and_removing_forwarders_mid_stream_delivers_every_event_at_least_once() {
    let ns = Namespace::new("fwd-rebalance");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    hook.set_latency(Duration::from_millis(20));
    // Twelve organizations spread their events over the topic's partitions.
    let orgs: Vec<String> = (0..12).map(|n| format!("org_rb{n}")).collect();
    for org in &orgs {
        enterprise(&gateway, org).await;
        destination(
            &gateway,
            org,
            "SOC hook",
            json!({"type": "webhook", "url": format!("{}/audit/{org}", hook.url()), "max_batch_events": 50}),
            json!({}),
        )
        .await;
    }
    let key = gateway.producer_key("svc", &["*"], None).await;
    let mut first = Forwarder::start(&ns, &[]).await;

    let mut sent = Vec::new();
    let mut second = None;
    for round in 0..30 {
        let batch: Vec<Value> = (0..120)
            .map(|i| event(&orgs[(round * 120 + i) % orgs.len()], "resource.created"))
            .collect();
        sent.extend(publish(&gateway, &key, &batch).await);
        if round == 8 {
            second = Some(Forwarder::start(&ns, &[]).await); // scale up mid-stream
        }
        if round == 20 {
            first.terminate(); // scale down gracefully mid-stream
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delivered_all(
        "every event with the group resized twice",
        &hook,
        &sent,
        Duration::from_secs(120),
    )
    .await;
    let stats = hook.stats();
    println!(
        "forwarder rebalance: {} events, {} deliveries, {} duplicates (at-least-once)",
        sent.len(),
        stats.events,
        stats.duplicates
    );
    assert!(stats.events >= sent.len() as u64);
    assert_signed("hook", &hook);
    let second = second.unwrap();
    let log = std::fs::read_to_string(&second.log).unwrap();
    assert!(
        log.contains("partitions assigned"),
        "the added forwarder took partitions: {}",
        second.log.display()
    );
}
