use std::io::Read;

use super::settings::DatadogSettings;
use audit_runtime::Secret;
use audit_settings::{OutboundPolicy, SecretBox};

use super::classifier::classify;
use super::config::{DatadogConfig, DatadogOptions};
use super::encoder;
use crate::event::synthetic_event;
use crate::{InvalidSetting, Verdict};

fn settings(site: &str, url: Option<&str>) -> DatadogSettings {
    DatadogSettings {
        site: site.into(),
        url: url.map(str::to_string),
        api_key: SecretBox::ephemeral().seal("k", "c"),
        service: None,
        ddsource: Some("solarius".into()),
        ddtags: Some("env:prod,team:sec,".into()),
    }
}

fn config(site: &str, url: Option<&str>) -> Result<DatadogConfig, InvalidSetting> {
    DatadogConfig::new(
        "org_a",
        &settings(site, url),
        Secret::new("dd-key".into()),
        &DatadogOptions::default(),
        &OutboundPolicy::default(),
    )
}

#[test]
fn the_site_gives_the_intake_url() {
    assert_eq!(
        config("datadoghq.eu", None).expect("valid").url.as_str(),
        "https://http-intake.logs.datadoghq.eu/api/v2/logs"
    );
    assert_eq!(
        config("us5.datadoghq.com", None)
            .expect("valid")
            .url
            .as_str(),
        "https://http-intake.logs.us5.datadoghq.com/api/v2/logs"
    );
    assert_eq!(
        config("datadoghq.com", Some("https://proxy.example.com"))
            .expect("valid")
            .url
            .as_str(),
        "https://proxy.example.com/api/v2/logs"
    );
    assert!(config("datadoghq.mars", None).is_err());
    assert!(config("datadoghq.com", Some("https://192.168.1.1/")).is_err());
}

#[test]
fn reserved_attributes_are_mapped() {
    let config = config("datadoghq.com", None).expect("valid");
    let mut event = synthetic_event(
        "org_a",
        "audit_log.destination.tested",
        serde_json::json!({}),
    );
    event.outcome = "failure".into();
    event.occurred_at_ms = 1_767_225_600_250;
    let log: serde_json::Value = serde_json::from_slice(&encoder::encode(
        &config,
        &event,
        crate::Payload::native(&event),
    ))
    .expect("json");
    assert_eq!(log["ddsource"], "solarius");
    assert_eq!(log["service"], "audit-log");
    assert_eq!(log["hostname"], "audit-log");
    assert_eq!(log["status"], "warn");
    assert_eq!(log["timestamp"], 1_767_225_600_250_i64);
    assert_eq!(
        log["ddtags"],
        "env:prod,team:sec,org_id:org_a,category:audit_log,action:audit_log.destination.tested,outcome:failure"
    );
    assert_eq!(log["evt"]["name"], "audit_log.destination.tested");
    assert_eq!(log["audit"]["id"], event.id.as_str());
    assert!(log["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn batches_are_gzip_json_arrays() {
    let body = encoder::frame(&[b"{\"a\":1}", b"{\"b\":2}"], Some(6));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .expect("gzip");
    assert_eq!(text, "[{\"a\":1},{\"b\":2}]");
    assert_eq!(encoder::frame(&[b"1"], None), b"[1]");
}

#[test]
fn classification_follows_the_intake_contract() {
    let cases = [
        (202, Verdict::Delivered),
        (200, Verdict::Delivered),
        (400, Verdict::PoisonSomewhere),
        (401, Verdict::Misconfigured),
        (403, Verdict::Misconfigured),
        (404, Verdict::Misconfigured),
        (408, Verdict::Retriable),
        (413, Verdict::TooLarge),
        (429, Verdict::Retriable),
        (500, Verdict::Retriable),
        (503, Verdict::Retriable),
        (302, Verdict::Misconfigured),
    ];
    for (status, expected) in cases {
        assert_eq!(classify(status), expected, "{status}");
    }
}

#[test]
fn options_are_bounded_by_the_intake_limits() {
    let options = DatadogOptions {
        max_batch_events: 1001,
        ..DatadogOptions::default()
    };
    assert!(options.validate("sinks.datadog").is_err());
    assert!(DatadogOptions::default().validate("sinks.datadog").is_ok());
}
