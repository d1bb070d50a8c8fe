use super::settings::SplunkHecSettings;
use audit_runtime::Secret;
use audit_settings::OutboundPolicy;
use audit_settings::SecretBox;

use super::classifier::{classify, parse};
use super::config::{HecConfig, HecOptions};
use super::encoder;
use super::service::acknowledged;
use crate::Verdict;
use crate::event::synthetic_event;

fn settings(url: &str) -> SplunkHecSettings {
    SplunkHecSettings {
        url: url.into(),
        token: SecretBox::ephemeral().seal("x", "c"),
        index: Some("audit".into()),
        source: None,
        sourcetype: Some("solarius:audit".into()),
        host: None,
        indexer_ack: false,
        max_batch_bytes: Some(4096),
    }
}

fn config(url: &str) -> HecConfig {
    HecConfig::new(
        "org_a",
        &settings(url),
        Secret::new("11111111-2222-3333-4444-555555555555".into()),
        &HecOptions::default(),
        &OutboundPolicy::default(),
    )
    .expect("valid")
}

#[test]
fn urls_get_the_collector_paths() {
    let config = config("https://hec.example.com:8088");
    assert_eq!(
        config.event_url.as_str(),
        "https://hec.example.com:8088/services/collector/event"
    );
    assert_eq!(
        config.ack_url.as_str(),
        "https://hec.example.com:8088/services/collector/ack"
    );
    assert_eq!(config.limits.max_bytes, 4096);
    let explicit = super::config::HecConfig::new(
        "org_a",
        &settings("https://hec.example.com/services/collector"),
        Secret::new("t".into()),
        &HecOptions::default(),
        &OutboundPolicy::default(),
    )
    .expect("valid");
    assert_eq!(explicit.event_url.path(), "/services/collector");
}

#[test]
fn unsafe_urls_are_refused() {
    for url in [
        "http://hec.example.com",
        "https://10.0.0.8:8088",
        "https://localhost:8088",
    ] {
        let error = HecConfig::new(
            "org_a",
            &settings(url),
            Secret::new("t".into()),
            &HecOptions::default(),
            &OutboundPolicy::default(),
        )
        .expect_err(url);
        assert_eq!(error.field, "config.url", "{error}");
    }
}

#[test]
fn envelopes_carry_time_with_millis_metadata_and_the_event() {
    let config = config("https://hec.example.com:8088");
    let mut event = synthetic_event(
        "org_a",
        "audit_log.destination.tested",
        serde_json::json!({}),
    );
    event.occurred_at_ms = 1_433_188_255_500;
    let envelope = encoder::encode(&config, &event, crate::Payload::native(&event));
    let value: serde_json::Value = serde_json::from_slice(&envelope).expect("one JSON object");
    assert_eq!(value["time"].as_f64(), Some(1_433_188_255.5));
    assert!(String::from_utf8_lossy(&envelope).starts_with("{\"time\":1433188255.500,"));
    assert_eq!(value["host"], "solarius-audit-log");
    assert_eq!(value["source"], "solarius:audit-log");
    assert_eq!(value["sourcetype"], "solarius:audit");
    assert_eq!(value["index"], "audit");
    assert_eq!(value["fields"]["org_id"], "org_a");
    assert_eq!(value["fields"]["action"], "audit_log.destination.tested");
    assert_eq!(value["event"]["id"], event.id.as_str());

    let body = encoder::frame(&[&envelope, &envelope]);
    let count = serde_json::Deserializer::from_slice(&body)
        .into_iter::<serde_json::Value>()
        .filter(Result::is_ok)
        .count();
    assert_eq!(count, 2, "concatenated envelopes, no array");
}

#[test]
fn classification_follows_the_hec_codes() {
    let reply = |text: &str| parse(text.as_bytes());
    let cases = [
        (200, r#"{"text":"Success","code":0}"#, Verdict::Delivered),
        (
            200,
            r#"{"text":"Success","code":0,"ackId":3}"#,
            Verdict::Delivered,
        ),
        (
            403,
            r#"{"text":"Token disabled","code":1}"#,
            Verdict::Misconfigured,
        ),
        (
            401,
            r#"{"text":"Token is required","code":2}"#,
            Verdict::Misconfigured,
        ),
        (
            401,
            r#"{"text":"Invalid authorization","code":3}"#,
            Verdict::Misconfigured,
        ),
        (
            403,
            r#"{"text":"Invalid token","code":4}"#,
            Verdict::Misconfigured,
        ),
        (
            400,
            r#"{"text":"No data","code":5}"#,
            Verdict::PoisonSomewhere,
        ),
        (
            400,
            r#"{"text":"Invalid data format","code":6,"invalid-event-number":3}"#,
            Verdict::PoisonAt { index: 3 },
        ),
        (
            400,
            r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#,
            Verdict::Misconfigured,
        ),
        (
            500,
            r#"{"text":"Internal server error","code":8}"#,
            Verdict::Retriable,
        ),
        (
            503,
            r#"{"text":"Server is busy","code":9}"#,
            Verdict::Retriable,
        ),
        (
            400,
            r#"{"text":"Data channel is missing","code":10}"#,
            Verdict::Misconfigured,
        ),
        (
            400,
            r#"{"text":"Invalid data channel","code":11}"#,
            Verdict::Misconfigured,
        ),
        (
            400,
            r#"{"text":"Event field is required","code":12,"invalid-event-number":0}"#,
            Verdict::PoisonAt { index: 0 },
        ),
        (
            400,
            r#"{"text":"Event field cannot be blank","code":13,"invalid-event-number":7}"#,
            Verdict::PoisonAt { index: 7 },
        ),
        (
            400,
            r#"{"text":"ACK is disabled","code":14}"#,
            Verdict::Misconfigured,
        ),
        (413, "Content too large", Verdict::TooLarge),
        (429, "", Verdict::Retriable),
        (502, "<html>bad gateway</html>", Verdict::Retriable),
        (504, "", Verdict::Retriable),
        (404, "not found", Verdict::Misconfigured),
        (301, "", Verdict::Misconfigured),
    ];
    for (status, body, expected) in cases {
        assert_eq!(classify(status, &reply(body)), expected, "{status} {body}");
    }
}

#[test]
fn acknowledgements_are_read_per_id() {
    assert!(acknowledged(br#"{"acks":{"0":true,"1":false}}"#, 0));
    assert!(!acknowledged(br#"{"acks":{"0":true,"1":false}}"#, 1));
    assert!(!acknowledged(br#"{"acks":{}}"#, 2));
    assert!(!acknowledged(b"not json", 0));
}
