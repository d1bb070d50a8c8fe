//! Destination receivers: a customer's SIEM endpoint answers the shared forwarder (and the
//! gateway's "send a test event") with a compression bomb, bytes dripped one at a time, a body
//! that never ends or a head of megabytes (`audit_tests::fakes::hostile`), or hangs while its
//! organization's backlog grows.
//!
//! Each case runs the gateway, the indexer and the forwarder, one organization whose
//! destination is hostile and one healthy organization (a faithful webhook fake), and asserts:
//! * the hostile answer is bounded: the process's peak RSS (`VmHWM`) did not grow by hundreds
//!   of MB, and the destination's health records the failure (status, short excerpt) and its
//!   events are parked on the retry topic, not lost;
//! * the healthy organization's events published meanwhile and afterwards are all delivered,
//!   in order, and every event of both organizations is indexed.

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::hostile::{BenignRoute, HostileSetup};
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook, HostileReceiver, Hostility, SIGNING_SECRET};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};

/// Short retries and deadlines, so that each case takes seconds.
const FORWARDER_ENV: &[(&str, &str)] = &[
    ("FORWARDER__DELIVERY__LINGER_MS", "50"),
    ("FORWARDER__DELIVERY__REQUEST_TIMEOUT_MS", "4000"),
    ("FORWARDER__RETRY__INITIAL_BACKOFF_MS", "200"),
    ("FORWARDER__RETRY__MAX_BACKOFF_MS", "2000"),
    ("FORWARDER__RETRY__IN_MEMORY_ATTEMPTS", "2"),
    ("FORWARDER__RETRY__IN_MEMORY_BUDGET_MS", "3000"),
    ("FORWARDER__SINKS__SPLUNK_HEC__ACK_POLL_INTERVAL_MS", "100"),
    ("FORWARDER__SINKS__SPLUNK_HEC__ACK_TIMEOUT_SECS", "3"),
    ("FORWARDER__HEALTH__PUBLISH_INTERVAL_SECS", "1"),
    ("FORWARDER__CONSUMER__COMMIT_INTERVAL_MS", "200"),
    ("FORWARDER__CONSUMER__DRAIN_TIMEOUT_SECS", "5"),
];

/// "Did not grow by hundreds of MB": a generous bound (the forwarder's own working set is
/// tens of MB; the unbounded reads this suite was written against grew it by GBs).
const MEMORY_GROWTH_BOUND_MB: u64 = 200;

/// Longest excerpt a health record may carry (512 bytes of text, the ellipsis, a note).
const SHORT_EXCERPT_CHARS: usize = 600;

const HEALTHY_ORG: &str = "org_healthy";
const ACTIONS: [&str; 3] = ["user.login.failed", "resource.created", "api_key.generated"];

/// The pipeline of one case: services, a producer key, the healthy organization.
struct Pipeline {
    ns: Namespace,
    gateway: Gateway,
    gateway_service: Service,
    forwarder: Service,
    _indexer: Service,
    key: String,
    healthy: FakeWebhook,
    /// Every event of the healthy organization published so far, in order.
    healthy_sent: Vec<String>,
    /// Every event published so far (both organizations).
    all_sent: Vec<String>,
}

impl Pipeline {
    async fn start(name: &str) -> Self {
        Self::start_with(name, &[]).await
    }

    /// With forwarder settings on top of [`FORWARDER_ENV`].
    async fn start_with(name: &str, forwarder_env: &[(&str, &str)]) -> Self {
        let ns = Namespace::new(name);
        let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
        let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
        let gateway = Gateway::new(&gateway_service.url());
        let healthy = FakeWebhook::start(WebhookSetup::default()).await;
        let key = gateway.producer_key(name, &["*"], None).await;
        gateway.enterprise(HEALTHY_ORG).await;
        create_destination(
            &gateway,
            HEALTHY_ORG,
            json!({"type": "webhook", "url": format!("{}/audit", healthy.url())}),
        )
        .await;
        let env: Vec<(&str, &str)> = FORWARDER_ENV.iter().chain(forwarder_env).copied().collect();
        let forwarder = Service::start(ServiceKind::Forwarder, &ns, &env).await;
        Self {
            ns,
            gateway,
            gateway_service,
            forwarder,
            _indexer: indexer,
            key,
            healthy,
            healthy_sent: Vec::new(),
            all_sent: Vec::new(),
        }
    }

