//! The OCSF format end to end, on the real Kafka broker and ClickHouse engine: an
//! organization's destinations in `format: ocsf` (a webhook and Splunk HEC, the fake
//! receivers of tests/src/fakes) receive OCSF objects while another organization's native
//! destination keeps receiving native events — sent through the gateway or produced straight
//! to Kafka — and `export?format=ocsf` returns the stored events as OCSF. What the receivers got and what the export returned is checked by the
//! independent validator (deploy/local/ocsf-validator.sh) too.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::fakes::splunk_hec::HecSetup;
use audit_tests::fakes::webhook::WebhookSetup;
use audit_tests::fakes::{Fake, FakeHec, FakeWebhook, SIGNING_SECRET};
use audit_tests::{Namespace, Service, ServiceKind, eventually, user_token};
use serde_json::{Value, json};

const FAST: &[(&str, &str)] = &[
    ("FORWARDER__DELIVERY__LINGER_MS", "50"),
    ("FORWARDER__CONSUMER__COMMIT_INTERVAL_MS", "200"),
];

const ACTIONS: &[&str] = &[
    "user.login.succeeded",
    "user.login.failed",
    "user.mfa.enrolled",
    "member.role.changed",
    "api_key.generated",
    "data.export.requested",
    "billing.payment.failed",
];

