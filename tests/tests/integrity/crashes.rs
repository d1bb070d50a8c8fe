//! Crashes and rebalances of the indexers, under load straight to Kafka, never look like
//! tampering.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::events::event;
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::Value;

use crate::common::{GATEWAY, intact};

/// Produces events straight to Kafka for `orgs` until `stop`; returns the ids per org.
fn produce_until(
    ns: &Namespace,
    orgs: &'static [&'static str],
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let brokers = ns.infra.kafka.clone();
    let topic = ns.events_topic.clone();
    tokio::spawn(async move {
        let producer = kafka::producer(&brokers);
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut sends = Vec::new();
            for org in orgs {
                let payload = event(org, "resource.config.edited").to_string();
                let producer = producer.clone();
                let topic = topic.clone();
                sends.push(async move {
                    kafka::produce(&producer, &topic, Some(org), payload.as_bytes()).await
                });
            }
            futures::future::join_all(sends).await;
            sent += orgs.len();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent
    })
}

/// Killed and rebalanced indexers re-read and re-insert batches: every organization's chain
/// still verifies intact, and no window was ever published twice with different contents.
#[tokio::test(flavor = "multi_thread")]
async fn crashes_and_rebalances_never_look_like_tampering() {
    static ORGS: [&str; 8] = [
        "org_a", "org_b", "org_c", "org_d", "org_e", "org_f", "org_g", "org_h",
    ];
    let ns = Namespace::new("integrity-faults");
    let extra = [
        ("INDEXER__INTEGRITY__WINDOW_SECS", "2"),
        ("INDEXER__BATCH__MAX_ROWS", "200"),
        ("INDEXER__BATCH__MAX_WAIT_MS", "50"),
    ];
    let mut first = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let mut second = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &GATEWAY).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(&ns, &ORGS, stop.clone());
    tokio::time::sleep(Duration::from_secs(5)).await;
    first.kill();
    tokio::time::sleep(Duration::from_secs(4)).await;
    first.restart().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    second.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let third = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = producing.await.unwrap();
    println!("{sent} events produced across two kills and three rebalances");
    eventually("every event indexed", Duration::from_secs(120), || async {
        (ns.try_sql_u64("SELECT count() FROM events FINAL").await >= Some(sent as u64))
            .then_some(())
    })
    .await;
    for org in ORGS {
        let body = intact(&gateway, org).await;
        println!(
            "{org}: {} windows, {} leaves, {} events",
            body["windows"], body["leaves"], body["events"]
        );
    }
    // What was published on the anchor topic never contradicts itself.
    let mut published: HashMap<(String, u64), HashSet<String>> = HashMap::new();
    for message in kafka::read_all(&ns.infra.kafka, &ns.digests_topic) {
        let digest: Value =
            serde_json::from_slice(rdkafka::Message::payload(&message).unwrap()).unwrap();
        published
            .entry((
                digest["org_id"].as_str().unwrap().to_string(),
                digest["seq"].as_u64().unwrap(),
            ))
            .or_default()
            .insert(digest["hash"].as_str().unwrap().to_string());
    }
    let conflicts: Vec<_> = published
        .iter()
        .filter(|(_, hashes)| hashes.len() > 1)
        .collect();
    assert!(
        conflicts.is_empty(),
        "windows published twice with different contents: {conflicts:?}"
    );
    drop(third);
}
