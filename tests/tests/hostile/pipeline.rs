//! The pipeline the hostile tests attack, and what they check after every attack: that the
//! other organizations' events still flow.

use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::SIGNING_SECRET;
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::{Value, json};

/// Forwarder settings that make deliveries and health records quick in tests.
pub const FAST_FORWARDER: &[(&str, &str)] = &[
    ("FORWARDER__DELIVERY__LINGER_MS", "50"),
    ("FORWARDER__RETRY__INITIAL_BACKOFF_MS", "200"),
    ("FORWARDER__RETRY__MAX_BACKOFF_MS", "2000"),
    ("FORWARDER__HEALTH__PUBLISH_INTERVAL_SECS", "1"),
    ("FORWARDER__CONSUMER__COMMIT_INTERVAL_MS", "200"),
    ("FORWARDER__CONSUMER__DRAIN_TIMEOUT_SECS", "5"),
];

/// A gateway and an indexer in a namespace of their own, and a producer key for every
/// category.
pub struct Pipeline {
    pub ns: Namespace,
    pub gateway_service: Service,
    pub indexer: Service,
    pub gateway: Gateway,
    pub key: String,
}

impl Pipeline {
    pub async fn start(name: &str) -> Self {
        Self::start_in(Namespace::new(name)).await
    }

    pub async fn start_in(ns: Namespace) -> Self {
        let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
        let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
        let gateway = Gateway::new(&gateway_service.url());
        let key = gateway.producer_key("bystander-api", &["*"], None).await;
        Self {
            ns,
            gateway_service,
            indexer,
            gateway,
            key,
        }
    }

    pub fn brokers(&self) -> &str {
        &self.ns.infra.kafka
    }

    /// The stored canonical JSON of event `id`, once indexed.
    pub async fn stored(&self, id: &str) -> Value {
        let query = format!("SELECT raw FROM events FINAL WHERE id = '{id}' FORMAT TSVRaw");
        eventually(
            &format!("event {id} stored"),
            Duration::from_secs(30),
            || async {
                let exists = self
                    .ns
                    .try_sql_u64(&format!(
                        "SELECT count() FROM events FINAL WHERE id = '{id}'"
                    ))
                    .await;
                if exists != Some(1) {
                    return None;
                }
                serde_json::from_str::<Value>(self.ns.sql(&query).await.trim()).ok()
            },
        )
        .await
    }

    /// How many rows of the log have id `id` (0 when it was refused).
    pub async fn count(&self, id: &str) -> u64 {
        self.ns
            .try_sql_u64(&format!(
                "SELECT count() FROM events FINAL WHERE id = '{id}'"
            ))
            .await
            .unwrap_or(0)
    }

    /// Publishes one event of `org` over HTTP (asserting it was accepted); returns its id.
    pub async fn publish(&self, org: &str, action: &str) -> String {
        let sent = event(org, action);
        let (status, body) = self.gateway.post_events(&self.key, &sent).await;
        assert_eq!(status, 202, "{body}");
        sent["id"].as_str().unwrap().to_string()
    }

    /// Another organization's events still flow, over HTTP and straight from Kafka.
    pub async fn others_keep_flowing(&self, org: &str) {
        crate::common::bystander_is_indexed_via_gateway(&self.ns, &self.gateway, &self.key, org)
            .await;
        crate::common::bystander_is_indexed(&self.ns, org).await;
    }

    /// The dead letters whose payload has id `id`, with their reasons.
    pub async fn dead_lettered(&self, id: &str) -> String {
        eventually(
            &format!("{id} dead-lettered"),
            Duration::from_secs(30),
            || async {
                kafka::read_all(self.brokers(), &self.ns.dead_letter_topic)
                    .iter()
                    .filter(|m| {
                        rdkafka::Message::payload(*m)
                            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                            .is_some_and(|e| e["id"] == id)
                    })
                    .find_map(|m| kafka::header(m, "dlq-reason"))
            },
        )
        .await
    }

    /// Puts `org` on the Enterprise plan.
    pub async fn enterprise(&self, org: &str) {
        self.gateway.enterprise(org).await;
    }

    /// Creates a webhook destination of `org` sending to `url`; returns its id.
    pub async fn webhook(&self, org: &str, name: &str, url: &str) -> String {
        let (status, body) = self
            .gateway
            .admin_post(
                &format!("/v1/admin/orgs/{org}/destinations"),
                &json!({"name": name, "signing_secret": SIGNING_SECRET,
                        "config": {"type": "webhook", "url": url}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// One Prometheus counter of the gateway (summed over its labels matching `labels`).
    pub async fn gateway_metric(&self, name: &str, labels: &str) -> f64 {
        crate::common::metric_where(&self.gateway_service.ops_url(), name, labels).await
    }
}

/// A time parsed from an event field.
pub fn time_of(value: &Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(
        value.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}