    /// An Enterprise organization with one destination; returns the destination id.
    async fn hostile_org(&self, org: &str, config: Value) -> String {
        self.gateway.enterprise(org).await;
        create_destination(&self.gateway, org, config).await
    }

    /// Publishes `n` events of `org` through the gateway.
    async fn publish(&mut self, org: &str, n: usize) {
        let events: Vec<Value> = (0..n).map(|i| event(org, ACTIONS[i % 3])).collect();
        let (status, body) = self.gateway.post_events(&self.key, &json!(events)).await;
        assert_eq!(status, 202, "{body}");
        let ids = events.iter().map(|e| e["id"].as_str().unwrap().to_string());
        if org == HEALTHY_ORG {
            self.healthy_sent.extend(ids.clone());
        }
        self.all_sent.extend(ids);
    }

    /// Produces `n` events of `org` straight to partition `partition` of the events topic (as a
    /// direct producer would, keyed by the organization).
    async fn produce_direct(&mut self, org: &str, n: usize, partition: i32) {
        let producer = kafka::producer(&self.ns.infra.kafka);
        for i in 0..n {
            let event = event(org, ACTIONS[i % 3]);
            let payload = event.to_string();
            let record = FutureRecord::to(&self.ns.events_topic)
                .key(org)
                .partition(partition)
                .payload(&payload);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(error, _)| error)
                .unwrap();
            let id = event["id"].as_str().unwrap().to_string();
            if org == HEALTHY_ORG {
                self.healthy_sent.push(id.clone());
            }
            self.all_sent.push(id);
        }
    }

    /// One of the forwarder's Prometheus counters (summed over its labels).
    async fn counter(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.forwarder.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Publishes `n` events of each of `orgs` between two batches of the healthy
    /// organization's.
    async fn publish_between_healthy(&mut self, orgs: &[&str], n: usize) {
        self.publish(HEALTHY_ORG, 100).await;
        for org in orgs {
            self.publish(org, n).await;
        }
        self.publish(HEALTHY_ORG, 100).await;
    }

    /// The forwarder's view of one destination (`/v1/destinations`).
    async fn destination(&self, destination_id: &str) -> Option<Value> {
        let view: Value = reqwest::get(format!("{}/v1/destinations", self.forwarder.url()))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        view["destinations"]
            .as_array()?
            .iter()
            .find(|d| d["destination_id"] == destination_id)
            .cloned()
    }

    /// Waits until the destination's health records a failure with `status` and a parked
    /// event, and checks that its excerpt is short; returns the record.
    async fn recorded_failure(&self, destination_id: &str, status: &str) -> Value {
        let record = eventually(
            &format!("a `{status}` failure recorded for {destination_id}, events parked"),
            Duration::from_secs(60),
            || async {
                self.destination(destination_id).await.filter(|d| {
                    d["last_failure_status"] == status && d["parked_total"].as_u64() > Some(0)
                })
            },
        )
        .await;
        let excerpt = record["last_failure_excerpt"].as_str().unwrap_or_default();
        assert!(
            excerpt.chars().count() <= SHORT_EXCERPT_CHARS,
            "the excerpt kept is not short ({} chars): {record}",
            excerpt.chars().count()
        );
        println!("health of {destination_id}: {record}");
        record
    }

    /// The second half of every case: the healthy organization's events, published before,
    /// during and after the hostile answers, are all delivered in order, and every event of
    /// both organizations is indexed.
    async fn assert_others_keep_flowing(&mut self) {
        self.publish(HEALTHY_ORG, 150).await;
        let wanted = self.healthy_sent.clone();
        eventually(
            "every healthy event delivered",
            Duration::from_secs(60),
            || async {
                let got = self.healthy.unique_ids();
                wanted.iter().all(|id| got.contains(id)).then_some(())
            },
        )
        .await;
        // Only the events published here (the gateway also records its own audit events,
        // e.g. the destination's creation), first arrivals.
        let published: HashSet<&String> = self.healthy_sent.iter().collect();
        let mut seen = HashSet::new();
        let arrival_order: Vec<String> = self
            .healthy
            .received_ids()
            .into_iter()
            .filter(|id| published.contains(id) && seen.insert(id.clone()))
            .collect();
        if let Some(at) =
            (0..arrival_order.len()).find(|&i| arrival_order[i] != self.healthy_sent[i])
        {
            panic!(
                "the healthy organization's events arrived out of order: #{at} is {}, expected {}",
                arrival_order[at], self.healthy_sent[at]
            );
        }
        let ids: Vec<String> = self.all_sent.iter().map(|id| format!("'{id}'")).collect();
        let query = format!(
            "SELECT count() FROM events FINAL WHERE id IN ({})",
            ids.join(",")
        );
        let expected = self.all_sent.len() as u64;
        eventually(
            "every event of both organizations indexed",
            Duration::from_secs(60),
            || async { (self.ns.try_sql_u64(&query).await == Some(expected)).then_some(()) },
        )
        .await;
    }
}

