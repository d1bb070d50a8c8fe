//! Unit tests of what every destination type shares (no IO): excerpts, framing, default
//! paths, and the format choosing the payload inside the same envelope.
#![allow(clippy::unwrap_used)]

use audit_settings::DestinationConfig;

use crate::datadog::DatadogSettings;
use crate::registry::{
    ConfigInput, CredentialSealer, DestinationKind, DestinationType, config_from_input,
    masked_config,
};

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
    if let Ok(DestinationKind::Datadog(mut settings)) = DestinationKind::parse(&destination.config)
    {
        settings.api_key = secrets.seal(
            "dd-key",
            &Destination::credential_seal_context(
                "org_a",
                "dst_1",
                "config.api_key",
                &settings.endpoint(),
            ),
        );
        destination.config = DestinationKind::Datadog(settings).to_config().unwrap();
    }
    destination
}

/// What the forwarder builds sinks with, opening secrets sealed by `secrets`.
fn context(secrets: &SecretBox) -> SinkContext {
    SinkContext {
        client: reqwest::Client::new(),
        policy: OutboundPolicy::default(),
        secrets: secrets.clone(),
        options: SinksConfig::default(),
        catalogue: Arc::new(Catalogue::builtin()),
    }
}

#[test]
fn the_format_chooses_the_payload_inside_the_same_envelope() {
    let secrets = SecretBox::ephemeral();
    let context = context(&secrets);
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

    // A type this build does not know is a destination that cannot be used (the forwarder
    // pauses it), not a record that cannot be read.
    let unknown = serde_json::json!({"type": "sentinel", "url": "https://soc.example.com"});
    let destination = destination(&secrets, unknown, EventFormat::Native);
    let error = context
        .build("org_a", &destination, &SinkState::default())
        .unwrap_err();
    assert!(
        error.to_string().contains("unknown variant `sentinel`"),
        "{error}"
    );
}

