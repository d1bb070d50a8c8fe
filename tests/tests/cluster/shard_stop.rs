//! A stopped ClickHouse shard: indexing is held back, reads answer 503 for its organizations
//! only, and nothing is lost once it is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::cluster::Cluster;
use audit_tests::{ServiceKind, eventually, kafka, user_token};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::checks::{assert_each_on_its_shard, assert_indexed_exactly_once, ids_on_shard};
use crate::common::{ready, start};
use crate::load::{Ledger, kafka_load};

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_shard_holds_back_indexing_answers_503_for_its_orgs_only_and_loses_nothing() {
    let (cluster, _exclusive) = Cluster::exclusive().await;
    let ns = cluster.namespace("cluster-shard");
    let shards = cluster.orgs_per_shard("org_shard", 2).await;
    let (healthy, stopped) = (&shards[0], &shards[1]);
    let indexer = start(
        &cluster,
        &ns,
        ServiceKind::Indexer,
        &[("INDEXER__RETRY__MAX_BACKOFF_MS", "2000")],
    )
    .await;
    let gateway = start(&cluster, &ns, ServiceKind::Gateway, &[]).await;
    let http = reqwest::Client::new();
    let read = |org: String| {
        let http = http.clone();
        let url = format!("{}/v1/orgs/{org}/events?limit=5", gateway.url());
        async move {
            let response = http
                .get(url)
                .bearer_auth(user_token(&org, "admin", "u_1", 600))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }
    };

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let all_orgs: Vec<String> = shards.iter().flatten().cloned().collect();
    let load = tokio::spawn(kafka_load(
        cluster.kafka.clone(),
        ns.events_topic.clone(),
        all_orgs.clone(),
        Duration::from_millis(50),
        ledger.clone(),
        stop.clone(),
    ));
    eventually(
        "events of both shards indexed",
        Duration::from_secs(60),
        || async {
            let per_shard = [
                ids_on_shard(&cluster, 1, &ns.database).await.len(),
                ids_on_shard(&cluster, 2, &ns.database).await.len(),
            ];
            per_shard.iter().all(|n| *n > 0).then_some(())
        },
    )
    .await;

    cluster.stop_shard(2);
    // Inserts fail as a whole (the Distributed INSERT waits for every shard): the indexer
    // reports it and commits nothing until the shard is back.
    eventually(
        "the indexer reports the failing inserts",
        Duration::from_secs(60),
        || async { (!ready(&indexer).await).then_some(()) },
    )
    .await;
    let group = format!("{}-indexer", ns.id);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed_at_failure = kafka::committed_total(&cluster.kafka, &group, &ns.events_topic);
    for _ in 0..8 {
        for org in healthy {
            let (status, _, body) = read(org.clone()).await;
            assert_eq!(status, 200, "a healthy shard's org keeps reading: {body}");
            assert!(!body["data"].as_array().unwrap().is_empty(), "{body}");
        }
        for org in stopped {
            let (status, retry_after, body) = read(org.clone()).await;
            assert_eq!(status, 503, "the stopped shard's org: {body}");
            assert_eq!(body["error"]["code"], "unavailable", "{body}");
            assert!(retry_after.is_some(), "503 carries Retry-After");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(
        kafka::committed_total(&cluster.kafka, &group, &ns.events_topic),
        committed_at_failure,
        "no offset is committed past rows that are not on their shard"
    );

    cluster.start_shard(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let ledger = ledger.lock().await;
    assert_indexed_exactly_once(&ns, &ledger.acknowledged).await;
    eventually(
        "the indexer ready again",
        Duration::from_secs(60),
        || async { ready(&indexer).await.then_some(()) },
    )
    .await;
    for org in stopped {
        let (status, _, body) = read(org.clone()).await;
        assert_eq!(status, 200, "the returned shard's org reads again: {body}");
    }
    assert_each_on_its_shard(&cluster, &ns, &ledger.acknowledged).await;
    let physical = ns.sql_u64("SELECT count() FROM events").await;
    println!(
        "{} acknowledged, {} rows stored before merges (copies from the retried inserts collapse in FINAL)",
        ledger.acknowledged.len(),
        physical
    );
    assert!(indexer.is_running() && gateway.is_running());
}
