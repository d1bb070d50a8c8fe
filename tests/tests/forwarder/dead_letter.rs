//! A poison event is dead-lettered alone, and replay sends it again.

use std::collections::HashMap;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_event_is_dead_lettered_alone_and_replay_resends_it() {
    let ns = Namespace::new("fwd-poison");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup::default()).await;
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    enterprise(&gateway, "org_poison").await;
    let hec_id = destination(
        &gateway,
        "org_poison",
        "Splunk",
        hec_config(&hec),
        json!({"categories": ["service"]}),
    )
    .await;
    let hook_id = destination(
        &gateway,
        "org_poison",
        "SOC hook",
        webhook_config(&hook),
        json!({"categories": ["service"]}),
    )
    .await;
    let forwarder =
        Forwarder::start(&ns, &[("FORWARDER__DELIVERY__MAX_EVENT_AGE_SECS", "3600")]).await;
    let key = gateway.producer_key("poison-tests", &["*"], None).await;

    let since = audit_tests::events::now_rfc3339();
    let batch = events("org_poison", &["resource.created", "resource.deleted"], 60);
    let poison_id = batch[23]["id"].as_str().unwrap().to_string();
    hec.poison(&poison_id);
    hook.poison(&poison_id);
    let sent = publish(&gateway, &key, &batch).await;
    let healthy: Vec<String> = sent
        .iter()
        .filter(|id| **id != poison_id)
        .cloned()
        .collect();
    delivered_all(
        "every other event in Splunk",
        &hec,
        &healthy,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "every other event on the hook",
        &hook,
        &healthy,
        Duration::from_secs(60),
    )
    .await;

    // Exactly the poison event is dead-lettered, once per destination, with the evidence.
    let brokers = ns.infra.kafka.clone();
    let letters = eventually("two dead letters", Duration::from_secs(30), || {
        let (brokers, topic) = (brokers.clone(), ns.dead_letter_topic.clone());
        async move {
            let letters = kafka::read_all(&brokers, &topic);
            (letters.len() >= 2).then_some(letters)
        }
    })
    .await;
    assert_eq!(letters.len(), 2);
    let mut by_destination = HashMap::new();
    for letter in &letters {
        let payload: Value =
            serde_json::from_slice(rdkafka::Message::payload(letter).unwrap()).unwrap();
        assert_eq!(payload["id"], poison_id.as_str());
        assert_eq!(
            kafka::header(letter, "dlq-stage").as_deref(),
            Some("forwarder")
        );
        by_destination.insert(
            kafka::header(letter, "dlq-destination-id").unwrap(),
            (
                kafka::header(letter, "dlq-last-status").unwrap(),
                kafka::header(letter, "dlq-response-excerpt").unwrap_or_default(),
            ),
        );
    }
    let (hec_status, hec_excerpt) = &by_destination[&hec_id];
    assert_eq!(hec_status, "400");
    assert!(
        hec_excerpt.contains("invalid-event-number"),
        "{hec_excerpt}"
    );
    let (hook_status, _) = &by_destination[&hook_id];
    assert_eq!(
        hook_status, "422",
        "the hook found it by splitting its batch"
    );
    assert!(!hec.unique_ids().contains(&poison_id));

    // The receivers are fixed; a replay re-sends it (to Splunk only, as asked).
    hec.cure(&poison_id);
    hook.cure(&poison_id);
    let output = forwarder.command(&[
        "replay",
        "--org",
        "org_poison",
        "--destination",
        &hec_id,
        "--since",
        &since,
    ]);
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["requeued"], 1, "{report}");
    delivered_all(
        "the replayed event in Splunk",
        &hec,
        std::slice::from_ref(&poison_id),
        Duration::from_secs(30),
    )
    .await;
    assert!(
        !hook.unique_ids().contains(&poison_id),
        "replay was for Splunk only"
    );
    assert_signed("hec", &hec);
    // An event older than max_event_age is dead-lettered instead of delivered.
    let mut stale = event("org_poison", "resource.deleted");
    let two_hours_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let stamp = two_hours_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    stale["occurred_at"] = json!(stamp);
    // As the gateway wrote it two hours ago (its received_at is vouched for by its tag; a
    // direct producer's claimed received_at would be replaced by the broker's time).
    stale["received_at"] = json!(stamp);
    stale["provenance"] = json!("gateway");
    let stale_id = stale["id"].as_str().unwrap().to_string();
    let producer = kafka::producer(&ns.infra.kafka);
    let payload = stale.to_string();
    let tag = audit_core::integrity::IntegrityKey::new(audit_tests::INTEGRITY_KEY)
        .unwrap()
        .tag(audit_core::integrity::Signer::Gateway, payload.as_bytes());
    kafka::produce_with_headers(
        &producer,
        &ns.events_topic,
        "org_poison",
        Some(payload.as_bytes()),
        &[(audit_core::integrity::HEADER, tag.as_bytes())],
    )
    .await;
    let aged = eventually(
        "the stale event dead-lettered",
        Duration::from_secs(30),
        || {
            let (brokers, topic, stale_id) = (
                brokers.clone(),
                ns.dead_letter_topic.clone(),
                stale_id.clone(),
            );
            async move {
                let letters: Vec<String> = kafka::read_all(&brokers, &topic)
                    .iter()
                    .filter(|m| {
                        rdkafka::Message::payload(*m)
                            .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                            .is_some_and(|e| e["id"] == stale_id.as_str())
                    })
                    .filter_map(|m| kafka::header(m, "dlq-reason"))
                    .collect();
                (letters.len() >= 2).then_some(letters)
            }
        },
    )
    .await;
    assert!(
        aged.iter().all(|reason| reason.contains("max_event_age")),
        "{aged:?}"
    );
    assert!(!hec.unique_ids().contains(&stale_id));
}
