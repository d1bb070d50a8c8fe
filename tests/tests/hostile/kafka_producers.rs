//! Boundary: a product team (or anyone) producing straight to the events topic with an
//! independent client (kcat). It may publish its own events; it must not choose when the
//! platform received them, pass a claimed `source` off as verified, or write the platform's
//! own `audit_log` events — with or without a made-up integrity tag.

use std::time::Duration;

use audit_tests::events::event;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook};
use audit_tests::{Service, ServiceKind, eventually, kafka};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::common::metric_where;
use crate::pipeline::{FAST_FORWARDER, Pipeline, time_of};

/// An event as an intruder shapes it: internal category, claimed provenance and times.
fn internal(org: &str, action: &str) -> Value {
    let mut forged = event(org, action);
    forged["actor"] = json!({"type": "user", "id": "u_admin", "email": "admin@victim.example"});
    forged["provenance"] = json!("system");
    forged["source"] = json!("audit-log");
    forged
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_producers_cannot_backdate_claim_verification_or_write_internal_events() {
    let pipeline = Pipeline::start("hostile-kafka").await;
    let receiver = FakeWebhook::start(WebhookSetup::default()).await;
    pipeline.enterprise("org_victim").await;
    pipeline
        .webhook("org_victim", "SOC", &format!("{}/audit", receiver.url()))
        .await;
    let forwarder_env: Vec<(&str, &str)> = FAST_FORWARDER.to_vec();
    let _forwarder = Service::start(ServiceKind::Forwarder, &pipeline.ns, &forwarder_env).await;
    let brokers = pipeline.brokers().to_string();
    let topic = pipeline.ns.events_topic.clone();
    let started = OffsetDateTime::now_utc();

    // 1. A backdated event with a claimed source and a claimed provenance.
    let mut backdated = event("org_victim", "billing.invoice.generated");
    backdated["received_at"] = json!("2000-01-01T00:00:00Z");
    backdated["source"] = json!("identity-api");
    backdated["provenance"] = json!("gateway");
    kafka::kcat(&brokers, &topic, "org_victim", &[], &backdated.to_string());

    // 2. The platform's own events, forged: plain, with a made-up tag, with an old-style tag.
    let exported = internal("org_victim", "audit_log.exported");
    let deleted = internal("org_victim", "audit_log.destination.deleted");
    let old_style = internal("org_victim", "audit_log.api_token.created");
    kafka::kcat(&brokers, &topic, "org_victim", &[], &exported.to_string());
    kafka::kcat(
        &brokers,
        &topic,
        "org_victim",
        &["audit-integrity=v3=system.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
        &deleted.to_string(),
    );
    kafka::kcat(
        &brokers,
        &topic,
        "org_victim",
        &["audit-integrity=v1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
        &old_style.to_string(),
    );

    // The backdated event is stored and forwarded as received now, its source shown as claimed.
    let stored = pipeline.stored(backdated["id"].as_str().unwrap()).await;
    let received_at = time_of(&stored["received_at"]);
    assert!(
        received_at >= started - time::Duration::seconds(5),
        "received_at {received_at} is the broker's, not the producer's"
    );
    assert_eq!(stored["provenance"], "kafka", "{stored}");
    assert_eq!(stored["source"], "identity-api", "kept, as a claim");
    let column = pipeline
        .ns
        .sql(&format!(
            "SELECT provenance FROM events FINAL WHERE id = '{}' FORMAT TSVRaw",
            backdated["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(column.trim(), "kafka", "operators see it in ClickHouse too");
    let backdated_id = backdated["id"].as_str().unwrap().to_string();
    eventually(
        "the backdated event delivered, not dropped as too old",
        Duration::from_secs(30),
        || async { receiver.unique_ids().contains(&backdated_id).then_some(()) },
    )
    .await;

    // The forged internal events are dead-lettered with the reason, never in the log or the SIEM.
    for forged in [&exported, &deleted, &old_style] {
        let id = forged["id"].as_str().unwrap();
        let reason = pipeline.dead_lettered(id).await;
        assert!(reason.contains("internal"), "{id}: {reason}");
        assert_eq!(pipeline.count(id).await, 0, "{id} is not in the log");
        assert!(
            !receiver.unique_ids().contains(id),
            "{id} was not forwarded"
        );
    }
    // The platform's own events (the destination's creation) are there, proven as such.
    let system_rows = pipeline
        .ns
        .sql_u64(
            "SELECT count() FROM events FINAL WHERE org_id = 'org_victim' AND category = 'audit_log' AND provenance = 'system'",
        )
        .await;
    assert!(
        system_rows >= 1,
        "the gateway's own audit_log events are stored"
    );
    let forged_rows = pipeline
        .ns
        .sql_u64(
            "SELECT count() FROM events FINAL WHERE category = 'audit_log' AND provenance != 'system'",
        )
        .await;
    assert_eq!(forged_rows, 0);

    pipeline.others_keep_flowing("org_bystander").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_time_topic_does_not_let_producers_choose_the_arrival_time() {
    // The events topic was created by hand with CreateTime (misconfigured): a producer then
    // sets its messages' timestamps. They must not become the arrival time.
    let ns = audit_tests::Namespace::new("hostile-create-time");
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &ns.infra.kafka)
        .create()
        .unwrap();
    let topic = NewTopic::new(&ns.events_topic, 3, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "CreateTime");
    admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .unwrap();
    let pipeline = Pipeline::start_in(ns).await;
    let started = OffsetDateTime::now_utc();

    let mut backdated = event("org_clock", "resource.deleted");
    backdated.as_object_mut().unwrap().remove("id");
    backdated["received_at"] = json!("2000-01-01T00:00:00Z");
    let producer = kafka::producer(pipeline.brokers());
    let year_2000_ms = 946_684_800_000_i64;
    let payload = backdated.to_string();
    producer
        .send(
            rdkafka::producer::FutureRecord::<str, str>::to(&pipeline.ns.events_topic)
                .key("org_clock")
                .payload(&payload)
                .timestamp(year_2000_ms),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(error, _)| error)
        .unwrap();
    let row = eventually("the event stored", Duration::from_secs(30), || async {
        let text = pipeline
            .ns
            .sql("SELECT raw FROM events FINAL WHERE org_id = 'org_clock' FORMAT TSVRaw")
            .await;
        serde_json::from_str::<Value>(text.trim()).ok()
    })
    .await;
    assert!(
        time_of(&row["received_at"]) >= started - time::Duration::seconds(5),
        "the consumer's clock, not the producer's CreateTime: {row}"
    );
    let indexer_metrics = pipeline.indexer.ops_url();
    assert!(
        metric_where(
            &indexer_metrics,
            "events_untrusted_timestamps_total",
            "indexer"
        )
        .await
            >= 1.0
    );
    assert_eq!(
        metric_where(&indexer_metrics, "events_topic_timestamp_type_ok", "").await,
        0.0,
        "the misconfiguration is reported"
    );
    pipeline.others_keep_flowing("org_bystander").await;
}

/// The shapes serde would read and the schema refuses — the validator's fast pass must not
/// take them (`audit_core::validate::fast`): produced straight to the topic, each is
/// dead-lettered with the schema's reason, stored nowhere, and the others keep flowing.
#[tokio::test(flavor = "multi_thread")]
async fn shapes_only_serde_would_read_are_dead_lettered_from_direct_producers() {
    let pipeline = Pipeline::start("hostile-kafka-shapes").await;
    let brokers = pipeline.brokers().to_string();
    let topic = pipeline.ns.events_topic.clone();
    let shapes: [(&str, &str, Value); 4] = [
        (
            "actor as an array of its fields",
            "actor",
            json!(["user", "u_1"]),
        ),
        (
            "outcome as a single-key object",
            "outcome",
            json!({"success": null}),
        ),
        ("source as null", "source", Value::Null),
        ("version 2", "version", json!(2)),
    ];
    let mut sent = Vec::new();
    for (shape, field, value) in shapes {
        let mut forged = event("org_victim", "user.login.succeeded");
        forged[field] = value;
        kafka::kcat(&brokers, &topic, "org_victim", &[], &forged.to_string());
        sent.push((shape, forged["id"].as_str().unwrap().to_string()));
    }
    for (shape, id) in &sent {
        let reason = pipeline.dead_lettered(id).await;
        assert!(!reason.is_empty(), "{shape}: dead-lettered with a reason");
        assert_eq!(pipeline.count(id).await, 0, "{shape}: not in the log");
    }
    pipeline.others_keep_flowing("org_bystander").await;
}
