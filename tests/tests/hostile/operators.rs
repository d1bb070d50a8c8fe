//! Boundary: the writers of the settings — operators through the operator API, racing each
//! other and the forwarder's automatic pauses. No change acknowledged with a 200 is undone by
//! a concurrent one; a destination's credential never follows a URL it was not given for;
//! API tokens are in the log before they exist; stopped forwarders leave no health behind.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use audit_kafka::{KafkaConfig, TopicsConfig};
use audit_runtime::Secret;
use audit_settings::{OrgSettings, SettingsAuth, SettingsRecord, SettingsStore};
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook, Injected};
use audit_tests::{
    INTEGRITY_KEY, Namespace, SETTINGS_KEY, Service, ServiceKind, eventually, kafka, user_token,
};
use rdkafka::Message;
use serde_json::{Value, json};

use crate::common::metric_where;
use crate::pipeline::{FAST_FORWARDER, Pipeline};

fn auth() -> SettingsAuth {
    SettingsAuth::from_config(&[Secret::new(SETTINGS_KEY.to_string())], "test").unwrap()
}

/// Whether the last record of `key` is signed and holds what `store` applied.
fn tail_is_applied(brokers: &str, topic: &str, key: &str, applied: &[u8]) -> bool {
    let last = kafka::last_by_key(brokers, topic);
    let Some(message) = last.get(key) else {
        return false;
    };
    let tag = kafka::header(message, audit_settings::auth::HEADER);
    let verified = auth()
        .verify(key, message.payload(), tag.as_deref().map(str::as_bytes))
        .is_ok();
    verified && message.payload() == Some(applied)
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_compare_and_set_writers_lose_nothing() {
    // Eight writers on two instances increment one counter in the same record as fast as they
    // can: every write that was acknowledged is in the result, and every reader agrees.
    let ns = Namespace::new("hostile-cas");
    let kafka_config = KafkaConfig {
        brokers: ns.infra.kafka.clone(),
        properties: Default::default(),
        secret_properties: Default::default(),
    };
    let topics = TopicsConfig {
        events: ns.events_topic.clone(),
        dead_letter: ns.dead_letter_topic.clone(),
        settings: ns.settings_topic.clone(),
        forwarder_retry: ns.retry_topic.clone(),
        integrity_key: Some(Secret::new(INTEGRITY_KEY.to_string())),
        ..TopicsConfig::default()
    };
    audit_kafka::ensure_topics(&kafka_config, &topics)
        .await
        .unwrap();
    let start =
        |name: &str| SettingsStore::start(&kafka_config, &ns.settings_topic, auth(), name).unwrap();
    let stores = [start("cas-a"), start("cas-b")];
    for store in &stores {
        store.wait_caught_up(Duration::from_secs(30)).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let repairs = stores[0].spawn_repairs(async move {
        let _ = stopped.await;
    });
    let acknowledged = Arc::new(AtomicU64::new(0));
    let conflicts = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for writer in 0..8 {
        let store = stores[writer % 2].clone();
        let (acknowledged, conflicts) = (acknowledged.clone(), conflicts.clone());
        writers.push(tokio::spawn(async move {
            let mut mine = 0;
            while mine < 15 {
                let now = time::OffsetDateTime::now_utc();
                let mut org = store
                    .view()
                    .org("org_cas")
                    .map(|org| org.as_ref().clone())
                    .unwrap_or_else(|| OrgSettings::new("org_cas", now, "writer"));
                org.retention_days = Some(org.retention_days.unwrap_or(0) + 1);
                org.revision += 1;
                org.updated_by = format!("writer-{writer}");
                match store.put(&SettingsRecord::Org(org)).await {
                    Ok(_) => {
                        mine += 1;
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(audit_settings::Error::Conflict(_)) => {
                        conflicts.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(error) => panic!("writer {writer}: {error}"),
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.load(Ordering::SeqCst);
    let conflicts = conflicts.load(Ordering::SeqCst);
    println!("{acknowledged} writes acknowledged, {conflicts} lost a race and were refused");
    assert_eq!(acknowledged, 120);
    assert!(conflicts > 0, "the writers did race");
    for store in &stores {
        let org = eventually(
            "every reader at the last write",
            Duration::from_secs(10),
            || async {
                let view = store.view();
                view.org("org_cas")
                    .filter(|org| org.revision == acknowledged)
                    .cloned()
            },
        )
        .await;
        assert_eq!(
            org.retention_days,
            Some(120),
            "no acknowledged increment lost or undone"
        );
    }
    // Whatever lost a race last, the key's last record on the topic is the applied one.
    let applied = stores[0].view().applied["org/org_cas"].payload.clone();
    eventually("the tail repaired", Duration::from_secs(20), || async {
        tail_is_applied(&ns.infra.kafka, &ns.settings_topic, "org/org_cas", &applied).then_some(())
    })
    .await;
    let _ = stop.send(());
    repairs.await.unwrap();
    for store in &stores {
        store.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn operator_changes_racing_automatic_pauses_are_never_undone() {
    let pipeline = Pipeline::start("hostile-pause-race").await;
    let misconfigured = FakeWebhook::start(WebhookSetup::default()).await;
    misconfigured.fail_always(Some(Injected::new(401, r#"{"error":"bad credentials"}"#)));
    pipeline.enterprise("org_race").await;
    let mut destinations = Vec::new();
    for n in 0..4 {
        let id = pipeline
            .webhook(
                "org_race",
                &format!("hook-{n}"),
                &format!("{}/{n}", misconfigured.url()),
            )
            .await;
        destinations.push(id);
    }
    let forwarder_env: Vec<(&str, &str)> = FAST_FORWARDER.to_vec();
    let forwarder = Service::start(ServiceKind::Forwarder, &pipeline.ns, &forwarder_env).await;

    // The operator changes the retention over and over while the forwarder pauses the four
    // destinations (each answers 401: misconfigured, paused at once).
    let gateway = pipeline.gateway.clone();
    let operator = tokio::spawn(async move {
        let mut acknowledged = None;
        let mut refused = 0;
        for days in 100..160u16 {
            let (status, body) = gateway
                .patch_org("org_race", &json!({"retention_days": days}))
                .await;
            match status {
                200 => {
                    assert_eq!(body["retention_days"], days, "{body}");
                    acknowledged = Some(days);
                }
                412 => refused += 1,
                other => panic!("PATCH answered {other}: {body}"),
            }
        }
        (acknowledged, refused)
    });
    for _ in 0..20 {
        pipeline.publish("org_race", "user.login.failed").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (last_acknowledged, refused) = operator.await.unwrap();
    let last_acknowledged = last_acknowledged.expect("some changes acknowledged");

    let settings = eventually(
        "every destination paused",
        Duration::from_secs(60),
        || async {
            let (status, body) = pipeline
                .gateway
                .admin(reqwest::Method::GET, "/v1/admin/orgs/org_race", None)
                .await;
            assert_eq!(status, 200, "{body}");
            let paused = body["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["state"]["status"] == "paused")
                .count();
            (paused == destinations.len()).then_some(body)
        },
    )
    .await;
    assert_eq!(
        settings["retention_days"], last_acknowledged,
        "the operator's last acknowledged change is in force: {settings}"
    );
    let conflicts = metric_where(&forwarder.ops_url(), "forwarder_pause_conflicts_total", "").await;
    println!(
        "operator: {refused} PATCHes refused (412); forwarder: {conflicts} pauses re-applied after a lost race"
    );
    // Each pause recorded once, as the system's own event.
    let wanted = destinations.len() as u64;
    eventually("one pause event per destination", Duration::from_secs(30), || async {
        let recorded = pipeline
            .ns
            .try_sql_u64(
                "SELECT count() FROM events FINAL WHERE org_id = 'org_race' AND action = 'audit_log.destination.paused' AND provenance = 'system'",
            )
            .await;
        (recorded == Some(wanted)).then_some(())
    })
    .await;
    pipeline.others_keep_flowing("org_bystander").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_does_not_follow_a_changed_url() {
    let pipeline = Pipeline::start("hostile-credential").await;
    pipeline.enterprise("org_cred").await;
    let base = "/v1/admin/orgs/org_cred/destinations";
    let (status, body) = pipeline
        .gateway
        .admin_post(
            base,
            &json!({"name": "Splunk", "signing_secret": audit_tests::fakes::SIGNING_SECRET,
                    "config": {"type": "splunk_hec", "url": "https://hec.example.com:8088", "token": "5e1a7d2c-0b3f-4c5d-9e8f-000000000001"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    let patch = |config: Value| {
        let gateway = pipeline.gateway.clone();
        let path = format!("{base}/{id}");
        async move {
            gateway
                .admin(
                    reqwest::Method::PATCH,
                    &path,
                    Some(&json!({"config": config})),
                )
                .await
        }
    };
    // Same URL, credential kept.
    let (status, body) = patch(
        json!({"type": "splunk_hec", "url": "https://hec.example.com:8088", "index": "audit"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Another URL without the credential: refused, naming the field.
    let (status, body) =
        patch(json!({"type": "splunk_hec", "url": "https://collector.intruder.example"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("config.token"), "{body}");
    let (_, current) = pipeline
        .gateway
        .admin(reqwest::Method::GET, &format!("{base}/{id}"), None)
        .await;
    assert_eq!(current["config"]["url"], "https://hec.example.com:8088");
    // With the credential given again, the move is allowed.
    let (status, body) = patch(json!({"type": "splunk_hec", "url": "https://hec2.example.com:8088", "token": "5e1a7d2c-0b3f-4c5d-9e8f-000000000002"})).await;
    assert_eq!(status, 200, "{body}");
    pipeline.others_keep_flowing("org_bystander").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_tokens_are_in_the_log_before_they_exist_and_after_they_end() {
    let pipeline = Pipeline::start("hostile-token-audit").await;
    pipeline.enterprise("org_tok").await;
    let admin = user_token("org_tok", "admin", "u_admin", 600);
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!(
            "{}/v1/orgs/org_tok/api-tokens",
            pipeline.gateway.url
        ))
        .bearer_auth(&admin)
        .json(&json!({"name": "siem"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_id = created["token_id"].as_str().unwrap().to_string();
    let revoked = http
        .delete(format!(
            "{}/v1/orgs/org_tok/api-tokens/{token_id}",
            pipeline.gateway.url
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    // Each audit event was appended by the broker before the settings record was even
    // produced (the gateway waits for the event's acknowledgement first).
    let brokers = pipeline.brokers();
    let events = kafka::read_all(brokers, &pipeline.ns.events_topic);
    let records: Vec<_> = kafka::read_all(brokers, &pipeline.ns.settings_topic)
        .into_iter()
        .filter(|m| m.key() == Some(format!("api_token/{token_id}").as_bytes()))
        .collect();
    assert!(records.len() >= 2, "created and revoked");
    for (action, revision) in [
        ("audit_log.api_token.created", 1),
        ("audit_log.api_token.revoked", 2),
    ] {
        let audit = events
            .iter()
            .find(|m| {
                m.payload()
                    .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                    .is_some_and(|e| {
                        e["action"] == action && e["targets"][0]["id"] == token_id.as_str()
                    })
            })
            .unwrap_or_else(|| panic!("{action} recorded"));
        let record = records
            .iter()
            .find(|m| {
                m.payload()
                    .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                    .is_some_and(|r| r["revision"] == revision)
            })
            .unwrap();
        let audited_at = audit.timestamp().to_millis().unwrap();
        let changed_at = record.timestamp().to_millis().unwrap();
        assert!(
            audited_at <= changed_at,
            "{action}: recorded at {audited_at}, changed at {changed_at}"
        );
    }
    pipeline.others_keep_flowing("org_bystander").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_forwarders_leave_no_health_behind() {
    let pipeline = Pipeline::start("hostile-health").await;
    let receiver = FakeWebhook::start(WebhookSetup::default()).await;
    pipeline.enterprise("org_health").await;
    let destination = pipeline
        .webhook("org_health", "SOC", &format!("{}/audit", receiver.url()))
        .await;
    let health_path = format!("/v1/admin/orgs/org_health/destinations/{destination}/health");
    let instances = |pipeline: &Pipeline| {
        let gateway = pipeline.gateway.clone();
        let path = health_path.clone();
        async move {
            let (status, body) = gateway.admin(reqwest::Method::GET, &path, None).await;
            assert_eq!(status, 200, "{body}");
            body["instances"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["instance"].as_str().unwrap().to_string())
                .collect::<HashSet<String>>()
        }
    };
    let fast: Vec<(&str, &str)> = FAST_FORWARDER
        .iter()
        .copied()
        .chain([("FORWARDER__HEALTH__REFRESH_SECS", "2")])
        .collect();
    let mut first_env = fast.clone();
    first_env.push(("FORWARDER__DELIVERY__INSTANCE_ID", "fwd-first"));
    let mut first = Service::start(ServiceKind::Forwarder, &pipeline.ns, &first_env).await;
    pipeline.publish("org_health", "resource.created").await;
    eventually(
        "the first instance reports",
        Duration::from_secs(30),
        || async {
            instances(&pipeline)
                .await
                .contains("fwd-first")
                .then_some(())
        },
    )
    .await;
    assert!(first.terminate(), "graceful shutdown");
    eventually(
        "its record deleted on shutdown",
        Duration::from_secs(20),
        || async { instances(&pipeline).await.is_empty().then_some(()) },
    )
    .await;

    // An instance that died without deleting its record: the record expires, the operator
    // view ignores it, and a running forwarder deletes it.
    let mut second_env = fast.clone();
    second_env.push(("FORWARDER__DELIVERY__INSTANCE_ID", "fwd-second"));
    let _second = Service::start(ServiceKind::Forwarder, &pipeline.ns, &second_env).await;
    let key = format!("health/{destination}/fwd-dead");
    let expired = json!({
        "kind": "destination_health", "org_id": "org_health", "destination_id": destination,
        "instance": "fwd-dead", "state": "retrying", "consecutive_failures": 9, "backlog": 1000,
        "delivered_total": 0, "dead_lettered_total": 0,
        "updated_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:15:00Z",
    })
    .to_string();
    let tag = auth().sign(&key, Some(expired.as_bytes()));
    let producer = kafka::producer(pipeline.brokers());
    kafka::produce_with_headers(
        &producer,
        &pipeline.ns.settings_topic,
        &key,
        Some(expired.as_bytes()),
        &[(audit_settings::auth::HEADER, tag.as_bytes())],
    )
    .await;
    pipeline.publish("org_health", "resource.deleted").await;
    eventually(
        "only the live instance shown",
        Duration::from_secs(30),
        || async {
            (instances(&pipeline).await == HashSet::from(["fwd-second".to_string()])).then_some(())
        },
    )
    .await;
    eventually(
        "the expired record deleted",
        Duration::from_secs(30),
        || async {
            let last = kafka::last_by_key(pipeline.brokers(), &pipeline.ns.settings_topic);
            last.get(&key)
                .is_some_and(|m| m.payload().is_none())
                .then_some(())
        },
    )
    .await;
    pipeline.others_keep_flowing("org_bystander").await;
}
