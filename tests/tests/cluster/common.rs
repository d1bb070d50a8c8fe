//! Services started on the cluster, their readiness, and the partition leadership of a topic.

use std::time::Duration;

use audit_tests::cluster::Cluster;
use audit_tests::{Namespace, Service, ServiceKind, eventually};

/// Starts a service of `ns` configured for the cluster, with `extra` overrides.
pub async fn start(
    cluster: &Cluster,
    ns: &Namespace,
    kind: ServiceKind,
    extra: &[(&str, &str)],
) -> Service {
    let mut env = cluster.service_env(kind.env_prefix());
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Service::start(kind, ns, &env).await
}

/// (partition, leader, in-sync replica count) of every partition of `topic`.
pub fn partition_leaders(brokers: &str, topic: &str) -> Vec<(i32, i32, usize)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| (p.id(), p.leader(), p.isr().len()))
        .collect()
}

/// Waits until every partition of `topic` has a leader and all three replicas in sync.
pub async fn wait_fully_replicated(brokers: &str, topic: &str) {
    eventually(
        "every partition back to 3 in-sync replicas",
        Duration::from_secs(90),
        || async {
            let partitions = partition_leaders(brokers, topic);
            (!partitions.is_empty()
                && partitions
                    .iter()
                    .all(|(_, leader, isr)| *leader > 0 && *isr == 3))
            .then_some(())
        },
    )
    .await;
}

pub async fn ready(service: &Service) -> bool {
    reqwest::get(format!("{}/readyz", service.ops_url()))
        .await
        .is_ok_and(|r| r.status().is_success())
}
