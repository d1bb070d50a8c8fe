//! Issue 3 — the gateway's write path: authentication and scopes, every validation class,
//! the 4xx paths, durability when Kafka goes away mid-load, and idempotent resubmission.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{
    DedicatedEngine, EngineKind, Namespace, Service, ServiceKind, eventually, kafka,
};
use serde_json::{Value, json};

async fn gateway_only(name: &str) -> (Namespace, Service, Gateway) {
    let ns = Namespace::new(name);
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    (ns, gateway, client)
}

fn error_reasons(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["errors"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            format!(
                "{} {}",
                e["path"].as_str().unwrap_or(""),
                e["reason"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn producers_are_authenticated_and_scoped() {
    let (_ns, _gateway, client) = gateway_only("ingest-auth").await;
    let billing_key = client
        .producer_key("billing-api", &["billing"], Some(&["org_a"]))
        .await;
    let good = event("org_a", "billing.invoice.generated");

    let (status, body, _) = client
        .post_raw(
            None,
            Some("application/json"),
            good.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 401, "missing key: {body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _, _) = client
        .post_raw(
            Some("ak_000000000000_notarealsecretatall"),
            Some("application/json"),
            good.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 401, "unknown key");
    let tampered = format!("{}x", billing_key);
    let (status, _, _) = client
        .post_raw(
            Some(&tampered),
            Some("application/json"),
            good.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 401, "wrong secret");

    let (status, body) = client.post_events(&billing_key, &good).await;
    assert_eq!(status, 202, "{body}");

    let (status, body) = client
        .post_events(&billing_key, &event("org_a", "user.login.failed"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may publish categories [billing]"),
        "{body}"
    );
    let (status, body) = client
        .post_events(&billing_key, &event("org_b", "billing.invoice.generated"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may publish for organizations [org_a]"),
        "{body}"
    );

    // `*` covers every category but the platform's internal one, which no producer may write.
    let any_key = client.producer_key("any-api", &["*"], None).await;
    let (status, body) = client
        .post_events(&any_key, &event("org_a", "audit_log.exported"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("internal"),
        "{body}"
    );

    // Revocation takes effect at once.
    let key_id = billing_key.split('_').nth(1).unwrap();
    let (status, body) = client
        .admin(
            reqwest::Method::DELETE,
            &format!("/v1/admin/producer-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["revoked_at"].is_string());
    let (status, _) = client
        .post_events(&billing_key, &event("org_a", "billing.invoice.generated"))
        .await;
    assert_eq!(status, 401, "revoked key");

    // Operator endpoints refuse producer keys.
    let response = client
        .http
        .get(format!("{}/v1/admin/producer-keys", client.url))
        .bearer_auth(&any_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_validation_class_is_a_precise_per_event_error() {
    let (_ns, _gateway, client) = gateway_only("ingest-validation").await;
    let key = client.producer_key("all", &["*"], None).await;
    type Mutation = Box<dyn Fn(&mut Value)>;
    let mutations: Vec<(&str, Mutation, &str)> = vec![
        (
            "missing field",
            Box::new(|e: &mut Value| {
                e.as_object_mut().unwrap().remove("actor");
            }),
            "$ ",
        ),
        (
            "wrong type",
            Box::new(|e: &mut Value| e["outcome"] = json!(42)),
            "$.outcome",
        ),
        (
            "bad enum",
            Box::new(|e: &mut Value| e["actor"]["type"] = json!("robot")),
            "$.actor.type",
        ),
        (
            "unknown category",
            Box::new(|e: &mut Value| e["category"] = json!("weather")),
            "$.category",
        ),
        (
            "action of another category",
            Box::new(|e: &mut Value| e["action"] = json!("billing.payment.failed")),
            "belongs to category `billing`",
        ),
        (
            "unknown action",
            Box::new(|e: &mut Value| e["action"] = json!("user.teleported")),
            "$.action",
        ),
        (
            "no zone",
            Box::new(|e: &mut Value| e["occurred_at"] = json!("2026-11-26T10:00:00")),
            "$.occurred_at",
        ),
        (
            "future",
            Box::new(|e: &mut Value| e["occurred_at"] = json!("2099-01-01T00:00:00Z")),
            "in the future",
        ),
        (
            "long string",
            Box::new(|e: &mut Value| e["actor"]["name"] = json!("x".repeat(2000))),
            "$.actor.name",
        ),
        (
            "too many targets",
            Box::new(|e: &mut Value| {
                e["targets"] = Value::Array(
                    (0..40)
                        .map(|i| json!({"type":"t","id":i.to_string()}))
                        .collect(),
                )
            }),
            "$.targets",
        ),
        (
            "nested metadata",
            Box::new(|e: &mut Value| e["metadata"] = json!({"deep": {"er": 1}})),
            "$.metadata.deep",
        ),
        (
            "too many metadata keys",
            Box::new(|e: &mut Value| {
                e["metadata"] =
                    Value::Object((0..70).map(|i| (format!("k{i}"), json!(i))).collect())
            }),
            "$.metadata",
        ),
        (
            "invalid ip",
            Box::new(|e: &mut Value| e["context"]["ip"] = json!("300.1.1.1")),
            "$.context.ip",
        ),
        (
            "bad email",
            Box::new(|e: &mut Value| e["actor"]["email"] = json!("not-an-email")),
            "$.actor.email",
        ),
        (
            "bad id",
            Box::new(|e: &mut Value| e["id"] = json!("1234")),
            "$.id",
        ),
        (
            "unknown field",
            Box::new(|e: &mut Value| e["colour"] = json!("red")),
            "colour",
        ),
        (
            "event too large",
            Box::new(|e: &mut Value| {
                e["metadata"] = Value::Object(
                    (0..40)
                        .map(|i| (format!("k{i}"), json!("v".repeat(1000))))
                        .collect(),
                )
            }),
            "the limit is 32768 bytes",
        ),
    ];
    for (name, mutate, expected) in &mutations {
        let mut bad = event("org_v", "user.login.failed");
        mutate(&mut bad);
        let (status, body) = client.post_events(&key, &bad).await;
        assert_eq!(status, 422, "{name}: {body}");
        let reasons = error_reasons(&body);
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{name}: expected `{expected}` in {reasons:?}"
        );
    }

    // A batch: valid events are accepted, invalid ones rejected by index (207).
    let mut bad = event("org_v", "user.login.failed");
    bad["outcome"] = json!("maybe");
    let batch = json!([
        event("org_v", "user.login.failed"),
        bad,
        event("org_v", "resource.created")
    ]);
    let (status, body) = client.post_events(&key, &batch).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["results"][1]["status"], "rejected");
    assert_eq!(body["results"][1]["index"], 1);
    assert!(body["results"][0]["id"].is_string());

    // Atomic: one invalid event rejects the batch; nothing is published.
    let response = client
        .http
        .post(format!("{}/v1/events?atomic=true", client.url))
        .bearer_auth(&key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 0);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("atomic"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_oversized_and_mistyped_bodies() {
    let (ns, _gateway, client) = gateway_only("ingest-4xx").await;
    let key = client.producer_key("all", &["*"], None).await;
    let json_type = Some("application/json");

    let (status, body, _) = client
        .post_raw(Some(&key), json_type, b"{\"org_id\": ".to_vec())
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    let (status, _, _) = client.post_raw(Some(&key), json_type, b"[]".to_vec()).await;
    assert_eq!(status, 400, "empty batch");
    let (status, _, _) = client
        .post_raw(Some(&key), json_type, b"\"event\"".to_vec())
        .await;
    assert_eq!(status, 400, "not an object");
    let (status, body, _) = client
        .post_raw(Some(&key), json_type, vec![0xff, 0xfe, b'{'])
        .await;
    assert_eq!(status, 400, "invalid UTF-8: {body}");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let (status, _, _) = client
        .post_raw(Some(&key), json_type, deep.into_bytes())
        .await;
    assert_eq!(status, 400, "deeply nested");

    let (status, body, _) = client
        .post_raw(
            Some(&key),
            Some("text/plain"),
            event("org_x", "resource.created").to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let (status, _, _) = client
        .post_raw(
            Some(&key),
            None,
            event("org_x", "resource.created").to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 415, "missing content type");

    let huge = json!({"org_id": "org_x", "padding": "x".repeat(2 * 1024 * 1024)});
    let (status, body, _) = client
        .post_raw(Some(&key), json_type, huge.to_string().into_bytes())
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let too_many = Value::Array((0..1001).map(|_| json!({})).collect());
    let (status, body, _) = client
        .post_raw(Some(&key), json_type, too_many.to_string().into_bytes())
        .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1001 events")
    );

    // NDJSON: a malformed line rejects that event only.
    let first = event("org_x", "resource.created");
    let last = event("org_x", "resource.deleted");
    let ndjson = format!("{first}\n{{not json\n\n{last}\n");
    let (status, body, _) = client
        .post_raw(
            Some(&key),
            Some("application/x-ndjson"),
            ndjson.into_bytes(),
        )
        .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["accepted"], 2);
    assert!(error_reasons(&body)[0].contains("not valid JSON"));

    // Accepted events are on the topic; rejected ones are not.
    let ids = kafka::event_ids(&ns.infra.kafka, &ns.events_topic);
    assert!(ids.contains(&first["id"].as_str().unwrap().to_string()));
    assert!(ids.contains(&last["id"].as_str().unwrap().to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn resubmissions_appear_once_in_query_results() {
    let ns = Namespace::new("ingest-dedup");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    let key = client
        .producer_key("identity", &["authentication"], None)
        .await;

    // The same event (same id) three times, once inside a batch.
    let same = event("org_dedup", "user.login.succeeded");
    for _ in 0..2 {
        assert_eq!(client.post_events(&key, &same).await.0, 202);
    }
    assert_eq!(
        client
            .post_events(
                &key,
                &json!([same.clone(), event("org_dedup", "user.logout")])
            )
            .await
            .0,
        202
    );

    // Without an id, an Idempotency-Key makes the retry safe.
    let mut anonymous = event("org_dedup", "user.mfa.enrolled");
    anonymous.as_object_mut().unwrap().remove("id");
    let mut ids = HashSet::new();
    for _ in 0..3 {
        let response = client
            .http
            .post(format!("{}/v1/events", client.url))
            .bearer_auth(&key)
            .header("idempotency-key", "signup-42")
            .json(&anonymous)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let body: Value = response.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "the same Idempotency-Key gives the same id");

    eventually(
        "three distinct events indexed",
        Duration::from_secs(30),
        || async {
            (ns.try_sql_u64("SELECT count() FROM events FINAL WHERE org_id = 'org_dedup'")
                .await
                == Some(3))
            .then_some(())
        },
    )
    .await;
    let physical = ns
        .sql_u64("SELECT count() FROM events WHERE org_id = 'org_dedup'")
        .await;
    assert!(physical >= 3, "{physical}");
    let same_id = same["id"].as_str().unwrap();
    assert_eq!(
        ns.sql_u64(&format!(
            "SELECT count() FROM events FINAL WHERE id = '{same_id}'"
        ))
        .await,
        1
    );
}

/// Kafka stops in the middle of a load: the gateway answers 503 + Retry-After (never a 2xx
/// it cannot honour), and once Kafka is back every id that got a 2xx is on the topic.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_down_mid_load_loses_no_acknowledged_event() {
    let mut ns = Namespace::new("ingest-kafka-down");
    let broker = DedicatedEngine::start(EngineKind::Kafka, &ns);
    ns.infra.kafka = broker.address();
    let gateway = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[("GATEWAY__PRODUCER__DELIVERY_TIMEOUT_MS", "3000")],
    )
    .await;
    let client = Gateway::new(&gateway.url());
    let key = client.producer_key("loader", &["*"], None).await;

    let load = {
        let client = client.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut unavailable = 0usize;
            let mut retry_after_seen = false;
            let started = std::time::Instant::now();
            let mut n = 0u64;
            while started.elapsed() < Duration::from_secs(25) {
                let batch: Vec<Value> = (0..20)
                    .map(|i| event(&format!("org_{}", (n + i) % 7), "resource.created"))
                    .collect();
                n += 20;
                let response = client
                    .http
                    .post(format!("{}/v1/events", client.url))
                    .bearer_auth(&key)
                    .json(&batch)
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let status = response.status().as_u16();
                if status == 503 {
                    unavailable += 1;
                    retry_after_seen |= response.headers().contains_key("retry-after");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                let body: Value = response.json().await.unwrap();
                assert_eq!(status, 202, "{body}");
                acknowledged.extend(
                    body["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["id"].as_str().unwrap().to_string()),
                );
            }
            (acknowledged, unavailable, retry_after_seen)
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    broker.stop();
    tokio::time::sleep(Duration::from_secs(8)).await;
    broker.resume();
    let (acknowledged, unavailable, retry_after_seen) = load.await.unwrap();
    assert!(
        unavailable > 0,
        "Kafka was down for 8 s: some requests must have been refused"
    );
    assert!(retry_after_seen, "503 answers carry Retry-After");
    assert!(!acknowledged.is_empty());

    let on_topic: HashSet<String> = kafka::event_ids(&ns.infra.kafka, &ns.events_topic)
        .into_iter()
        .collect();
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !on_topic.contains(*id))
        .collect();
    println!(
        "kafka-down: {} events acknowledged, {} requests refused with 503, {} events on the topic, {} acknowledged missing",
        acknowledged.len(),
        unavailable,
        on_topic.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged events are not on the topic: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