#[test]
fn a_batch_request_is_built_ahead_framed_and_signed() {
    let secrets = SecretBox::ephemeral();
    let config = serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"});
    let sink = context(&secrets)
        .build(
            "org_a",
            &destination(&secrets, config, EventFormat::Native),
            &SinkState::default(),
        )
        .unwrap();
    let event = crate::event::synthetic_event(
        "org_a",
        "audit_log.destination.tested",
        serde_json::json!({}),
    );
    let part = sink.encode(&event);
    let request = sink
        .request(&[&part, &part], "msg_1")
        .expect("one request")
        .build()
        .unwrap();
    assert_eq!(request.url().as_str(), "https://soc.example.com/hook");
    let body = request.body().and_then(reqwest::Body::as_bytes);
    assert_eq!(body, Some(&json_array(&[&part, &part])[..]));
    assert_eq!(request.headers()[signing::HEADER_ID], "msg_1");
    let signature = request.headers()[signing::HEADER_SIGNATURE]
        .to_str()
        .unwrap();
    assert!(signature.starts_with("v1,"), "{signature}");
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
    let refused = |config: serde_json::Value| {
        kind(config)
            .settings()
            .check(&options, &policy)
            .unwrap_err()
    };
    kind(serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"}))
        .settings()
        .check(&options, &policy)
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

/// The stored config of `input` for destination `dst_1` of `org_a`, on create or update.
fn stored(
    secrets: &SecretBox,
    input: serde_json::Value,
    existing: Option<&DestinationConfig>,
) -> Result<DestinationConfig, InvalidSetting> {
    let input: ConfigInput = serde_json::from_value(input).unwrap();
    let sealer = CredentialSealer::new(secrets, "org_a", "dst_1");
    config_from_input(
        input,
        existing,
        &sealer,
        &SinksConfig::default(),
        &OutboundPolicy::default(),
    )
}

#[test]
fn every_type_is_named_by_its_tag_and_stored_as_it_serialises() {
    let secrets = SecretBox::ephemeral();
    for input in [
        serde_json::json!({"type": "splunk_hec", "url": "https://hec.example.com", "token": "t"}),
        serde_json::json!({"type": "datadog", "site": "datadoghq.eu", "api_key": "k"}),
        serde_json::json!({"type": "wazuh", "url": "https://wazuh.example.com:55000",
            "username": "svc", "password": "p"}),
        serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"}),
    ] {
        let config = stored(&secrets, input.clone(), None).unwrap();
        let kind = DestinationKind::parse(&config).unwrap();
        assert_eq!(kind.type_name(), input["type"]);
        assert_eq!(config.type_name(), input["type"]);
        // Written in the order of the settings' fields, as before the config was untyped.
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            serde_json::to_string(&kind).unwrap()
        );
        let shown = masked_config(&config, "***").to_string();
        assert!(!shown.contains("v1."), "sealed value shown: {shown}");
        assert!(shown.contains(r#""url":"#), "{shown}");
    }
}

#[test]
fn a_credential_opens_only_for_the_url_it_was_sealed_for() {
    let secrets = SecretBox::ephemeral();
    let input = serde_json::json!({"type": "splunk_hec", "url": "https://hec.example.com",
        "token": "hec-token"});
    let config = stored(&secrets, input, None).unwrap();
    let DestinationKind::SplunkHec(mut settings) = DestinationKind::parse(&config).unwrap() else {
        panic!("not HEC");
    };
    let opened = DestinationKind::SplunkHec(settings.clone())
        .open_credential("org_a", "dst_1", &secrets)
        .unwrap();
    assert_eq!(
        opened.map(|s| s.expose().clone()).as_deref(),
        Some("hec-token")
    );
    let elsewhere = DestinationKind::SplunkHec(settings.clone());
    assert!(
        elsewhere
            .open_credential("org_b", "dst_1", &secrets)
            .is_err(),
        "nor for another organization"
    );
    // The URL rewritten, the sealed token kept: it does not open.
    settings.url = "https://collector.intruder.example".into();
    let moved = DestinationKind::SplunkHec(settings);
    assert!(moved.open_credential("org_a", "dst_1", &secrets).is_err());
    assert_ne!(
        DatadogSettings::endpoint_of("datadoghq.com", None),
        DatadogSettings::endpoint_of("datadoghq.eu", None)
    );
}

#[test]
fn a_stored_credential_follows_its_endpoint_only() {
    let secrets = SecretBox::ephemeral();
    let create = serde_json::json!({"type": "wazuh", "url": "https://wazuh.example.com:55000",
        "username": "svc", "password": "pw"});
    let config = stored(&secrets, create, None).unwrap();
    let same_url = serde_json::json!({"type": "wazuh", "url": "https://wazuh.example.com:55000",
        "username": "other"});
    let kept = stored(&secrets, same_url, Some(&config)).unwrap();
    assert_eq!(kept.get("password"), config.get("password"));
    let new_url = serde_json::json!({"type": "wazuh", "url": "https://siem.example.com:55000",
        "username": "svc"});
    let refused = stored(&secrets, new_url, Some(&config)).unwrap_err();
    assert_eq!(refused.field, "config.password");
    assert!(refused.reason.contains("URL changes"), "{refused}");
    let empty = serde_json::json!({"type": "wazuh", "url": "https://wazuh.example.com:55000",
        "username": "svc", "password": " "});
    assert_eq!(
        stored(&secrets, empty, Some(&config)).unwrap_err().reason,
        "must not be empty"
    );
    let other_type = serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"});
    assert_eq!(
        stored(&secrets, other_type, Some(&config))
            .unwrap_err()
            .field,
        "config.type"
    );
}

#[test]
fn a_config_this_build_cannot_type_is_refused_where_it_is_built_and_shown_masked() {
    let secrets = SecretBox::ephemeral();
    let config: DestinationConfig = serde_json::from_value(serde_json::json!({
        "type": "sentinel", "workspace": "w", "key": secrets.seal("k", "c"),
    }))
    .unwrap();
    let error = DestinationKind::parse(&config).unwrap_err();
    assert_eq!(error.field, "config");
    assert!(error.reason.contains("sentinel"), "{error}");
    let shown = masked_config(&config, "***");
    assert_eq!(shown["key"], "***");
    assert_eq!(shown["workspace"], "w");
    // A stored record that predates an optional field shows it, as its type reads it.
    let older: DestinationConfig = serde_json::from_value(serde_json::json!({
        "type": "webhook", "url": "https://soc.example.com/hook",
    }))
    .unwrap();
    assert_eq!(
        masked_config(&older, "***")["max_batch_events"],
        serde_json::Value::Null
    );
    assert!(
        masked_config(&older, "***")
            .get("max_batch_events")
            .is_some()
    );
}

#[test]
fn every_type_is_tagged_with_the_name_of_its_folder() {
    // The registry names a type by its folder, serde by its variant: they must agree.
    for (name, _) in ConfigInput::type_schemas() {
        let error = serde_json::from_value::<ConfigInput>(serde_json::json!({"type": name}))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("unknown variant"), "{name}: {error}");
    }
}
