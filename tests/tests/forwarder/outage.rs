//! A receiver down or refusing: the others keep flowing, nothing is lost, a destination that cannot be served is paused, audited and resumed.

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::Gateway;
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook, Injected};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_for_30_s_gets_every_event_after_it_returns_while_others_keep_flowing() {
    let ns = Namespace::new("fwd-outage");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup::default()).await;
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    enterprise(&gateway, "org_outage").await;
    let hec_id = destination(
        &gateway,
        "org_outage",
        "Splunk",
        hec_config(&hec),
        json!({}),
    )
    .await;
    destination(
        &gateway,
        "org_outage",
        "SOC hook",
        webhook_config(&hook),
        json!({}),
    )
    .await;
    let forwarder = Forwarder::start(&ns, &[]).await;
    let key = gateway.producer_key("outage-tests", &["*"], None).await;
    let actions = ["user.login.failed", "resource.created", "api_key.revoked"];

    // Splunk goes down: connections refused for 30 s while events keep coming.
    hec.server().stop().await;
    let down_at = tokio::time::Instant::now();
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.extend(publish(&gateway, &key, &events("org_outage", &actions, 100)).await);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // The other destination is not held back.
    delivered_all(
        "the hook to keep receiving during the outage",
        &hook,
        &sent,
        Duration::from_secs(20),
    )
    .await;
    assert!(hec.received_ids().is_empty());
    let view = forwarder.destinations().await;
    let splunk = view["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["destination_id"] == hec_id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(splunk["state"], "retrying", "{splunk}");
    assert_eq!(splunk["last_failure_status"], "connect", "{splunk}");
    assert!(splunk["parked_total"].as_u64().unwrap() > 0, "{splunk}");

    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    hec.server().restart().await.unwrap();
    delivered_all(
        "every event in Splunk after it returned",
        &hec,
        &sent,
        Duration::from_secs(60),
    )
    .await;
    let stats = hec.stats();
    println!(
        "outage: {} events sent, Splunk accepted {} ({} duplicates)",
        sent.len(),
        stats.events,
        stats.duplicates
    );
    assert_signed("hec", &hec);
    assert_signed("hook", &hook);
    // Health comes back, and the operator API shows it (published by the forwarder).
    eventually("Splunk healthy again", Duration::from_secs(30), || async {
        let (status, body) = gateway
            .admin(
                reqwest::Method::GET,
                &format!("/v1/admin/orgs/org_outage/destinations/{hec_id}/health"),
                None,
            )
            .await;
        (status == 200 && body["state"] == "healthy" && body["delivered_total"].as_u64() > Some(0))
            .then_some(body)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn misconfigured_or_failing_destinations_are_paused_audited_and_resumed_without_loss() {
    let ns = Namespace::new("fwd-pause");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup::default()).await;
    let hook = FakeWebhook::start(WebhookSetup::default()).await;
    let broken = FakeWebhook::start(WebhookSetup::default()).await;
    broken.fail_always(Some(Injected::new(503, r#"{"error":"maintenance"}"#)));
    enterprise(&gateway, "org_pause").await;
    let mut wrong_token = hec_config(&hec);
    wrong_token["token"] = json!("00000000-0000-0000-0000-000000000000");
    let filters = json!({"categories": ["security"]});
    let hec_id = destination(
        &gateway,
        "org_pause",
        "Splunk",
        wrong_token,
        filters.clone(),
    )
    .await;
    let hook_id = destination(
        &gateway,
        "org_pause",
        "hook",
        webhook_config(&hook),
        filters.clone(),
    )
    .await;
    let broken_id = destination(
        &gateway,
        "org_pause",
        "broken",
        webhook_config(&broken),
        filters,
    )
    .await;
    let _forwarder = Forwarder::start(&ns, &[("FORWARDER__RETRY__PAUSE_AFTER_SECS", "4")]).await;
    let key = gateway.producer_key("pause-tests", &["*"], None).await;
    let sent = publish(
        &gateway,
        &key,
        &events(
            "org_pause",
            &["api_key.generated", "user.password.changed"],
            30,
        ),
    )
    .await;

    // 403 "Invalid token" pauses Splunk at once; 503 for longer than pause_after pauses the other.
    let destination_state = |id: String| {
        let gateway = gateway.clone();
        async move {
            let (status, body) = gateway
                .admin(
                    reqwest::Method::GET,
                    &format!("/v1/admin/orgs/org_pause/destinations/{id}"),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["state"].clone()
        }
    };
    for id in [&hec_id, &broken_id] {
        let state = eventually(
            "the destination paused",
            Duration::from_secs(60),
            || async {
                let state = destination_state(id.clone()).await;
                (state["status"] == "paused").then_some(state)
            },
        )
        .await;
        println!("paused: {state}");
    }
    assert!(
        destination_state(hec_id.clone()).await["reason"]
            .as_str()
            .unwrap()
            .contains("403")
    );
    assert!(
        destination_state(broken_id.clone()).await["reason"]
            .as_str()
            .unwrap()
            .contains("failing continuously")
    );
    delivered_all(
        "the healthy destination unaffected",
        &hook,
        &sent,
        Duration::from_secs(30),
    )
    .await;
    // Each pause is in the organization's audit log, by the forwarder.
    let brokers = ns.infra.kafka.clone();
    let paused_events = eventually("two pause audit events", Duration::from_secs(30), || {
        let (brokers, topic) = (brokers.clone(), ns.events_topic.clone());
        async move {
            let paused: Vec<Value> = kafka::read_all(&brokers, &topic)
                .iter()
                .filter_map(|m| serde_json::from_slice::<Value>(rdkafka::Message::payload(m)?).ok())
                .filter(|e| e["action"] == "audit_log.destination.paused")
                .collect();
            (paused.len() >= 2).then_some(paused)
        }
    })
    .await;
    for event in &paused_events {
        assert_eq!(event["actor"]["type"], "system");
        assert_eq!(event["org_id"], "org_pause");
    }
    let targets: HashSet<String> = paused_events
        .iter()
        .map(|e| e["targets"][0]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, HashSet::from([hec_id.clone(), broken_id.clone()]));
    let (_, health) = gateway
        .admin(
            reqwest::Method::GET,
            &format!("/v1/admin/orgs/org_pause/destinations/{hec_id}/health"),
            None,
        )
        .await;
    assert_eq!(health["state"], "paused", "{health}");

    // The operator fixes the token and resumes: the parked events arrive, none lost.
    assert!(hec.received_ids().is_empty());
    let (status, body) = gateway
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/org_pause/destinations/{hec_id}"),
            Some(&json!({"config": hec_config(&hec)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/org_pause/destinations/{hec_id}/resume"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    delivered_all(
        "the parked events after the resume",
        &hec,
        &sent,
        Duration::from_secs(60),
    )
    .await;

    // The operator's test button: one signed event, the answer, and an audit record.
    let (status, tested) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/org_pause/destinations/{hook_id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivered"], true, "{tested}");
    assert_eq!(tested["status"], "200");
    let test_event_id = tested["event_id"].as_str().unwrap().to_string();
    assert!(hook.unique_ids().contains(&test_event_id));
    let (status, tested) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/org_pause/destinations/{broken_id}/test"),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["delivered"], false);
    assert_eq!(tested["status"], "503");
    assert!(
        tested["response_excerpt"]
            .as_str()
            .unwrap()
            .contains("maintenance")
    );
    eventually(
        "the tests in the audit log",
        Duration::from_secs(30),
        || {
            let (brokers, topic) = (brokers.clone(), ns.events_topic.clone());
            async move {
                let tested = kafka::read_all(&brokers, &topic)
                    .iter()
                    .filter_map(|m| {
                        serde_json::from_slice::<Value>(rdkafka::Message::payload(m)?).ok()
                    })
                    .filter(|e| e["action"] == "audit_log.destination.tested")
                    .count();
                (tested >= 2).then_some(())
            }
        },
    )
    .await;
    for (name, fake) in [("hook", &hook), ("broken", &broken)] {
        assert_signed(name, fake);
    }
    assert_signed("hec", &hec);
}
