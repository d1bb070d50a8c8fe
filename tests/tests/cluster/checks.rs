//! The checks on what the cluster stored: every acknowledged event in query results exactly
//! once, and each event on its organization's shard only (physical rows).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use audit_tests::cluster::Cluster;
use audit_tests::{Namespace, eventually};

/// Every stored event id with its count in query results (FINAL), through the Distributed table.
pub async fn stored(ns: &Namespace) -> HashMap<String, u64> {
    ns.sql("SELECT toString(id), count() FROM events FINAL GROUP BY id FORMAT TSVRaw")
        .await
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, count)| (id.to_string(), count.parse().unwrap()))
        .collect()
}

/// Waits until every acknowledged event is in query results, then checks each is there once.
pub async fn assert_indexed_exactly_once(ns: &Namespace, acknowledged: &HashMap<String, String>) {
    let results = eventually(
        "every acknowledged event indexed",
        Duration::from_secs(180),
        || async {
            let results = stored(ns).await;
            acknowledged
                .keys()
                .all(|id| results.contains_key(id))
                .then_some(results)
        },
    )
    .await;
    let duplicated: Vec<_> = results.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        duplicated.is_empty(),
        "returned more than once: {duplicated:?}"
    );
}

/// The event ids stored in `database` on one shard (physical rows, before FINAL).
pub async fn ids_on_shard(cluster: &Cluster, shard: u32, database: &str) -> HashSet<String> {
    cluster
        .shard_sql(
            shard,
            &format!("SELECT DISTINCT toString(id) FROM {database}.events_local FORMAT TSVRaw"),
        )
        .await
        .lines()
        .map(str::to_string)
        .collect()
}

/// Checks that every event lives on its organization's shard, and there only (physical rows).
pub async fn assert_each_on_its_shard(
    cluster: &Cluster,
    ns: &Namespace,
    events: &HashMap<String, String>,
) {
    let on_shard = [
        ids_on_shard(cluster, 1, &ns.database).await,
        ids_on_shard(cluster, 2, &ns.database).await,
    ];
    let mut shard_of: HashMap<&str, usize> = HashMap::new();
    for (id, org) in events {
        let shard = match shard_of.get(org.as_str()) {
            Some(shard) => *shard,
            None => {
                let shard = usize::try_from(cluster.shard_of(org).await - 1).unwrap();
                *shard_of.entry(org).or_insert(shard)
            }
        };
        assert!(
            on_shard[shard].contains(id),
            "{id} of {org} not on its shard {}",
            shard + 1
        );
        assert!(
            !on_shard[1 - shard].contains(id),
            "a copy of {id} of {org} on the other shard"
        );
    }
}