async fn create_destination(gateway: &Gateway, org: &str, config: Value, format: &str) -> Value {
    let (status, body) = gateway
        .admin_post(
            &format!("/v1/admin/orgs/{org}/destinations"),
            &json!({"name": format!("{format} siem"), "signing_secret": SIGNING_SECRET,
                    "config": config, "format": format}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["format"], format, "{body}");
    body
}

/// Every category a producer can publish (the export's filter: not the platform's own events).
const OCSF_QUERY: &str =
    "format=ocsf&category=authentication,user_management,security,data_access,billing";

/// `GET …/events/export?<query>` of `org_ocsf`: status, content type, body.
async fn export(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
) -> (u16, String, String) {
    let response = http
        .get(format!("{url}/v1/orgs/org_ocsf/events/export?{query}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// Waits until `fake` has accepted every id of `wanted`.
async fn delivered(what: &str, fake: &impl Fake, wanted: &HashSet<String>) {
    eventually(what, Duration::from_secs(60), || async {
        wanted.is_subset(&fake.unique_ids()).then_some(())
    })
    .await;
}

/// Runs the independent OCSF validator over `objects`; panics with its output if it refuses any.
fn assert_valid_ocsf(what: &str, dir: &Path, objects: &[Value]) {
    assert!(!objects.is_empty(), "{what}: nothing to validate");
    let path = dir.join(format!("{what}.ocsf.ndjson"));
    let lines: Vec<String> = objects.iter().map(Value::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let script = audit_tests::infra::repo_root().join("deploy/local/ocsf-validator.sh");
    let output = std::process::Command::new("bash")
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{what}: the OCSF validator refused objects:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ocsf_destinations_and_exports_get_ocsf_while_native_destinations_keep_native() {
    let ns = Namespace::new("ocsf");
    let gateway_service = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let gateway = Gateway::new(&gateway_service.url());
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let hook_ocsf = FakeWebhook::start(WebhookSetup::default()).await;
    let hec_ocsf = FakeHec::start(HecSetup::default()).await;
    let hook_native = FakeWebhook::start(WebhookSetup::default()).await;
    for org in ["org_ocsf", "org_native"] {
        gateway.enterprise(org).await;
    }

    // The format is validated and named when it is wrong.
    let (status, body) = gateway
        .admin_post(
            "/v1/admin/orgs/org_ocsf/destinations",
            &json!({"name": "x", "signing_secret": SIGNING_SECRET, "format": "cef",
                    "config": {"type": "webhook", "url": format!("{}/audit", hook_ocsf.url())}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("format"), "{body}");

    let webhook = json!({"type": "webhook", "url": format!("{}/audit", hook_ocsf.url())});
    create_destination(&gateway, "org_ocsf", webhook, "ocsf").await;
    // Created native, switched to OCSF: the update applies.
    let hec = json!({"type": "splunk_hec", "url": hec_ocsf.url(), "token": hec_ocsf.token()});
    let created = create_destination(&gateway, "org_ocsf", hec, "native").await;
    let (status, body) = gateway
        .admin(
            reqwest::Method::PATCH,
            &format!(
                "/v1/admin/orgs/org_ocsf/destinations/{}",
                created["id"].as_str().unwrap()
            ),
            Some(&json!({"format": "ocsf"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "ocsf");
    let native = json!({"type": "webhook", "url": format!("{}/audit", hook_native.url())});
    create_destination(&gateway, "org_native", native, "native").await;

    let _forwarder = Service::start(ServiceKind::Forwarder, &ns, FAST).await;
    let key = gateway.producer_key("ocsf-tests", &["*"], None).await;
    let mut ids = Vec::new();
    let mut batch = Vec::new();
    for (index, action) in ACTIONS.iter().cycle().take(28).enumerate() {
        let org = if index % 2 == 0 {
            "org_ocsf"
        } else {
            "org_native"
        };
        let mut event = event(org, action);
        if index % 3 == 0 {
            event["outcome"] = json!("failure");
        }
        ids.push((org, event["id"].as_str().unwrap().to_string()));
        batch.push(event);
    }
    let (status, body) = gateway.post_events(&key, &json!(batch)).await;
    assert_eq!(status, 202, "{body}");
    // Straight to Kafka: validated by the forwarder and mapped from the validated event (an
    // event read from the topic for an OCSF destination is parsed once, not again in a lane).
    let producer = audit_tests::kafka::producer(&ns.infra.kafka);
    let mut direct = HashSet::new();
    for action in ACTIONS.iter().take(4) {
        let event = event("org_ocsf", action);
        let id = event["id"].as_str().unwrap().to_string();
        let payload = event.to_string();
        audit_tests::kafka::produce(
            &producer,
            &ns.events_topic,
            Some("org_ocsf"),
            payload.as_bytes(),
        )
        .await;
        ids.push(("org_ocsf", id.clone()));
        direct.insert(id);
    }
    let wanted = |org: &str| -> HashSet<String> {
        ids.iter()
            .filter(|(o, _)| *o == org)
            .map(|(_, id)| id.clone())
            .collect()
    };
    let wanted_ocsf = wanted("org_ocsf");
    delivered("OCSF webhook", &hook_ocsf, &wanted_ocsf).await;
    delivered("OCSF HEC", &hec_ocsf, &wanted_ocsf).await;
    delivered("native webhook", &hook_native, &wanted("org_native")).await;

    // The OCSF destinations got OCSF objects of their organization only, traceable by id.
    let webhook_objects: Vec<Value> = hook_ocsf
        .received()
        .into_iter()
        .filter_map(|e| e.item)
        .collect();
    let hec_objects: Vec<Value> = hec_ocsf
        .received()
        .into_iter()
        .filter_map(|e| e.item?.get("event").cloned())
        .collect();
    for object in webhook_objects.iter().chain(&hec_objects) {
        assert_eq!(object["metadata"]["version"], "1.4.0", "{object}");
        assert_eq!(object["metadata"]["tenant_uid"], "org_ocsf", "{object}");
        assert!(object.get("org_id").is_none(), "not native: {object}");
        // Its events, and the platform's own (`audit_log.destination.created`, …).
        let uid = object["metadata"]["uid"].as_str().unwrap();
        let own = object["metadata"]["event_code"]
            .as_str()
            .unwrap()
            .starts_with("audit_log.");
        assert!(wanted_ocsf.contains(uid) || own, "{object}");
    }
    for objects in [&webhook_objects, &hec_objects] {
        let from_kafka: HashSet<&str> = objects
            .iter()
            .filter(|o| o["unmapped"]["provenance"] == "kafka")
            .map(|o| o["metadata"]["uid"].as_str().unwrap())
            .collect();
        assert_eq!(
            from_kafka,
            direct.iter().map(String::as_str).collect(),
            "the events produced straight to Kafka, as OCSF"
        );
    }
    let failed_logins: Vec<&Value> = webhook_objects
        .iter()
        .filter(|o| o["metadata"]["event_code"] == "user.login.failed")
        .collect();
    assert!(!failed_logins.is_empty());
    assert!(failed_logins.iter().all(|o| o["class_uid"] == 3002));
    assert_valid_ocsf("webhook", &ns.dir, &webhook_objects);
    assert_valid_ocsf("hec", &ns.dir, &hec_objects);

    // The other organization's native destination kept receiving native events, byte for byte.
    for received in hook_native.received() {
        let item = received.item.unwrap();
        assert_eq!(item["org_id"], "org_native", "{item}");
        assert_eq!(item["version"], 1);
        assert!(item.get("class_uid").is_none(), "{item}");
    }

    // The export in OCSF: every stored event of the organization, as an OCSF object.
    let token = user_token("org_ocsf", "admin", "u_admin", 600);
    let http = reqwest::Client::new();
    let url = gateway_service.url();
    let exported = eventually("the OCSF export", Duration::from_secs(60), || async {
        let (status, content_type, text) = export(&http, &url, &token, OCSF_QUERY).await;
        assert_eq!(status, 200, "{text}");
        assert_eq!(content_type, "application/x-ndjson");
        let objects: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let uids: HashSet<String> = objects
            .iter()
            .map(|o| o["metadata"]["uid"].as_str().unwrap().to_string())
            .collect();
        wanted_ocsf.is_subset(&uids).then_some(objects)
    })
    .await;
    assert!(
        exported
            .iter()
            .all(|o| o["metadata"]["tenant_uid"] == "org_ocsf")
    );
    assert_valid_ocsf("export", &ns.dir, &exported);
    // The export is itself audited, with its format.
    eventually(
        "the export's audit event",
        Duration::from_secs(30),
        || async {
            let (_, _, text) =
                export(&http, &url, &token, "format=ndjson&category=audit_log").await;
            text.lines()
                .any(|l| l.contains("audit_log.exported") && l.contains("ocsf.ndjson"))
                .then_some(())
        },
    )
    .await;
}
