//! Copies of an event (a producer's replay, inserted by another indexer after a rebalance)
//! meet on one shard, so it is returned once; a retention change deletes on every shard.

use std::collections::HashMap;
use std::time::Duration;

use audit_tests::cluster::Cluster;
use audit_tests::events::{Gateway, event};
use audit_tests::{ServiceKind, eventually, kafka};
use serde_json::json;

use crate::checks::{assert_each_on_its_shard, assert_indexed_exactly_once};
use crate::common::start;

#[tokio::test(flavor = "multi_thread")]
async fn copies_of_an_event_meet_on_one_shard_across_a_rebalance_and_retention_reaches_every_shard()
{
    let (cluster, _exclusive) = Cluster::exclusive().await;
    let ns = cluster.namespace("cluster-copies");
    let shards = cluster.orgs_per_shard("org_copy", 2).await;
    let orgs: Vec<String> = shards.iter().flatten().cloned().collect();
    let mut first = start(&cluster, &ns, ServiceKind::Indexer, &[]).await;
    let second = start(&cluster, &ns, ServiceKind::Indexer, &[]).await;
    let gateway = start(&cluster, &ns, ServiceKind::Gateway, &[]).await;
    // Merges would collapse the copies before they are counted: hold them off meanwhile.
    let merges = |action: &'static str| {
        let cluster = cluster.clone();
        let database = ns.database.clone();
        async move {
            for shard in [1, 2] {
                cluster
                    .shard_sql(
                        shard,
                        &format!("SYSTEM {action} MERGES {database}.events_local"),
                    )
                    .await;
            }
        }
    };
    merges("STOP").await;

    // Every event twice, as a producer's replay would send it: the copies are produced once
    // the first ones are stored, and between the two one indexer is SIGKILLed — the survivor
    // takes its partitions in a rebalance (re-reading what it had not committed), so copies
    // are inserted by another indexer, in other INSERTs, than the first ones.
    let producer = kafka::producer(&cluster.kafka);
    let mut sent: HashMap<String, String> = HashMap::new();
    let mut payloads = Vec::new();
    for i in 0..120 {
        let org = &orgs[i % orgs.len()];
        let payload = event(org, "resource.deleted");
        kafka::produce(
            &producer,
            &ns.events_topic,
            Some(org),
            payload.to_string().as_bytes(),
        )
        .await;
        sent.insert(payload["id"].as_str().unwrap().to_string(), org.clone());
        payloads.push(payload);
    }
    assert_indexed_exactly_once(&ns, &sent).await;
    first.kill();
    for payload in &payloads {
        let org = payload["org_id"].as_str().unwrap();
        kafka::produce(
            &producer,
            &ns.events_topic,
            Some(org),
            payload.to_string().as_bytes(),
        )
        .await;
    }
    eventually(
        "the replayed copies stored",
        Duration::from_secs(90),
        || async {
            (ns.try_sql_u64("SELECT count() FROM events").await? >= 2 * sent.len() as u64)
                .then_some(())
        },
    )
    .await;
    assert_indexed_exactly_once(&ns, &sent).await;
    assert_each_on_its_shard(&cluster, &ns, &sent).await;
    merges("START").await;

    // Retention: rows of one organization on both shards (as rows written before a change
    // of the shard count stay where they were), then a retention change through the API.
    let org = &shards[0][0];
    cluster
        .shard_sql(
            2,
            &format!(
                "INSERT INTO {}.events_local (org_id, occurred_at, id, received_at, retention_days, raw) \
                 VALUES ('{org}', now64(3), generateUUIDv4(), now64(3), 90, '{{}}')",
                ns.database
            ),
        )
        .await;
    let client = Gateway::new(&gateway.url());
    let (status, body) = client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(&json!({"plan": "enterprise", "retention_days": 400})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for shard in [1, 2] {
        eventually(
            "the new retention on every shard",
            Duration::from_secs(60),
            || async {
                let values = cluster
                    .shard_sql(
                        shard,
                        &format!(
                            "SELECT groupUniqArray(retention_days) FROM {}.events_local WHERE org_id = '{org}'",
                            ns.database
                        ),
                    )
                    .await;
                (values.trim() == "[400]").then_some(())
            },
        )
        .await;
    }
    assert!(second.is_running());
}
