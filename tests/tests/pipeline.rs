//! The pipe is real: gateway → Kafka → indexer → ClickHouse, and product teams producing
//! straight to Kafka (with kcat, an independent client) get the same validation.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::process::{Command, Stdio};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn an_event_posted_to_the_gateway_is_queryable_in_clickhouse() {
    let ns = Namespace::new("skeleton");
    let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let key = client
        .producer_key("identity-api", &["authentication"], None)
        .await;

    let sent = event("org_skeleton", "user.login.succeeded");
    let (status, body) = client.post_events(&key, &sent).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], sent["id"]);

    let id = sent["id"].as_str().unwrap().to_string();
    let query =
        format!("SELECT count() FROM events FINAL WHERE org_id = 'org_skeleton' AND id = '{id}'");
    eventually(
        "the event in ClickHouse",
        Duration::from_secs(30),
        || async { (ns.try_sql_u64(&query).await == Some(1)).then_some(()) },
    )
    .await;
    let stored = ns
        .sql(&format!(
            "SELECT raw FROM events FINAL WHERE id = '{id}' FORMAT TSVRaw"
        ))
        .await;
    let stored: serde_json::Value = serde_json::from_str(stored.trim()).unwrap();
    assert_eq!(stored["action"], "user.login.succeeded");
    assert_eq!(
        stored["source"], "identity-api",
        "the source comes from the producer key"
    );
    assert!(stored["received_at"].as_str().unwrap().ends_with('Z'));
    drop(indexer);
}

fn kcat(brokers: &str, topic: &str, key: Option<&str>, payload: &str) {
    let mut command = Command::new("kcat");
    command.args(["-P", "-b", brokers, "-t", topic]);
    if let Some(key) = key {
        command.args(["-k", key]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed by make test");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), payload.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "kcat failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_producers_are_validated_and_bad_messages_dead_lettered() {
    let ns = Namespace::new("direct");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let brokers = ns.infra.kafka.clone();

    let first = event("org_direct", "billing.invoice.generated");
    let mut without_id = event("org_direct", "resource.created");
    without_id.as_object_mut().unwrap().remove("id");
    let last = event("org_direct", "member.role.changed");
    let unknown_action = event("org_direct", "resource.deleted");
    let mut unknown_action = unknown_action;
    unknown_action["action"] = json!("resource.teleported");

    kcat(
        &brokers,
        &ns.events_topic,
        Some("org_direct"),
        &first.to_string(),
    );
    kcat(&brokers, &ns.events_topic, Some("org_direct"), "{not json");
    kcat(
        &brokers,
        &ns.events_topic,
        Some("org_direct"),
        &unknown_action.to_string(),
    );
    kcat(
        &brokers,
        &ns.events_topic,
        Some("org_other"),
        &event("org_direct", "resource.created").to_string(),
    );
    kcat(
        &brokers,
        &ns.events_topic,
        Some("org_direct"),
        &without_id.to_string(),
    );
    kcat(
        &brokers,
        &ns.events_topic,
        Some("org_direct"),
        &last.to_string(),
    );

    eventually(
        "three valid events indexed",
        Duration::from_secs(30),
        || async {
            (ns.try_sql_u64("SELECT count() FROM events FINAL WHERE org_id = 'org_direct'")
                .await
                == Some(3))
            .then_some(())
        },
    )
    .await;
    for sent in [&first, &last] {
        let id = sent["id"].as_str().unwrap();
        assert_eq!(
            ns.sql_u64(&format!(
                "SELECT count() FROM events FINAL WHERE id = '{id}'"
            ))
            .await,
            1
        );
    }
    // The event without an id got a deterministic UUIDv7.
    let assigned = ns
        .sql(
            "SELECT toString(id) FROM events FINAL WHERE action = 'resource.created' FORMAT TSVRaw",
        )
        .await;
    assert_eq!(
        uuid::Uuid::parse_str(assigned.trim())
            .unwrap()
            .get_version_num(),
        7
    );

    let letters = eventually("three dead letters", Duration::from_secs(30), || {
        let brokers = brokers.clone();
        let topic = ns.dead_letter_topic.clone();
        async move {
            let letters = kafka::read_all(&brokers, &topic);
            (letters.len() >= 3).then_some(letters)
        }
    })
    .await;
    assert_eq!(letters.len(), 3);
    let reasons: Vec<String> = letters
        .iter()
        .map(|m| kafka::header(m, "dlq-reason").unwrap())
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("$.action") && r.contains("resource.teleported")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("key `org_other` differs from org_id")),
        "{reasons:?}"
    );
    for letter in &letters {
        assert_eq!(
            kafka::header(letter, "dlq-stage").as_deref(),
            Some("indexer")
        );
        assert!(
            kafka::header(letter, "dlq-source")
                .unwrap()
                .starts_with(&ns.events_topic)
        );
    }
}

/// The gateway's integrity tag lets consumers skip re-validation; a forged tag buys nothing:
/// the message is fully validated (and dead-lettered when invalid).
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_integrity_tag_does_not_bypass_validation() {
    let ns = Namespace::new("integrity");
    let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let key = client.producer_key("svc", &["*"], None).await;
    let through_gateway = event("org_tag", "resource.created");
    assert_eq!(client.post_events(&key, &through_gateway).await.0, 202);

    let mut invalid = event("org_tag", "resource.deleted");
    invalid["action"] = json!("resource.vaporised");
    let payload = invalid.to_string();
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: audit_core::integrity::HEADER,
        value: Some("v1=Zm9yZ2VkLXRhZy1mb3JnZWQtdGFnLWZvcmdlZC10YWctZm9yZ2Vk"),
    });
    let producer = kafka::producer(&ns.infra.kafka);
    let record = rdkafka::producer::FutureRecord::to(&ns.events_topic)
        .key("org_tag")
        .payload(&payload)
        .headers(headers);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();

    let letters = eventually(
        "the forged message dead-lettered",
        Duration::from_secs(30),
        || {
            let brokers = ns.infra.kafka.clone();
            let topic = ns.dead_letter_topic.clone();
            async move {
                let letters = kafka::read_all(&brokers, &topic);
                (!letters.is_empty()).then_some(letters)
            }
        },
    )
    .await;
    assert!(
        kafka::header(&letters[0], "dlq-reason")
            .unwrap()
            .contains("resource.vaporised")
    );
    let id = through_gateway["id"].as_str().unwrap();
    eventually(
        "the gateway's event indexed",
        Duration::from_secs(30),
        || async {
            (ns.try_sql_u64(&format!(
                "SELECT count() FROM events FINAL WHERE id = '{id}'"
            ))
            .await
                == Some(1))
            .then_some(())
        },
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", indexer.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("indexer_messages_total") && l.contains("path=\"tagged\"")),
        "gateway messages take the tagged path"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("indexer_messages_total") && l.contains("path=\"validated\""))
    );
}
