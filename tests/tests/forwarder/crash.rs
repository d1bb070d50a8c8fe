//! Forwarders killed, added and removed mid-stream: every event still delivered at least once.

use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_then_restart_delivers_every_event_at_least_once() {
    let ns = Namespace::new("fwd-sigkill");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    hook.set_latency(Duration::from_millis(40));
    enterprise(&gateway, "org_kill").await;
    destination(
        &gateway,
        "org_kill",
        "SOC hook",
        json!({"type": "webhook", "url": format!("{}/audit", hook.url()), "max_batch_events": 50}),
        json!({"categories": ["authentication"]}),
    )
    .await;
    let mut forwarder = Forwarder::start(&ns, &[]).await;

    // Produced straight to Kafka, as a product team may: validated by the forwarder itself.
    let producer = kafka::producer(&ns.infra.kafka);
    let mut sent = Vec::new();
    let mut acks = Vec::new();
    for i in 0..3000 {
        let action = if i % 2 == 0 {
            "user.login.succeeded"
        } else {
            "user.login.failed"
        };
        let payload = event("org_kill", action).to_string();
        let id: Value = serde_json::from_str(&payload).unwrap();
        sent.push(id["id"].as_str().unwrap().to_string());
        let record = rdkafka::producer::FutureRecord::to(&ns.events_topic)
            .key("org_kill")
            .payload(&payload);
        acks.push(
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .unwrap(),
        );
    }
    for ack in futures::future::join_all(acks).await {
        ack.unwrap().map_err(|(error, _)| error).unwrap();
    }
    eventually("a good part delivered", Duration::from_secs(60), || async {
        (hook.unique_ids().len() >= 800).then_some(())
    })
    .await;
    forwarder.kill();
    let before_restart = hook.unique_ids().len();
    assert!(before_restart < sent.len(), "killed mid-stream");
    forwarder.restart().await;
    delivered_all(
        "every event after the restart",
        &hook,
        &sent,
        Duration::from_secs(120),
    )
    .await;
    let stats = hook.stats();
    let unique = hook.unique_ids();
    assert!(sent.iter().all(|id| unique.contains(id)));
    println!(
        "sigkill: {} events sent, {} delivered before the kill, {} deliveries in total, {} duplicates (at-least-once; receivers dedupe on id)",
        sent.len(),
        before_restart,
        stats.events,
        stats.duplicates
    );
    assert_eq!(stats.events - stats.duplicates, sent.len() as u64);
    assert_signed("hook", &hook);
}

/// Issue 8: a second forwarder joins mid-stream (the group rebalances its partitions), then
/// the first leaves gracefully: every event is still delivered at least once; duplicates are
/// counted and reported.
#[tokio::test(flavor = "multi_thread")]
async fn adding_and_removing_forwarders_mid_stream_delivers_every_event_at_least_once() {
    let ns = Namespace::new("fwd-rebalance");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    hook.set_latency(Duration::from_millis(20));
    // Twelve organizations spread their events over the topic's partitions.
    let orgs: Vec<String> = (0..12).map(|n| format!("org_rb{n}")).collect();
    for org in &orgs {
        enterprise(&gateway, org).await;
        destination(
            &gateway,
            org,
            "SOC hook",
            json!({"type": "webhook", "url": format!("{}/audit/{org}", hook.url()), "max_batch_events": 50}),
            json!({}),
        )
        .await;
    }
    let key = gateway.producer_key("svc", &["*"], None).await;
    let mut first = Forwarder::start(&ns, &[]).await;

    let mut sent = Vec::new();
    let mut second = None;
    for round in 0..30 {
        let batch: Vec<Value> = (0..120)
            .map(|i| event(&orgs[(round * 120 + i) % orgs.len()], "resource.created"))
            .collect();
        sent.extend(publish(&gateway, &key, &batch).await);
        if round == 8 {
            second = Some(Forwarder::start(&ns, &[]).await); // scale up mid-stream
        }
        if round == 20 {
            first.terminate(); // scale down gracefully mid-stream
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    delivered_all(
        "every event with the group resized twice",
        &hook,
        &sent,
        Duration::from_secs(120),
    )
    .await;
    let stats = hook.stats();
    println!(
        "forwarder rebalance: {} events, {} deliveries, {} duplicates (at-least-once)",
        sent.len(),
        stats.events,
        stats.duplicates
    );
    assert!(stats.events >= sent.len() as u64);
    assert_signed("hook", &hook);
    let second = second.unwrap();
    let log = std::fs::read_to_string(&second.log).unwrap();
    assert!(
        log.contains("partitions assigned"),
        "the added forwarder took partitions: {}",
        second.log.display()
    );
}