async fn create_destination(gateway: &Gateway, org: &str, config: Value) -> String {
    let (status, body) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/{org}/destinations"),
            &json!({"name": format!("{org} SIEM"), "signing_secret": SIGNING_SECRET, "filters": {}, "config": config}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Peak resident set of a process, in MB (`VmHWM` of `/proc/<pid>/status`).
fn peak_rss_mb(service: &Service) -> u64 {
    let pid = service.pid().expect("the service is running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

fn assert_memory_bounded(what: &str, before_mb: u64, service: &Service) {
    let after_mb = peak_rss_mb(service);
    println!("{what}: peak RSS {before_mb} MB before the hostile answers, {after_mb} MB after");
    assert!(
        after_mb < before_mb + MEMORY_GROWTH_BOUND_MB,
        "{what}: peak RSS grew from {before_mb} MB to {after_mb} MB"
    );
}

/// A receiver hostile on every path.
async fn hostile(hostility: Hostility) -> HostileReceiver {
    HostileReceiver::start(HostileSetup {
        hostility,
        benign: vec![],
    })
    .await
}

fn webhook_to(receiver: &HostileReceiver) -> Value {
    json!({"type": "webhook", "url": format!("{}/audit", receiver.url())})
}

/// Waits until `receiver` has started `n` hostile answers.
async fn answered(receiver: &HostileReceiver, n: u64) {
    eventually(
        &format!("{n} hostile answers"),
        Duration::from_secs(60),
        || async { (receiver.hostile_answers() >= n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_costs_the_forwarder_a_few_kib_and_other_organizations_keep_flowing() {
    let mut pipeline = Pipeline::start("hostile-gzip").await;
    // 500 with a 2 MB gzip body that inflates to 2 GiB, on every attempt.
    let bomb = hostile(Hostility::GzipBomb {
        status: 500,
        inflated: 2 << 30,
    })
    .await;
    let destination = pipeline.hostile_org("org_bomb", webhook_to(&bomb)).await;
    let before = peak_rss_mb(&pipeline.forwarder);

    pipeline.publish_between_healthy(&["org_bomb"], 40).await;
    // In-memory retries, then the parked events' retries: several bombs.
    answered(&bomb, 3).await;
    assert_memory_bounded("forwarder", before, &pipeline.forwarder);
    let record = pipeline.recorded_failure(&destination, "500").await;
    assert!(
        record["last_failure_excerpt"]
            .as_str()
            .unwrap()
            .contains("gzip-encoded body, not decoded"),
        "{record}"
    );
    pipeline.assert_others_keep_flowing().await;
    assert_memory_bounded("forwarder", before, &pipeline.forwarder);
}

#[tokio::test(flavor = "multi_thread")]
async fn receivers_dripping_their_head_or_body_are_cut_at_the_request_deadline() {
    let mut pipeline = Pipeline::start("hostile-drip").await;
    // A webhook whose head never ends, and a Wazuh manager whose login answer never does.
    let head_drip = hostile(Hostility::DripHeaders {
        every: Duration::from_millis(1500),
    })
    .await;
    let body_drip = hostile(Hostility::DripBody {
        status: 200,
        every: Duration::from_millis(1500),
    })
    .await;
    let webhook = pipeline
        .hostile_org("org_drip_head", webhook_to(&head_drip))
        .await;
    let wazuh = pipeline
        .hostile_org(
            "org_drip_login",
            json!({"type": "wazuh", "url": body_drip.url(), "username": "audit-ingest", "password": "Secr3t.Passw0rd!"}),
        )
        .await;
    let before = peak_rss_mb(&pipeline.forwarder);

    pipeline
        .publish_between_healthy(&["org_drip_head", "org_drip_login"], 20)
        .await;
    answered(&head_drip, 2).await;
    answered(&body_drip, 2).await;
    assert_memory_bounded("forwarder", before, &pipeline.forwarder);
    pipeline.recorded_failure(&webhook, "timeout").await;
    pipeline.recorded_failure(&wazuh, "timeout").await;
    pipeline.assert_others_keep_flowing().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_bodies_are_read_up_to_the_cap_on_sends_and_on_splunk_acknowledgement_polls() {
    let mut pipeline = Pipeline::start("hostile-endless").await;
    // Datadog answering 503 with a body that never ends; a Splunk HEC that accepts the events
    // and answers every acknowledgement poll with a 200 that never ends.
    let endless = Hostility::EndlessBody {
        status: 503,
        bytes_per_second: 100 << 20,
    };
    let datadog = hostile(endless).await;
    let hec = HostileReceiver::start(HostileSetup {
        hostility: Hostility::EndlessBody {
            status: 200,
            bytes_per_second: 100 << 20,
        },
        benign: vec![BenignRoute {
            path_prefix: "/services/collector/event".into(),
            status: 200,
            body: r#"{"text":"Success","code":0,"ackId":0}"#.into(),
        }],
    })
    .await;
    let datadog_id = pipeline
        .hostile_org(
            "org_endless_dd",
            json!({"type": "datadog", "site": "datadoghq.eu", "url": datadog.url(), "api_key": "dd-api-key-0123456789abcdef"}),
        )
        .await;
    let hec_id = pipeline
        .hostile_org(
            "org_endless_ack",
            json!({"type": "splunk_hec", "url": hec.url(), "token": "11111111-2222-3333-4444-555555555555", "indexer_ack": true}),
        )
        .await;
    let before = peak_rss_mb(&pipeline.forwarder);

    pipeline
        .publish_between_healthy(&["org_endless_dd", "org_endless_ack"], 20)
        .await;
    answered(&datadog, 3).await;
    answered(&hec, 3).await;
    assert_memory_bounded("forwarder", before, &pipeline.forwarder);
    pipeline.recorded_failure(&datadog_id, "503").await;
    // The polls never read an acknowledgement: the batch is resent after the ack timeout.
    pipeline.recorded_failure(&hec_id, "ack-timeout").await;
    pipeline.assert_others_keep_flowing().await;
    assert_memory_bounded("forwarder", before, &pipeline.forwarder);
    println!(
        "the endless receivers wrote {} and {} bytes in all",
        datadog.bytes_sent(),
        hec.bytes_sent()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_of_megabytes_is_refused_by_the_client() {
    let mut pipeline = Pipeline::start("hostile-head").await;
    let huge = hostile(Hostility::HugeHeaders {
        status: 500,
        size: 16 << 20,
    })
    .await;
    let destination = pipeline
        .hostile_org("org_huge_head", webhook_to(&huge))
        .await;
    let before = peak_rss_mb(&pipeline.forwarder);

    pipeline
        .publish_between_healthy(&["org_huge_head"], 20)
        .await;
    answered(&huge, 3).await;
    assert_memory_bounded("forwarder", before, &pipeline.forwarder);
    // No status could be read: a transport failure, described by the client's error.
    let record = pipeline.recorded_failure(&destination, "request").await;
    assert!(
        record["last_failure_excerpt"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "{record}"
    );
    pipeline.assert_others_keep_flowing().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateways_test_event_reads_a_bounded_answer_and_the_gateway_keeps_serving() {
    let mut pipeline = Pipeline::start("hostile-test-event").await;
    let bomb = hostile(Hostility::GzipBomb {
        status: 500,
        inflated: 2 << 30,
    })
    .await;
    let endless = hostile(Hostility::EndlessBody {
        status: 200,
        bytes_per_second: 100 << 20,
    })
    .await;
    let bomb_id = pipeline
        .hostile_org("org_test_bomb", webhook_to(&bomb))
        .await;
    let endless_id = pipeline
        .hostile_org("org_test_endless", webhook_to(&endless))
        .await;
    let before = peak_rss_mb(&pipeline.gateway_service);

    pipeline.publish(HEALTHY_ORG, 100).await;
    for (org, destination, status, delivered) in [
        ("org_test_bomb", &bomb_id, "500", false),
        ("org_test_endless", &endless_id, "200", true),
    ] {
        let (code, answer) = pipeline
            .gateway
            .admin_post(
                &format!("/v1/admin/orgs/{org}/destinations/{destination}/test"),
                &json!({}),
            )
            .await;
        println!("test event to {org}: {code} {answer}");
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["status"], status, "{answer}");
        assert_eq!(answer["delivered"], delivered, "{answer}");
        let excerpt = answer["response_excerpt"].as_str().unwrap();
        assert!(excerpt.chars().count() <= SHORT_EXCERPT_CHARS, "{answer}");
    }
    assert_memory_bounded("gateway", before, &pipeline.gateway_service);
    pipeline.assert_others_keep_flowing().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_receiver_whose_backlog_grows_holds_back_no_other_organization() {
    // Small queues, so that the hung destination's fills within the first request.
    let mut pipeline = Pipeline::start_with(
        "hostile-hung",
        &[("FORWARDER__DELIVERY__LANE_QUEUE_EVENTS", "100")],
    )
    .await;
    // A SIEM that answers long after the forwarder's request deadline.
    let hung = FakeWebhook::start(WebhookSetup::default()).await;
    hung.set_latency(Duration::from_secs(3600));
    let hung_id = pipeline
        .hostile_org(
            "org_hung",
            json!({"type": "webhook", "url": format!("{}/audit", hung.url())}),
        )
        .await;

    // Both organizations in one partition, the hung one ten times busier, interleaved.
    for _ in 0..6 {
        pipeline.produce_direct("org_hung", 200, 0).await;
        pipeline.produce_direct(HEALTHY_ORG, 20, 0).await;
    }
    // Every healthy event arrives, in order, while the neighbour still hangs...
    pipeline.assert_others_keep_flowing().await;
    assert!(
        hung.received_ids().is_empty(),
        "the hung receiver accepted nothing"
    );
    // ...because the hung destination's backlog was parked on the retry topic, not waited for.
    let record = pipeline.recorded_failure(&hung_id, "timeout").await;
    assert!(record["parked_total"].as_u64() > Some(0), "{record}");
    assert!(
        pipeline.counter("forwarder_overflow_parked_total").await > 0.0,
        "the full queue of the hung destination was not parked"
    );

    // The receiver comes back: every one of its events is delivered (at least once).
    hung.set_latency(Duration::ZERO);
    let hung_sent: Vec<String> = pipeline
        .all_sent
        .iter()
        .filter(|id| !pipeline.healthy_sent.contains(id))
        .cloned()
        .collect();
    eventually(
        "every event of the hung organization after it came back",
        Duration::from_secs(120),
        || async {
            let got = hung.unique_ids();
            hung_sent.iter().all(|id| got.contains(id)).then_some(())
        },
    )
    .await;
}
