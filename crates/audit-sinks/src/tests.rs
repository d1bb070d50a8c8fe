//! Unit tests of what every destination type shares (no IO): excerpts, framing, default
//! paths, and the format choosing the payload inside the same envelope.
#![allow(clippy::unwrap_used)]

use audit_settings::DestinationKind;
use audit_settings::model::DatadogSettings;

use super::*;

#[test]
fn excerpts_are_short_single_line_text() {
    assert_eq!(
        excerpt(b"{\"text\":\"Server is busy\",\n\"code\":9}"),
        "{\"text\":\"Server is busy\", \"code\":9}"
    );
    let long = vec![b'a'; 2000];
    let text = excerpt(&long);
    assert!(text.len() <= EXCERPT_BYTES + 3 && text.ends_with('…'));
    let mut cut = "é".repeat(400).into_bytes();
    cut.truncate(EXCERPT_BYTES + 1);
    assert!(excerpt(&cut).ends_with('…'));
}

/// A destination of `org_a` with a signing secret (and the type's credential) sealed.
fn destination(secrets: &SecretBox, config: serde_json::Value, format: EventFormat) -> Destination {
    let mut record = serde_json::json!({
        "id": "dst_1", "name": "siem", "enabled": true, "config": config,
        "created_at": "2026-01-01T00:00:00Z", "format": format,
    });
    record["signing_secrets"] = serde_json::json!([{
        "id": "whk_1",
        "secret": secrets.seal(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            &Destination::signing_seal_context("org_a", "dst_1", "whk_1"),
        ),
        "created_at": "2026-01-01T00:00:00Z",
    }]);
    let mut destination: Destination = serde_json::from_value(record).unwrap();
    if let DestinationKind::Datadog(settings) = &mut destination.config {
        let endpoint = DatadogSettings::endpoint(&settings.site, settings.url.as_deref());
        settings.api_key = secrets.seal(
            "dd-key",
            &Destination::credential_seal_context("org_a", "dst_1", "config.api_key", &endpoint),
        );
    }
    destination
}

#[test]
fn the_format_chooses_the_payload_inside_the_same_envelope() {
    let secrets = SecretBox::ephemeral();
    let context = SinkContext {
        client: reqwest::Client::new(),
        policy: OutboundPolicy::default(),
        secrets: secrets.clone(),
        options: SinksConfig::default(),
        catalogue: Arc::new(Catalogue::builtin()),
    };
    let event = crate::event::synthetic_event(
        "org_a",
        "audit_log.destination.tested",
        serde_json::json!({}),
    );
    let webhook = serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"});
    let datadog =
        serde_json::json!({"type": "datadog", "site": "datadoghq.com", "api_key": "v1.x"});
    let build = |config: &serde_json::Value, format| {
        let destination = destination(&secrets, config.clone(), format);
        context
            .build("org_a", &destination, &SinkState::default())
            .unwrap()
    };

    let native = build(&webhook, EventFormat::Native).encode(&event);
    assert_eq!(native, event.json.to_vec(), "native: byte for byte");
    let ocsf: serde_json::Value =
        serde_json::from_slice(&build(&webhook, EventFormat::Ocsf).encode(&event)).unwrap();
    assert_eq!(ocsf["class_uid"], 6003);
    assert_eq!(ocsf["metadata"]["uid"], event.id.as_str());
    assert_eq!(ocsf["metadata"]["tenant_uid"], "org_a");

    let log: serde_json::Value =
        serde_json::from_slice(&build(&datadog, EventFormat::Ocsf).encode(&event)).unwrap();
    assert_eq!(log["ocsf"]["metadata"]["uid"], event.id.as_str());
    assert!(log.get("audit").is_none(), "{log}");
    assert_eq!(
        log["evt"]["name"], "audit_log.destination.tested",
        "same envelope"
    );
    let log: serde_json::Value =
        serde_json::from_slice(&build(&datadog, EventFormat::Native).encode(&event)).unwrap();
    assert_eq!(log["audit"]["id"], event.id.as_str());
}

#[test]
fn json_arrays_frame_parts() {
    assert_eq!(json_array(&[]), b"[]");
    assert_eq!(json_array(&[b"1", b"{}"]), b"[1,{}]");
}

#[test]
fn default_paths_are_appended_only_to_bare_urls() {
    let base = url::Url::parse("https://hec.example.com:8088").expect("url");
    assert_eq!(
        with_default_path(base, "/services/collector/event").as_str(),
        "https://hec.example.com:8088/services/collector/event"
    );
    let full = url::Url::parse("https://proxy.example.com/dd/intake").expect("url");
    assert_eq!(
        with_default_path(full, "/api/v2/logs").as_str(),
        "https://proxy.example.com/dd/intake"
    );
}

#[test]
fn every_type_states_the_length_of_what_it_frames() {
    let sets: [&[&[u8]]; 2] = [&[b"{\"a\":1}"], &[b"\"x\"", b"{}", b"[1,2]"]];
    for parts in sets {
        let bytes: usize = parts.iter().map(|part| part.len()).sum();
        let count = parts.len();
        assert_eq!(
            splunk_hec::encoder::frame(parts).len(),
            splunk_hec::encoder::framed_len(bytes, count)
        );
        assert_eq!(
            datadog::encoder::frame(parts, None).len(),
            datadog::encoder::framed_len(bytes, count)
        );
        assert_eq!(
            wazuh::encoder::frame(parts).len(),
            wazuh::encoder::framed_len(bytes, count)
        );
        assert_eq!(
            webhook::encoder::frame(parts).len(),
            webhook::encoder::framed_len(bytes, count)
        );
    }
}

#[test]
fn settings_are_checked_once_for_the_operator_api_and_the_forwarder() {
    let options = SinksConfig::default();
    let policy = OutboundPolicy::default();
    let kind =
        |config: serde_json::Value| -> DestinationKind { serde_json::from_value(config).unwrap() };
    let refused =
        |config: serde_json::Value| registry::check(&kind(config), &options, &policy).unwrap_err();
    registry::check(
        &kind(serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"})),
        &options,
        &policy,
    )
    .unwrap();
    assert_eq!(
        refused(serde_json::json!({"type": "webhook", "url": "https://10.0.0.7/hook"})).field,
        "config.url"
    );
    assert_eq!(
        refused(
            serde_json::json!({"type": "wazuh", "url": "https://wazuh.example.com:55000",
            "username": "svc", "password": "v1.x", "requests_per_minute": 0})
        )
        .field,
        "config.requests_per_minute"
    );
    let site = refused(
        serde_json::json!({"type": "datadog", "site": "datadog.example", "api_key": "v1.x"}),
    );
    assert_eq!(site.field, "config.site");
    assert!(site.reason.contains("datadoghq.eu"), "{site}");
    assert_eq!(
        refused(
            serde_json::json!({"type": "splunk_hec", "url": "https://hec.example.com:8088",
            "token": "v1.x", "max_batch_bytes": 10})
        )
        .field,
        "config.max_batch_bytes"
    );
}
