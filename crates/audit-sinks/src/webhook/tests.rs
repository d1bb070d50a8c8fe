use super::settings::WebhookSettings;
use audit_settings::OutboundPolicy;

use super::classifier::classify;
use super::config::{WebhookConfig, WebhookOptions};
use super::encoder;
use crate::Verdict;
use crate::event::synthetic_event;

#[test]
fn batches_are_json_arrays_of_the_events_unchanged() {
    let event = synthetic_event(
        "org_a",
        "audit_log.destination.tested",
        serde_json::json!({"k": 1}),
    );
    let part = encoder::encode(crate::Payload::native(&event));
    assert_eq!(part, event.json.to_vec());
    let body: serde_json::Value =
        serde_json::from_slice(&encoder::frame(&[&part, &part])).expect("json");
    assert_eq!(body[1]["id"], event.id.as_str());
}

#[test]
fn config_uses_the_destination_batch_size_and_checks_the_url() {
    let settings = |url: &str, max| WebhookSettings {
        url: url.into(),
        max_batch_events: max,
    };
    let options = WebhookOptions::default();
    let policy = OutboundPolicy::default();
    let config = WebhookConfig::new(
        &settings("https://soc.example.com/hook", Some(10)),
        &options,
        &policy,
    )
    .expect("valid");
    assert_eq!(config.limits.max_events, 10);
    assert!(
        WebhookConfig::new(
            &settings("http://soc.example.com/hook", None),
            &options,
            &policy
        )
        .is_err()
    );
    assert!(WebhookConfig::new(&settings("https://[::1]/hook", None), &options, &policy).is_err());
    let local = OutboundPolicy {
        allow_http: true,
        allow_private: vec!["127.0.0.1/32".into()],
    };
    assert!(
        WebhookConfig::new(&settings("http://127.0.0.1:8/hook", None), &options, &local).is_ok()
    );
}

#[test]
fn classification_follows_the_delivery_guidance() {
    let cases = [
        (200, Verdict::Delivered),
        (204, Verdict::Delivered),
        (301, Verdict::Misconfigured),
        (307, Verdict::Misconfigured),
        (400, Verdict::PoisonSomewhere),
        (401, Verdict::Misconfigured),
        (404, Verdict::Misconfigured),
        (410, Verdict::Misconfigured),
        (413, Verdict::TooLarge),
        (422, Verdict::PoisonSomewhere),
        (429, Verdict::Retriable),
        (502, Verdict::Retriable),
        (504, Verdict::Retriable),
    ];
    for (status, expected) in cases {
        assert_eq!(classify(status), expected, "{status}");
    }
}
