//! Boundary: a product team with a producer key, over `POST /v1/events`. The server-owned
//! fields — `received_at`, `source`, `provenance` — are the gateway's whatever the body says,
//! and the platform's own category is refused to every key, even a `*` key.

use audit_tests::events::event;
use serde_json::json;
use time::OffsetDateTime;

use crate::pipeline::{Pipeline, time_of};

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_key_cannot_choose_server_owned_fields_or_write_internal_events() {
    let pipeline = Pipeline::start("hostile-http").await;
    let gateway = &pipeline.gateway;
    let billing = gateway
        .producer_key("billing-api", &["billing"], None)
        .await;
    let started = OffsetDateTime::now_utc();

    // Claimed arrival time, another service's name, a claimed provenance: all replaced.
    let mut forged = event("org_http", "billing.payment.failed");
    forged["received_at"] = json!("2000-01-01T00:00:00Z");
    forged["source"] = json!("identity-api");
    forged["provenance"] = json!("system");
    let (status, body) = gateway.post_events(&billing, &forged).await;
    assert_eq!(status, 202, "{body}");
    let stored = pipeline.stored(forged["id"].as_str().unwrap()).await;
    assert_eq!(stored["source"], "billing-api", "the key's name, verified");
    assert_eq!(stored["provenance"], "gateway");
    assert!(
        time_of(&stored["received_at"]) >= started - time::Duration::seconds(5),
        "{stored}"
    );

    // The platform's own category, even with a key for every category: refused, not stored.
    for action in ["audit_log.exported", "audit_log.destination.deleted"] {
        let internal = event("org_http", action);
        let (status, body) = gateway.post_events(&pipeline.key, &internal).await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("internal"),
            "{body}"
        );
        assert_eq!(pipeline.count(internal["id"].as_str().unwrap()).await, 0);
    }
    // No key may even be created for it.
    let (status, body) = gateway
        .admin_post(
            "/v1/admin/producer-keys",
            &json!({"name": "sneaky", "categories": ["billing", "audit_log"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("categories[1]"), "{body}");

    pipeline.others_keep_flowing("org_bystander").await;
}
