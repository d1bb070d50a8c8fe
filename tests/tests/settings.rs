//! Issue 5 — tenant settings: one source of truth followed live by every instance, validated
//! changes, write-only secrets sealed at rest, and every change in the organization's own log.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::time::{Duration, Instant};

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use rdkafka::Message;
use serde_json::{Value, json};

const HEC_TOKEN: &str = "5e1a7d2c-0b3f-4c5d-9e8f-SECRET-HEC-TOKEN";
const DD_KEY: &str = "dd-api-key-SECRET-0123456789abcdef";
const WAZUH_PASSWORD: &str = "Wazuh-Pa55word-SECRET";
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROTATED_SECRET: &str = "whsec_aGVsbG8td29ybGQtcm90YXRlZC1zZWNyZXQtMTIzNA==";

async fn patch_org(client: &Gateway, org: &str, body: Value) -> (u16, Value) {
    client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(&body),
        )
        .await
}

fn destinations() -> Vec<Value> {
    vec![
        json!({"name": "Splunk", "signing_secret": SIGNING_SECRET,
               "config": {"type": "splunk_hec", "url": "https://hec.example.com:8088", "token": HEC_TOKEN, "index": "audit"}}),
        json!({"name": "Datadog", "signing_secret": SIGNING_SECRET,
               "config": {"type": "datadog", "site": "datadoghq.eu", "api_key": DD_KEY}}),
        json!({"name": "Wazuh", "signing_secret": SIGNING_SECRET,
               "config": {"type": "wazuh", "url": "https://wazuh.example.com:55000", "username": "ingest", "password": WAZUH_PASSWORD}}),
        json!({"name": "Webhook", "signing_secret": SIGNING_SECRET, "filters": {"categories": ["security"]},
               "config": {"type": "webhook", "url": "https://siem.example.com/hooks/audit"}}),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_reaches_every_instance_and_restarts_rebuild_before_ready() {
    let ns = Namespace::new("settings-live");
    let first = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let mut second = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let one = Gateway::new(&first.url());
    let two = Gateway::new(&second.url());

    let changed_at = Instant::now();
    let (status, body) = patch_org(
        &one,
        "org_live",
        json!({"plan": "enterprise", "retention_days": 400}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let revision = body["revision"].as_u64().unwrap();
    eventually(
        "the second gateway sees the change",
        Duration::from_secs(10),
        || async {
            let (status, body) = two
                .admin(reqwest::Method::GET, "/v1/admin/orgs/org_live", None)
                .await;
            (status == 200 && body["revision"] == revision && body["retention_days"] == 400)
                .then_some(())
        },
    )
    .await;
    println!(
        "second gateway saw the change after {:?}",
        changed_at.elapsed()
    );

    // The indexer stamps new rows with the new retention.
    let key = one.producer_key("svc", &["*"], None).await;
    let sent = event("org_live", "resource.created");
    assert_eq!(one.post_events(&key, &sent).await.0, 202);
    let id = sent["id"].as_str().unwrap().to_string();
    eventually(
        "the indexer stamps the new retention",
        Duration::from_secs(30),
        || async {
            let stamped = ns
                .try_sql_u64(&format!(
                    "SELECT any(retention_days) FROM events WHERE id = '{id}' HAVING count() > 0"
                ))
                .await;
            (stamped == Some(400)).then_some(())
        },
    )
    .await;

    // A forwarder sees a destination created through the first gateway and starts delivering.
    let hook = audit_tests::fakes::FakeWebhook::start(
        audit_tests::fakes::webhook::WebhookSetup::default(),
    )
    .await;
    let _forwarder = Service::start(ServiceKind::Forwarder, &ns, &[]).await;
    let (status, body) = one
        .admin_post(
            "/v1/admin/orgs/org_live/destinations",
            &json!({"name": "hook", "signing_secret": audit_tests::fakes::SIGNING_SECRET,
                    "config": {"type": "webhook", "url": format!("{}/audit", audit_tests::fakes::Fake::url(&hook))}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created_at = Instant::now();
    let forwarded = event("org_live", "user.login.failed");
    assert_eq!(one.post_events(&key, &forwarded).await.0, 202);
    let forwarded_id = forwarded["id"].as_str().unwrap().to_string();
    eventually(
        "the forwarder delivers to the new destination",
        Duration::from_secs(20),
        || async {
            audit_tests::fakes::Fake::core(&hook)
                .unique_ids()
                .contains(&forwarded_id)
                .then_some(())
        },
    )
    .await;
    println!(
        "forwarder delivered to the new destination {:?} after it was created",
        created_at.elapsed()
    );

    // More changes through the first gateway, then the second restarts: when it reports
    // ready it already has the latest view.
    for days in [500, 600, 700] {
        assert_eq!(
            patch_org(&one, "org_live", json!({"retention_days": days}))
                .await
                .0,
            200
        );
    }
    let (_, latest) = one
        .admin(reqwest::Method::GET, "/v1/admin/orgs/org_live", None)
        .await;
    second.relaunch();
    second.wait_ready(Duration::from_secs(60)).await;
    let (status, seen) = two
        .admin(reqwest::Method::GET, "/v1/admin/orgs/org_live", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        seen["revision"], latest["revision"],
        "a restarted instance serves the latest view as soon as it is ready"
    );
    assert_eq!(seen["retention_days"], 700);
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_changes_are_refused_naming_the_field() {
    let ns = Namespace::new("settings-invalid");
    // A production-like outbound policy: https only, no private targets.
    let gateway = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[
            ("GATEWAY__OUTBOUND__ALLOW_HTTP", "false"),
            ("GATEWAY__OUTBOUND__ALLOW_PRIVATE", "[]"),
        ],
    )
    .await;
    let client = Gateway::new(&gateway.url());
    let field_of = |body: &Value| {
        body["error"]["details"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let (status, body) = patch_org(
        &client,
        "org_team",
        json!({"plan": "team", "retention_days": 91}),
    )
    .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "retention_days"),
        "{body}"
    );
    let (status, body) = patch_org(
        &client,
        "org_ent",
        json!({"plan": "enterprise", "retention_days": 1096}),
    )
    .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "retention_days"),
        "{body}"
    );
    let (status, body) = patch_org(&client, "org_team", json!({"plan": "platinum"})).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = patch_org(&client, "org_team", json!({"retention": 30})).await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "retention"),
        "unknown field: {body}"
    );
    let (status, _) = patch_org(&client, "bad org id!", json!({"plan": "team"})).await;
    assert_eq!(status, 400);

    // Destinations need the Enterprise plan.
    assert_eq!(
        patch_org(&client, "org_team", json!({"plan": "team"}))
            .await
            .0,
        200
    );
    let (status, body) = client
        .admin_post("/v1/admin/orgs/org_team/destinations", &destinations()[3])
        .await;
    assert_eq!((status, field_of(&body).as_str()), (422, "plan"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Enterprise"),
        "{body}"
    );

    assert_eq!(
        patch_org(&client, "org_ent", json!({"plan": "enterprise"}))
            .await
            .0,
        200
    );
    let with_url = |url: &str| json!({"name": "x", "signing_secret": SIGNING_SECRET, "config": {"type": "webhook", "url": url}});
    for (url, needle) in [
        ("http://siem.example.com/hook", "https"),
        ("https://10.1.2.3/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://127.0.0.1:8443/", "loopback"),
        ("https://[::1]/", "loopback"),
        ("https://localhost/", "local name"),
        ("ftp://siem.example.com/", "scheme"),
        ("https://user:pw@siem.example.com/", "credentials"),
    ] {
        let (status, body) = client
            .admin_post("/v1/admin/orgs/org_ent/destinations", &with_url(url))
            .await;
        assert_eq!(
            (status, field_of(&body).as_str()),
            (422, "config.url"),
            "{url}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{url}: {body}"
        );
    }
    let mut missing_secret = with_url("https://siem.example.com/hook");
    missing_secret
        .as_object_mut()
        .unwrap()
        .remove("signing_secret");
    let (status, body) = client
        .admin_post("/v1/admin/orgs/org_ent/destinations", &missing_secret)
        .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "signing_secret"),
        "{body}"
    );
    let mut weak_secret = with_url("https://siem.example.com/hook");
    weak_secret["signing_secret"] = json!("whsec_c2hvcnQ=");
    let (status, body) = client
        .admin_post("/v1/admin/orgs/org_ent/destinations", &weak_secret)
        .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "signing_secret"),
        "{body}"
    );
    let mut no_token = destinations()[0].clone();
    no_token["config"].as_object_mut().unwrap().remove("token");
    let (status, body) = client
        .admin_post("/v1/admin/orgs/org_ent/destinations", &no_token)
        .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "config.token"),
        "{body}"
    );
    let mut bad_site = destinations()[1].clone();
    bad_site["config"]["site"] = json!("datadog.example.com");
    let (status, body) = client
        .admin_post("/v1/admin/orgs/org_ent/destinations", &bad_site)
        .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "config.site"),
        "{body}"
    );
    let mut bad_filter = destinations()[3].clone();
    bad_filter["filters"] = json!({"actions": ["nope.never"]});
    let (status, body) = client
        .admin_post("/v1/admin/orgs/org_ent/destinations", &bad_filter)
        .await;
    assert_eq!(
        (status, field_of(&body).as_str()),
        (422, "filters.actions[0]"),
        "{body}"
    );

    // Stale writes are refused (If-Match on the revision).
    let (_, current) = client
        .admin(reqwest::Method::GET, "/v1/admin/orgs/org_ent", None)
        .await;
    let stale = current["revision"].as_u64().unwrap() - 1;
    let response = client
        .http
        .patch(format!("{}/v1/admin/orgs/org_ent", client.url))
        .bearer_auth(audit_tests::OPERATOR_TOKEN)
        .header("if-match", format!("\"{stale}\""))
        .json(&json!({"retention_days": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 412);

    // Operator endpoints need an operator token.
    let response = client
        .http
        .get(format!("{}/v1/admin/orgs/org_ent", client.url))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_write_only_and_sealed_at_rest() {
    let ns = Namespace::new("settings-secrets");
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[("RUST_LOG", "debug")]).await;
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    assert_eq!(
        patch_org(&client, "org_sec", json!({"plan": "enterprise"}))
            .await
            .0,
        200
    );

    let mut responses = Vec::new();
    let mut ids = Vec::new();
    for destination in destinations() {
        let (status, body) = client
            .admin_post("/v1/admin/orgs/org_sec/destinations", &destination)
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_string());
        responses.push(body);
    }
    // Update a credential and rotate the signing secret: still write-only.
    let (status, body) = client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/org_sec/destinations/{}", ids[0]),
            Some(&json!({"config": {"type": "splunk_hec", "url": "https://hec2.example.com:8088", "token": format!("{HEC_TOKEN}-2")}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    responses.push(body);
    let (status, body) = client
        .admin_post(
            &format!(
                "/v1/admin/orgs/org_sec/destinations/{}/rotate-secret",
                ids[3]
            ),
            &json!({"signing_secret": ROTATED_SECRET}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["signing_secrets"].as_array().unwrap().len(),
        2,
        "old and new sign during the overlap"
    );
    assert!(body["signing_secrets"][0]["expires_at"].is_string());
    responses.push(body);
    let (_, org) = client
        .admin(reqwest::Method::GET, "/v1/admin/orgs/org_sec", None)
        .await;
    responses.push(org.clone());
    assert_eq!(org["destinations"][0]["config"]["token"], "********");

    let secrets = [
        HEC_TOKEN,
        DD_KEY,
        WAZUH_PASSWORD,
        SIGNING_SECRET,
        ROTATED_SECRET,
    ];
    let leaks = |text: &str| {
        secrets
            .iter()
            .filter(|s| text.contains(*s))
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    for response in &responses {
        assert!(
            leaks(&response.to_string()).is_empty(),
            "secret in an API response: {response}"
        );
    }
    // The settings topic holds sealed values only: read its raw records.
    let records = kafka::read_all(&ns.infra.kafka, &ns.settings_topic);
    assert!(!records.is_empty());
    for record in &records {
        let raw = String::from_utf8_lossy(record.payload().unwrap_or_default());
        assert!(
            leaks(&raw).is_empty(),
            "secret in plain text on the settings topic: {raw}"
        );
    }
    assert!(
        records.iter().any(
            |r| String::from_utf8_lossy(r.payload().unwrap_or_default()).contains("\"v1.dev1.")
        )
    );
    // Nor in the audit events of the changes, nor in the gateway's (debug) log.
    let meta = kafka::read_all(&ns.infra.kafka, &ns.events_topic);
    assert!(meta.len() >= 6);
    for message in &meta {
        let raw = String::from_utf8_lossy(message.payload().unwrap_or_default());
        assert!(leaks(&raw).is_empty(), "secret in an audit event: {raw}");
    }
    let log = std::fs::read_to_string(gateway.log_path()).unwrap();
    assert!(leaks(&log).is_empty(), "secret in the gateway log");

    // Every change is an audit event in the organization's own log.
    let expected = [
        "audit_log.plan.changed",
        "audit_log.destination.created",
        "audit_log.destination.updated",
        "audit_log.destination.secret_rotated",
    ];
    let actions = eventually("the changes are in the org's log", Duration::from_secs(30), || async {
        let text = ns
            .sql("SELECT action, actor_id FROM events FINAL WHERE org_id = 'org_sec' AND category = 'audit_log' FORMAT TSVRaw")
            .await;
        expected.iter().all(|a| text.contains(a)).then_some(text)
    })
    .await;
    assert!(
        actions
            .lines()
            .all(|line| line.ends_with("operator:dev-operator")),
        "{actions}"
    );

    // A downgrade disables (keeps) destinations; they cannot be re-enabled without Enterprise.
    let (status, body) = patch_org(&client, "org_sec", json!({"plan": "team"})).await;
    assert_eq!(status, 200, "{body}");
    let destinations = body["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 4, "kept");
    assert!(
        destinations
            .iter()
            .all(|d| d["enabled"] == false && d["active"] == false)
    );
    let (status, body) = client
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/org_sec/destinations/{}", ids[1]),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = client
        .admin(
            reqwest::Method::DELETE,
            &format!("/v1/admin/orgs/org_sec/destinations/{}", ids[2]),
            None,
        )
        .await;
    assert_eq!(status, 204);
}
