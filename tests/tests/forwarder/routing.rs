//! Which organizations reach which destinations: plans, filters, one organization per destination.

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook};
use audit_tests::{Namespace, Service, ServiceKind, kafka};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn only_enterprise_organizations_reach_their_own_destinations_through_their_filters() {
    let ns = Namespace::new("fwd-routing");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let hec = FakeHec::start(HecSetup {
        allowed_indexes: Some(vec!["audit".into()]),
        ..HecSetup::default()
    })
    .await;
    let hook_a = FakeWebhook::start(WebhookSetup::default()).await;
    let hook_b = FakeWebhook::start(WebhookSetup::default()).await;

    for org in ["org_ent_a", "org_ent_b", "org_downgraded"] {
        enterprise(&gateway, org).await;
    }
    destination(
        &gateway,
        "org_ent_a",
        "Splunk (auth only)",
        hec_config(&hec),
        json!({"categories": ["authentication"]}),
    )
    .await;
    destination(
        &gateway,
        "org_ent_a",
        "SOC hook (no billing)",
        webhook_config(&hook_a),
        json!({"exclude_actions": ["billing.*"]}),
    )
    .await;
    destination(
        &gateway,
        "org_ent_b",
        "B hook",
        webhook_config(&hook_b),
        json!({}),
    )
    .await;
    destination(
        &gateway,
        "org_downgraded",
        "would-be hook",
        webhook_config(&hook_b),
        json!({}),
    )
    .await;
    let (status, body) = gateway
        .admin(
            reqwest::Method::PATCH,
            "/v1/admin/orgs/org_downgraded",
            Some(&json!({"plan": "team"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let forwarder = Forwarder::start(&ns, &[]).await;

    let key = gateway.producer_key("routing-tests", &["*"], None).await;
    let actions = [
        "user.login.succeeded",
        "user.login.failed",
        "billing.invoice.generated",
        "resource.created",
        "api_key.generated",
    ];
    let a = events("org_ent_a", &actions, 40);
    let b = events("org_ent_b", &actions, 20);
    let downgraded = events("org_downgraded", &actions, 20);
    let free = events("org_free", &actions, 20);
    for batch in [&a, &b, &downgraded, &free] {
        publish(&gateway, &key, batch).await;
    }
    // Direct producers (not through the gateway) are forwarded too, once validated.
    let direct = event("org_ent_b", "member.role.changed");
    let producer = kafka::producer(&ns.infra.kafka);
    kafka::produce(
        &producer,
        &ns.events_topic,
        Some("org_ent_b"),
        direct.to_string().as_bytes(),
    )
    .await;

    let ids = |events: &[Value], keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    let a_auth = ids(&a, &|e| e["category"] == "authentication");
    let a_not_billing = ids(&a, &|e| e["category"] != "billing");
    let mut b_all = ids(&b, &|_| true);
    b_all.push(direct["id"].as_str().unwrap().to_string());
    delivered_all(
        "org A's authentication events in Splunk",
        &hec,
        &a_auth,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "org A's non-billing events on its hook",
        &hook_a,
        &a_not_billing,
        Duration::from_secs(60),
    )
    .await;
    delivered_all(
        "org B's events on its hook",
        &hook_b,
        &b_all,
        Duration::from_secs(60),
    )
    .await;
    wait_caught_up(&ns).await;

    // Filters: nothing else of org A.
    let hec_ids = hec.unique_ids();
    for id in ids(&a, &|e| e["category"] != "authentication") {
        assert!(
            !hec_ids.contains(&id),
            "a filtered-out event reached Splunk"
        );
    }
    let hook_a_ids = hook_a.unique_ids();
    for id in ids(&a, &|e| e["category"] == "billing") {
        assert!(
            !hook_a_ids.contains(&id),
            "an excluded billing event reached the hook"
        );
    }
    // Isolation: each destination only ever saw its own organization.
    assert_eq!(
        orgs_of(&hec, "/event/org_id"),
        HashSet::from(["org_ent_a".to_string()])
    );
    assert_eq!(
        orgs_of(&hook_a, "/org_id"),
        HashSet::from(["org_ent_a".to_string()])
    );
    assert_eq!(
        orgs_of(&hook_b, "/org_id"),
        HashSet::from(["org_ent_b".to_string()])
    );
    // The HEC envelope: time with milliseconds, metadata, the event.
    let envelope = hec.received()[0].item.clone().unwrap();
    assert_eq!(envelope["index"], "audit");
    assert_eq!(envelope["sourcetype"], "solarius:audit");
    assert_eq!(envelope["fields"]["org_id"], "org_ent_a");
    assert!(envelope["time"].as_f64().is_some());
    for (name, fake) in [("hook_a", &hook_a), ("hook_b", &hook_b)] {
        assert_signed(name, fake);
    }
    assert_signed("hec", &hec);
    assert!(
        forwarder.destinations().await["destinations"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
}
