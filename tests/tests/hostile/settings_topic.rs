//! Boundary: a Kafka client that can write the settings topic (ACLs are the first line of
//! defence; this is what happens if they are missing). It injects an `api_token` with a hash of
//! its choosing, rewrites a destination's URL while keeping its sealed credential, deletes a
//! token with a tombstone, replays an old record. Every service ignores all of it, the gateway
//! re-writes the valid records so compaction cannot drop them, and nothing else changes.

use std::time::Duration;

use audit_runtime::Secret;
use audit_settings::SettingsAuth;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeWebhook};
use audit_tests::{SETTINGS_KEY, Service, ServiceKind, eventually, kafka, user_token};
use rdkafka::Message;
use serde_json::{Value, json};

use crate::pipeline::{FAST_FORWARDER, Pipeline};

async fn get(url: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn auth() -> SettingsAuth {
    SettingsAuth::from_config(&[Secret::new(SETTINGS_KEY.to_string())], "test").unwrap()
}

/// The last record of `key` on the settings topic: its value and whether its tag verifies.
fn last_record(pipeline: &Pipeline, key: &str) -> (Option<Vec<u8>>, bool) {
    let last = kafka::last_by_key(pipeline.brokers(), &pipeline.ns.settings_topic);
    let message = last
        .get(key)
        .unwrap_or_else(|| panic!("no record for {key}"));
    let tag = kafka::header(message, audit_settings::auth::HEADER);
    let verified = auth()
        .verify(key, message.payload(), tag.as_deref().map(str::as_bytes))
        .is_ok();
    (message.payload().map(<[u8]>::to_vec), verified)
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_replayed_settings_records_are_ignored_and_repaired() {
    let pipeline = Pipeline::start("hostile-settings").await;
    let real = FakeWebhook::start(WebhookSetup::default()).await;
    let attacker = FakeWebhook::start(WebhookSetup::default()).await;
    pipeline.enterprise("org_ent").await;
    pipeline
        .webhook("org_ent", "SOC", &format!("{}/audit", real.url()))
        .await;
    let forwarder_env: Vec<(&str, &str)> = FAST_FORWARDER.to_vec();
    let _forwarder = Service::start(ServiceKind::Forwarder, &pipeline.ns, &forwarder_env).await;
    let list = format!("{}/v1/orgs/org_ent/events", pipeline.gateway.url);

    // A genuine API token, created by an Admin.
    let admin = user_token("org_ent", "admin", "u_admin", 600);
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/orgs/org_ent/api-tokens",
            pipeline.gateway.url
        ))
        .bearer_auth(&admin)
        .json(&json!({"name": "siem-pull"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let token_id = created["token_id"].as_str().unwrap().to_string();
    assert_eq!(get(&list, &token).await, 200);

    let settings = pipeline.ns.settings_topic.clone();
    let brokers = pipeline.brokers().to_string();
    let org_key = "org/org_ent";
    let token_key = format!("api_token/{token_id}");
    let (org_before, _) = last_record(&pipeline, org_key);
    let (token_before, _) = last_record(&pipeline, &token_key);
    let refused_before = pipeline
        .gateway_metric("settings_records_refused_total", "unauthenticated")
        .await;

    // 1. An API token with a hash of the intruder's choosing, for the Enterprise organization.
    let secret = "intruder-chosen-secret-0123456789";
    let forged_token = json!({
        "kind": "api_token", "token_id": "0123456789ab", "revision": 1, "org_id": "org_ent",
        "name": "backdoor", "secret_sha256": audit_settings::hash_secret(secret),
        "created_at": "2026-01-01T00:00:00Z", "created_by": "u_admin", "revoked_at": null,
    });
    kafka::kcat(
        &brokers,
        &settings,
        "api_token/0123456789ab",
        &[],
        &forged_token.to_string(),
    );
    // 2. The destination sent to the intruder's host, sealed credential and secrets kept,
    //    with a made-up tag.
    let mut forged_org: Value = serde_json::from_slice(org_before.as_deref().unwrap()).unwrap();
    forged_org["destinations"][0]["config"]["url"] = json!(format!("{}/stolen", attacker.url()));
    forged_org["revision"] = json!(forged_org["revision"].as_u64().unwrap() + 1);
    kafka::kcat(
        &brokers,
        &settings,
        org_key,
        &["settings-auth=v1=dev1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
        &forged_org.to_string(),
    );
    // 3. The genuine token deleted with a tombstone.
    let producer = kafka::producer(&brokers);
    kafka::produce_with_headers(&producer, &settings, &token_key, None, &[]).await;

    eventually(
        "the gateway refused the three forged records",
        Duration::from_secs(20),
        || async {
            let refused = pipeline
                .gateway_metric("settings_records_refused_total", "unauthenticated")
                .await;
            (refused >= refused_before + 3.0).then_some(())
        },
    )
    .await;
    assert_eq!(
        get(&list, &format!("at_0123456789ab_{secret}")).await,
        401,
        "forged token"
    );
    assert_eq!(
        get(&list, &token).await,
        200,
        "the genuine token is not deleted"
    );
    let (status, destination) = pipeline
        .gateway
        .admin(reqwest::Method::GET, "/v1/admin/orgs/org_ent", None)
        .await;
    assert_eq!(status, 200);
    assert!(
        destination["destinations"][0]["config"]["url"]
            .as_str()
            .unwrap()
            .starts_with(&real.url()),
        "{destination}"
    );
    // The forwarder ignored the rewrite too: events and credentials go to the real SIEM only.
    let sent_id = pipeline.publish("org_ent", "user.login.failed").await;
    eventually(
        "delivered to the real SIEM",
        Duration::from_secs(30),
        || async { real.unique_ids().contains(&sent_id).then_some(()) },
    )
    .await;
    assert_eq!(attacker.stats().requests, 0, "nothing reached the intruder");

    // Compaction keeps the last record of a key: the gateway wrote the valid ones again.
    for (key, before) in [
        (org_key.to_string(), org_before),
        (token_key.clone(), token_before),
    ] {
        eventually(
            &format!("{key} repaired"),
            Duration::from_secs(20),
            || async {
                let (value, verified) = last_record(&pipeline, &key);
                (verified && value == before).then_some(())
            },
        )
        .await;
    }

    // 4. A replay: the token's genuine creation record (value and tag) after its revocation.
    let creation = kafka::read_all(&brokers, &settings)
        .into_iter()
        .find(|m| m.key() == Some(token_key.as_bytes()) && m.payload().is_some())
        .unwrap();
    let revoke = reqwest::Client::new()
        .delete(format!(
            "{}/v1/orgs/org_ent/api-tokens/{token_id}",
            pipeline.gateway.url
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(get(&list, &token).await, 401, "revoked");
    let (revoked, _) = last_record(&pipeline, &token_key);
    let tag = kafka::header(&creation, audit_settings::auth::HEADER).unwrap();
    kafka::produce_with_headers(
        &producer,
        &settings,
        &token_key,
        creation.payload(),
        &[(audit_settings::auth::HEADER, tag.as_bytes())],
    )
    .await;
    eventually(
        "the replay repaired away",
        Duration::from_secs(20),
        || async {
            let (value, verified) = last_record(&pipeline, &token_key);
            (verified && value == revoked).then_some(())
        },
    )
    .await;
    assert_eq!(
        get(&list, &token).await,
        401,
        "a replayed record does not un-revoke"
    );

    pipeline.others_keep_flowing("org_bystander").await;
}
