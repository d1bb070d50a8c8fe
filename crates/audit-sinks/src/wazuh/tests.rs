use super::settings::WazuhSettings;
use audit_runtime::Secret;
use audit_settings::{OutboundPolicy, SecretBox};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::classifier::{classify, classify_answer};
use super::config::{WazuhConfig, WazuhOptions};
use super::encoder;
use super::service::{parse_login, token_lifetime};
use crate::event::synthetic_event;
use crate::response::Answer;
use crate::{InvalidSetting, Verdict};

fn config(url: &str) -> Result<WazuhConfig, InvalidSetting> {
    WazuhConfig::new(
        &WazuhSettings {
            url: url.into(),
            username: "ingest".into(),
            password: SecretBox::ephemeral().seal("p", "c"),
            requests_per_minute: None,
        },
        Secret::new("pw".into()),
        &WazuhOptions::default(),
        &OutboundPolicy::default(),
    )
}

#[test]
fn urls_and_pacing_defaults() {
    let config = config("https://wazuh.example.com:55000").expect("valid");
    assert_eq!(
        config.events_url.as_str(),
        "https://wazuh.example.com:55000/events"
    );
    assert_eq!(
        config.login_url.as_str(),
        "https://wazuh.example.com:55000/security/user/authenticate?raw=true"
    );
    assert_eq!(config.requests_per_minute, 30);
    assert_eq!(config.limits.max_events, 100);
    assert!(self::config("https://172.16.0.4:55000").is_err());
}

#[test]
fn events_are_json_strings_in_an_events_array() {
    let event = synthetic_event(
        "org_a",
        "audit_log.destination.tested",
        serde_json::json!({}),
    );
    let part = encoder::encode(crate::Payload::native(&event));
    let text: String = serde_json::from_slice(&part).expect("a JSON string");
    let inner: serde_json::Value = serde_json::from_str(&text).expect("holding JSON");
    assert_eq!(inner["integration"], "solarius-audit-log");
    assert_eq!(inner["audit"]["id"], event.id.as_str());
    let body: serde_json::Value =
        serde_json::from_slice(&encoder::frame(&[&part, &part])).expect("json");
    assert_eq!(body["events"].as_array().map(Vec::len), Some(2));
}

#[test]
fn partial_failures_name_the_failed_items() {
    let parts: Vec<Vec<u8>> = ["a", "b", "c"]
        .iter()
        .map(|text| serde_json::to_vec(text).expect("json"))
        .collect();
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let all_ok = br#"{"data":{"affected_items":["a","b","c"],"total_affected_items":3,"total_failed_items":0,"failed_items":[]},"message":"All events were forwarded to analisysd","error":0}"#;
    assert_eq!(classify(200, all_ok, &refs), Verdict::Delivered);
    let some = br#"{"data":{"affected_items":["a"],"total_affected_items":1,"total_failed_items":2,"failed_items":[{"error":{"code":1014,"message":"Error communicating with queue"},"id":["b","c"]}]},"message":"Some events were forwarded to analisysd","error":2}"#;
    assert_eq!(
        classify(200, some, &refs),
        Verdict::Partial { failed: vec![1, 2] }
    );
}

#[test]
fn a_success_cut_at_the_read_limit_resends_every_event() {
    let parts: Vec<&[u8]> = vec![b"\"a\"", b"\"b\""];
    let cut = Answer {
        status: 200,
        retry_after: None,
        body: bytes::Bytes::from_static(br#"{"data":{"affected_items":["a","#),
        complete: false,
        encoding: None,
    };
    assert_eq!(
        classify_answer(&cut, &parts),
        Verdict::Partial { failed: vec![0, 1] }
    );
    let refused = Answer {
        status: 429,
        ..cut.clone()
    };
    assert_eq!(classify_answer(&refused, &parts), Verdict::Retriable);
    let whole = Answer {
        body: bytes::Bytes::from_static(br#"{"data":{"total_failed_items":0}}"#),
        complete: true,
        ..cut
    };
    assert_eq!(classify_answer(&whole, &parts), Verdict::Delivered);
}

#[test]
fn classification_follows_the_api_contract() {
    let bulk = br#"{"title":"Bad Request","detail":"Events bulk size exceeded"}"#;
    assert_eq!(classify(400, bulk, &[]), Verdict::TooLarge);
    assert_eq!(
        classify(
            400,
            br#"{"title":"Bad Request","detail":"Invalid body"}"#,
            &[]
        ),
        Verdict::PoisonSomewhere
    );
    assert_eq!(classify(401, b"{}", &[]), Verdict::Misconfigured);
    assert_eq!(classify(403, b"{}", &[]), Verdict::Misconfigured);
    assert_eq!(classify(429, b"{}", &[]), Verdict::Retriable);
    assert_eq!(classify(500, b"", &[]), Verdict::Retriable);
}

#[test]
fn tokens_are_read_from_login_answers() {
    let claims = URL_SAFE_NO_PAD.encode(br#"{"iss":"wazuh","iat":1700000000,"exp":1700000900}"#);
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.c2ln");
    assert_eq!(parse_login(jwt.as_bytes()).as_deref(), Some(jwt.as_str()));
    let wrapped = format!(r#"{{"data":{{"token":"{jwt}"}},"error":0}}"#);
    assert_eq!(
        parse_login(wrapped.as_bytes()).as_deref(),
        Some(jwt.as_str())
    );
    assert_eq!(parse_login(b"nonsense"), None);
    assert_eq!(
        token_lifetime(&jwt),
        Some(std::time::Duration::from_secs(900))
    );
}

#[test]
fn ocsf_objects_go_under_ocsf_in_the_same_event_string() {
    let payload = crate::Payload {
        json: br#"{"class_uid":3002}"#,
        key: "ocsf",
    };
    let text: String = serde_json::from_slice(&encoder::encode(payload)).expect("a JSON string");
    let inner: serde_json::Value = serde_json::from_str(&text).expect("holding JSON");
    assert_eq!(inner["integration"], "solarius-audit-log");
    assert_eq!(inner["ocsf"]["class_uid"], 3002);
    assert!(inner.get("audit").is_none());
}
