//! The loss of the Kafka broker leading a partition, then of the active controller: every
//! acknowledged event is indexed exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::cluster::Cluster;
use audit_tests::events::{Gateway, event};
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook, SIGNING_SECRET};
use audit_tests::{ServiceKind, eventually};
use serde_json::json;
use tokio::sync::Mutex;

use crate::checks::assert_indexed_exactly_once;
use crate::common::{partition_leaders, ready, start, wait_fully_replicated};
use crate::load::{Ledger, gateway_load};

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_the_loss_of_the_partition_leader_and_active_controller() {
    let (cluster, _exclusive) = Cluster::exclusive().await;
    let ns = cluster.namespace("cluster-kafka");
    let webhook = FakeWebhook::start(WebhookSetup {
        record_items: false,
        ..WebhookSetup::default()
    })
    .await;
    let indexer = start(&cluster, &ns, ServiceKind::Indexer, &[]).await;
    // A short delivery timeout: while partitions have no leader, some requests are refused
    // (503) rather than answered late — both must hold up.
    let gateway = start(
        &cluster,
        &ns,
        ServiceKind::Gateway,
        &[("GATEWAY__PRODUCER__DELIVERY_TIMEOUT_MS", "4000")],
    )
    .await;
    let forwarder = start(
        &cluster,
        &ns,
        ServiceKind::Forwarder,
        &[
            ("FORWARDER__DELIVERY__LINGER_MS", "50"),
            ("FORWARDER__RETRY__INITIAL_BACKOFF_MS", "200"),
            ("FORWARDER__RETRY__MAX_BACKOFF_MS", "2000"),
        ],
    )
    .await;
    let client = Gateway::new(&gateway.url());
    let key = client.producer_key("cluster-load", &["*"], None).await;
    let orgs: Vec<String> = (0..6).map(|n| format!("org_kafka_{n}")).collect();
    for org in &orgs {
        let (status, body) = client
            .admin(
                reqwest::Method::PATCH,
                &format!("/v1/admin/orgs/{org}"),
                Some(&json!({"plan": "enterprise"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = client
            .admin_post(
                &format!("/v1/admin/orgs/{org}/destinations"),
                &json!({"name": "soc", "signing_secret": SIGNING_SECRET,
                        "config": {"type": "webhook", "url": format!("{}/audit/{org}", webhook.url())}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // The forwarder follows settings live; a probe per organization, until one of each
    // arrives, shows it applies every destination (probes sent before are not forwarded, so
    // they stay out of the ledger).
    eventually(
        "a probe of every organization forwarded",
        Duration::from_secs(60),
        || async {
            let delivered = webhook.core().unique_ids();
            let mut probes = Vec::new();
            for org in &orgs {
                let probe = event(org, "user.login.succeeded");
                probes.push(probe["id"].as_str().unwrap().to_string());
                let (status, body) = client.post_events(&key, &probe).await;
                assert_eq!(status, 202, "{body}");
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let delivered_now = webhook.core().unique_ids();
            (delivered_now.len() > delivered.len()
                && probes.iter().all(|id| delivered_now.contains(id)))
            .then_some(())
        },
    )
    .await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(gateway_load(
                gateway.url(),
                key.clone(),
                orgs.clone(),
                10,
                Duration::from_millis(200),
                ledger.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // 1. SIGKILL the active controller, which also leads partitions of the events topic
    //    (a topic created with all three nodes up has two preferred leaders on each).
    let victim = cluster.active_controller();
    let led: Vec<i32> = partition_leaders(&cluster.kafka, &ns.events_topic)
        .iter()
        .filter(|(_, leader, _)| *leader == i32::try_from(victim).unwrap())
        .map(|(partition, _, _)| *partition)
        .collect();
    assert!(!led.is_empty(), "node {victim} leads no events partition");
    let acknowledged_before = ledger.lock().await.acknowledged.len();
    cluster.kill_broker(victim);
    println!("killed node {victim}: active controller, leader of partitions {led:?}");
    eventually(
        "the killed node's partitions led by the others",
        Duration::from_secs(60),
        || async {
            let partitions = partition_leaders(&cluster.kafka, &ns.events_topic);
            partitions
                .iter()
                .all(|(_, leader, _)| *leader > 0 && *leader != i32::try_from(victim).unwrap())
                .then_some(())
        },
    )
    .await;
    let new_controller = cluster.active_controller();
    assert_ne!(new_controller, victim, "a new controller was elected");
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.start_broker(victim);
    wait_fully_replicated(&cluster.kafka, &ns.events_topic).await;

    // 2. A second node restarts (controlled shutdown): one that leads partitions now.
    let partitions = partition_leaders(&cluster.kafka, &ns.events_topic);
    let second = (1..=3u32)
        .filter(|n| *n != victim)
        .max_by_key(|n| {
            partitions
                .iter()
                .filter(|(_, leader, _)| *leader == i32::try_from(*n).unwrap())
                .count()
        })
        .unwrap();
    cluster.stop_broker(second);
    println!("stopped node {second} (controlled shutdown)");
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_broker(second);
    wait_fully_replicated(&cluster.kafka, &ns.events_topic).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    let ledger = ledger.lock().await;
    println!(
        "acknowledged {} (before the first kill {acknowledged_before}), refused with 503 {}",
        ledger.acknowledged.len(),
        ledger.refused
    );
    assert!(
        ledger.unexpected.is_empty(),
        "every answer is 202 or 503 + Retry-After: {:?}",
        ledger.unexpected
    );
    assert!(
        ledger.acknowledged.len() > acknowledged_before,
        "ingest resumed after the failures without restarting the gateway"
    );
    assert_indexed_exactly_once(&ns, &ledger.acknowledged).await;
    eventually(
        "every acknowledged event forwarded",
        Duration::from_secs(120),
        || async {
            let delivered = webhook.core().unique_ids();
            ledger
                .acknowledged
                .keys()
                .all(|id| delivered.contains(id))
                .then_some(())
        },
    )
    .await;
    // The same processes, never restarted, are ready again.
    for service in [&indexer, &gateway, &forwarder] {
        assert!(
            service.is_running(),
            "{:?} exited:\n{}",
            service.kind,
            service.log_tail()
        );
        eventually("ready again", Duration::from_secs(60), || async {
            ready(service).await.then_some(())
        })
        .await;
    }
}
