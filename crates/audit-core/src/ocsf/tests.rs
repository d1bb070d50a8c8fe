//! Unit tests of the OCSF mapping (no IO): the catalogue's classes, the base fields, each
//! class's subject, and what goes to `unmapped`.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

fn event(action: &str, category: &str, outcome: &str) -> Value {
    json!({
        "id": "0190d7a0-6c1e-7b3a-9f00-000000000001",
        "org_id": "org_a",
        "occurred_at": "2026-01-01T00:00:00.250Z",
        "received_at": "2026-01-01T00:00:01.000Z",
        "category": category,
        "action": action,
        "outcome": outcome,
        "actor": {"type": "user", "id": "u_1", "name": "Ada", "email": "ada@example.com"},
        "targets": [],
        "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "location": "Paris, FR", "request_id": "req-9"},
        "metadata": {},
        "source": "identity-api",
        "version": 1,
        "provenance": "gateway"
    })
}

fn ocsf(event: Value) -> Value {
    ocsf_with(event, &Catalogue::builtin())
}

/// The object of `event`, mapped both ways in (the parsed event, as the gateway's export
/// does; a view read from its stored JSON, as the forwarder does): the same bytes.
fn ocsf_with(event: Value, catalogue: &Catalogue) -> Value {
    let event: AuditEvent = serde_json::from_value(event).unwrap();
    let from_event = to_json(&event, catalogue);
    let stored = serde_json::to_vec(&event).unwrap();
    let view: EventView<'_> = serde_json::from_slice(&stored).unwrap();
    let mut from_view = b"already here ".to_vec();
    write_json(&view, catalogue, &mut from_view);
    assert_eq!(
        String::from_utf8_lossy(&from_view[13..]),
        String::from_utf8_lossy(&from_event)
    );
    assert_written_as_serde_would(&view, catalogue);
    serde_json::from_slice(&from_event).unwrap()
}

/// The hand-written writer's bytes are serde_json's of the same object.
fn assert_written_as_serde_would(view: &EventView<'_>, catalogue: &Catalogue) {
    let mut written = Vec::new();
    write_json(view, catalogue, &mut written);
    let serialized = serde_json::to_vec(&map(view, catalogue)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&written),
        String::from_utf8_lossy(&serialized)
    );
}

mod written {
    use proptest::prelude::*;

    use super::*;

    /// Text with what JSON must escape (quotes, backslashes, control characters) and what it
    /// must not (non-ASCII, DEL), often enough to matter.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9_.@-]{1,12}",
            "[\\\\\"\u{0}-\u{1f}\u{7f}a-zé€😀 ,:/]{1,16}",
        ]
    }

    proptest! {
        #[test]
        fn any_event_is_written_as_serde_would(
            action in prop_oneof![
                Just("user.login.failed"),
                Just("member.invite.sent"),
                Just("member.role.changed"),
                Just("api_key.generated"),
                Just("audit_log.destination.tested"),
                Just("some.unknown.action"),
            ],
            outcome in prop_oneof![Just("success"), Just("failure")],
            actor_type in prop_oneof![Just("user"), Just("service"), Just("api_key"), Just("system")],
            name in text(),
            email in text(),
            ip in text(),
            user_agent in text(),
            target_kind in prop_oneof![Just("user".to_string()), text()],
            target_name in text(),
            meta_key in text(),
            meta_value in text(),
        ) {
            let mut event = event(action, "catalogue", outcome);
            event["actor"] = json!({"type": actor_type, "id": name, "name": name, "email": email});
            event["context"]["ip"] = json!(ip);
            event["context"]["user_agent"] = json!(user_agent);
            event["targets"] = json!([
                {"type": target_kind, "id": target_name, "name": target_name},
                {"type": "workspace", "id": "w_1"}
            ]);
            event["metadata"] = json!({ meta_key: meta_value, "role": meta_value });
            let catalogue = Catalogue::builtin();
            // Both views: read from the stored JSON (forwarder), made from the parsed event
            // (export, with its metadata as a map).
            let text = event.to_string();
            let view: EventView<'_> = serde_json::from_str(&text).unwrap();
            assert_written_as_serde_would(&view, &catalogue);
            if let Ok(parsed) = serde_json::from_value::<AuditEvent>(event) {
                assert_written_as_serde_would(&EventView::from(&parsed), &catalogue);
            }
        }
    }
}

#[test]
fn a_failed_sign_in_is_an_authentication_logon_that_failed() {
    let object = ocsf(event("user.login.failed", "authentication", "failure"));
    assert_eq!(object["class_uid"], 3002);
    assert_eq!(object["class_name"], "Authentication");
    assert_eq!(object["category_uid"], 3);
    assert_eq!(object["activity_id"], 1);
    assert_eq!(object["activity_name"], "Logon");
    assert_eq!(object["type_uid"], 300_201);
    assert_eq!(object["type_name"], "Authentication: Logon");
    assert_eq!(object["time"], 1_767_225_600_250_i64);
    assert_eq!(object["status_id"], 2);
    assert_eq!(object["status"], "Failure");
    assert_eq!(object["severity_id"], 2);
    assert_eq!(object["message"], "A sign-in attempt failed.");
    assert_eq!(object["user"]["uid"], "u_1");
    assert_eq!(object["user"]["email_addr"], "ada@example.com");
    assert_eq!(object["service"]["name"], "identity-api");
    assert_eq!(object["src_endpoint"]["ip"], "203.0.113.7");
    assert_eq!(object["http_request"]["user_agent"], "Mozilla/5.0");
    assert_eq!(object["http_request"]["uid"], "req-9");
    assert_eq!(object["unmapped"]["location"], "Paris, FR");
    assert_eq!(object["unmapped"]["provenance"], "gateway");
    assert_eq!(object["unmapped"]["category"], "authentication");
}

#[test]
fn metadata_traces_the_object_to_the_event_and_its_organization() {
    let object = ocsf(event("user.login.succeeded", "authentication", "success"));
    let metadata = &object["metadata"];
    assert_eq!(metadata["version"], OCSF_VERSION);
    assert_eq!(metadata["uid"], "0190d7a0-6c1e-7b3a-9f00-000000000001");
    assert_eq!(metadata["tenant_uid"], "org_a");
    assert_eq!(metadata["event_code"], "user.login.succeeded");
    assert_eq!(metadata["log_provider"], "identity-api");
    assert_eq!(metadata["logged_time"], 1_767_225_601_000_i64);
    assert_eq!(metadata["product"]["name"], PRODUCT_NAME);
    assert_eq!(object["status_id"], 1);
    assert_eq!(object["severity_id"], 1);
}

#[test]
fn account_changes_name_the_target_user_and_keep_the_other_targets() {
    let mut input = event("user.mfa.enrolled", "authentication", "success");
    input["targets"] = json!([
        {"type": "device", "id": "totp_1"},
        {"type": "user", "id": "u_2", "name": "Grace"}
    ]);
    let object = ocsf(input);
    assert_eq!(object["class_uid"], 3001);
    assert_eq!(object["activity_name"], "MFA Factor Enable");
    assert_eq!(object["user"]["uid"], "u_2");
    assert_eq!(object["actor"]["user"]["uid"], "u_1");
    assert_eq!(
        object["unmapped"]["targets"],
        json!([{"type": "device", "id": "totp_1"}])
    );
    // Without a user target the subject is the actor.
    let object = ocsf(event("user.password.changed", "security", "success"));
    assert_eq!(object["type_uid"], 300_103);
    assert_eq!(object["user"]["uid"], "u_1");
}

#[test]
fn role_grants_carry_their_privileges() {
    let mut input = event("member.role.changed", "user_management", "success");
    input["targets"] = json!([{"type": "member", "id": "u_3"}]);
    input["metadata"] = json!({"role": "admin, billing", "reason": "promotion"});
    let object = ocsf(input);
    assert_eq!(object["class_uid"], 3005);
    assert_eq!(object["activity_name"], "Assign Privileges");
    assert_eq!(object["user"]["uid"], "u_3");
    assert_eq!(object["privileges"], json!(["admin", "billing"]));
    assert_eq!(object["unmapped"]["metadata"]["reason"], "promotion");
    // Without a role in the metadata the action names what was granted.
    let object = ocsf(event(
        "org.ownership.transferred",
        "user_management",
        "success",
    ));
    assert_eq!(object["privileges"], json!(["org.ownership.transferred"]));
}

#[test]
fn managed_things_are_the_entity_else_the_organization() {
    let mut input = event("api_key.generated", "security", "success");
    input["targets"] = json!([{"type": "api_key", "id": "key_1", "name": "ci"}]);
    let object = ocsf(input);
    assert_eq!(object["class_uid"], 3004);
    assert_eq!(object["activity_id"], 1);
    assert_eq!(
        object["entity"],
        json!({"uid": "key_1", "name": "ci", "type": "api_key"})
    );
    assert!(object["unmapped"].get("targets").is_none());
    let object = ocsf(event("audit_log.retention.changed", "audit_log", "success"));
    assert_eq!(object["type_uid"], 300_403);
    assert_eq!(
        object["entity"],
        json!({"uid": "org_a", "type": "organization"})
    );
    let object = ocsf(event(
        "audit_log.destination.paused",
        "audit_log",
        "success",
    ));
    assert_eq!(object["activity_name"], "Suspend");
}

#[test]
fn reads_are_api_activity_with_resources_and_a_source_endpoint() {
    let mut input = event("audit_log.exported", "audit_log", "success");
    input["targets"] = json!([{"type": "audit_log", "id": "org_a"}]);
    let object = ocsf(input);
    assert_eq!(object["class_uid"], 6003);
    assert_eq!(object["category_uid"], 6);
    assert_eq!(object["category_name"], "Application Activity");
    assert_eq!(object["type_uid"], 600_302);
    assert_eq!(object["api"]["operation"], "audit_log.exported");
    assert_eq!(
        object["resources"],
        json!([{"uid": "org_a", "type": "audit_log"}])
    );
    // The class requires a source endpoint: without an address, the producing service.
    let mut input = event("data.download.requested", "data_access", "success");
    input["context"] = json!({});
    let object = ocsf(input);
    assert_eq!(object["src_endpoint"], json!({"svc_name": "identity-api"}));
    assert!(object.get("http_request").is_none());
}

#[test]
fn actions_without_a_class_are_api_activity_other_named_after_the_action() {
    let catalogue = Catalogue::from_toml(
        "version = 1\n[[category]]\nname = 'custom'\nactions = [{ name = 'widget.spun' }]\n",
    )
    .unwrap();
    for action in ["widget.spun", "widget.not_in_this_catalogue"] {
        let object = ocsf_with(event(action, "custom", "success"), &catalogue);
        assert_eq!(object["class_uid"], 6003, "{action}");
        assert_eq!(object["activity_id"], 99);
        assert_eq!(object["activity_name"], action);
        assert_eq!(object["type_uid"], 600_399);
        assert_eq!(object["type_name"], "API Activity: Other");
        assert_eq!(object["message"], action);
    }
}

#[test]
fn services_are_apps_and_emails_ocsf_refuses_are_kept_unmapped() {
    let mut input = event("resource.created", "service", "success");
    input["actor"] =
        json!({"type": "service", "id": "svc_9", "name": "deployer", "email": "ops@localhost"});
    let object = ocsf(input);
    assert_eq!(object["actor"]["app_name"], "deployer");
    assert_eq!(object["actor"]["app_uid"], "svc_9");
    assert_eq!(object["actor"]["user"]["type_id"], 99);
    assert!(object["actor"]["user"].get("email_addr").is_none());
    assert_eq!(object["unmapped"]["actor_email"], "ops@localhost");
}

#[test]
fn emails_follow_the_ocsf_pattern() {
    for good in ["a@b.c", "first.last+tag@mail.example.co.uk", "x-y@d-1.io"] {
        assert!(is_ocsf_email(good), "{good}");
    }
    for bad in [
        "", "a", "@b.c", "a@b", "a@.c", "a@b.", "é@b.c", "a b@c.d", "a@b_c.d",
    ] {
        assert!(!is_ocsf_email(bad), "{bad}");
    }
}

proptest::proptest! {
    /// The byte-wise check accepts what OCSF's `email_t` pattern accepts, written as the
    /// pattern reads (characters and its class as a string).
    #[test]
    fn emails_are_checked_as_the_pattern_reads(
        text in "[a-zA-Z0-9!#$%&'*+,./=?^_`{|}~ é@\\-]{0,12}(@[a-z0-9_é.-]{0,8})?"
    ) {
        let pattern = |text: &str| {
            let Some((local, domain)) = text.split_once('@') else { return false };
            let Some((label, rest)) = domain.split_once('.') else { return false };
            !local.is_empty()
                && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+,-./=?^_`{|}~".contains(c))
                && !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !rest.is_empty()
                && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        };
        proptest::prop_assert_eq!(is_ocsf_email(&text), pattern(&text), "{}", text);
    }
}

#[test]
fn every_builtin_action_maps_to_its_catalogue_class_consistently() {
    let catalogue = Catalogue::builtin();
    for category in catalogue.categories() {
        for action in &category.actions {
            let object = ocsf(event(&action.name, &category.name, "success"));
            let mapping = action.ocsf.unwrap();
            assert_eq!(object["class_uid"], mapping.class_uid, "{}", action.name);
            assert_eq!(
                object["activity_id"], mapping.activity_id,
                "{}",
                action.name
            );
            let type_uid = object["type_uid"].as_u64().unwrap();
            assert_eq!(
                type_uid,
                u64::from(mapping.class_uid) * 100 + u64::from(mapping.activity_id)
            );
        }
    }
}

#[test]
fn views_read_from_json_borrow_unescaped_strings_and_keep_escaped_ones() {
    let mut input = event("user.login.failed", "authentication", "failure");
    input["actor"]["name"] = json!("Ada \"the first\" Lovelace");
    input["targets"] = json!([{"type": "device", "id": "d\u{e9}v", "name": null}]);
    input["metadata"] = json!({"note": "tab\there"});
    // A producer may escape any character.
    let text = serde_json::to_string(&input)
        .unwrap()
        .replace("d\u{e9}v", "d\\u00e9v");
    assert!(text.contains("d\\u00e9v"));
    let view: EventView<'_> = serde_json::from_str(&text).unwrap();
    assert!(matches!(view.org_id, Cow::Borrowed("org_a")));
    assert!(matches!(view.source, Some(Cow::Borrowed("identity-api"))));
    assert_eq!(
        view.actor.name.as_deref(),
        Some("Ada \"the first\" Lovelace")
    );
    assert_eq!(view.targets[0].id, "dév");
    assert_eq!(view.targets[0].name, None);
    assert_eq!(view.occurred_at_ms, 1_767_225_600_250);
    assert_eq!(view.received_at_ms, Some(1_767_225_601_000));
    let object = ocsf(input);
    assert_eq!(
        object["actor"]["user"]["name"],
        "Ada \"the first\" Lovelace"
    );
    assert_eq!(object["unmapped"]["metadata"]["note"], "tab\there");
}

fn base_with_metadata() -> Value {
    let mut input = event("user.login.failed", "authentication", "failure");
    input["metadata"] = json!({"k": "v"});
    input
}

#[test]
fn views_read_what_the_event_reads_and_refuse_the_rest() {
    // What the view reads, as (occurred_at_ms, metadata left out), or why it refuses.
    let read = |input: &Value| {
        serde_json::from_str::<EventView<'_>>(&input.to_string())
            .map(|view| (view.occurred_at_ms, view.metadata.is_empty()))
    };
    let base = event("user.login.failed", "authentication", "failure");
    // Times in another form than the platform's are read the same.
    let mut offset = base.clone();
    offset["occurred_at"] = json!("2026-01-01T02:00:00.250+02:00");
    assert_eq!(read(&offset).unwrap().0, 1_767_225_600_250);
    // Empty metadata (with or without spaces) is left out, as from the parsed event.
    let mut empty = base.clone();
    empty["metadata"] = json!({});
    assert!(read(&empty).unwrap().1);
    let spaced = empty
        .to_string()
        .replace("\"metadata\":{}", "\"metadata\": { }");
    let view: EventView<'_> = serde_json::from_str(&spaced).unwrap();
    assert!(view.metadata.is_empty());
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("metadata");
    assert!(read(&missing).unwrap().1);
    assert!(!read(&base_with_metadata()).unwrap().1);
    // A field of another contract, metadata that is not an object, a time that is not one.
    for (field, value) in [
        ("colour", json!("red")),
        ("metadata", json!(["a"])),
        ("occurred_at", json!("yesterday")),
        ("outcome", json!("maybe")),
    ] {
        let mut odd = base.clone();
        odd[field] = value;
        assert!(read(&odd).is_err(), "{field}");
        assert!(
            serde_json::from_value::<AuditEvent>(odd).is_err(),
            "{field}"
        );
    }
}

/// The metadata entry a class reads (User Access Management's `role`, …) is found in the raw
/// object as the parsed map would give it: the last entry of the name, unescaped, only when a
/// string, and nothing when the object holds a value the map refuses.
#[test]
fn a_metadata_entry_read_from_the_raw_object_is_the_parsed_maps() {
    use std::collections::BTreeMap;

    use crate::event::MetadataValue;

    let objects = [
        r#"{"role":"admin","attempt":2}"#,
        r#"{"attempt":2,"role":"a\"dmin\u00e9"}"#,
        r#"{"role":"first","role":"last"}"#,
        r#"{"role":1.5,"new_role":null,"privileges":true}"#,
        r#"{"role":"admin","nested":{"role":"x"}}"#,
        r#"{"role":"admin","list":["x"]}"#,
        r#"{"r\u006fle":"escaped key"}"#,
        r#"{"other":"x"}"#,
    ];
    for object in objects {
        let raw = serde_json::value::RawValue::from_string(object.to_string()).unwrap();
        let map: Option<BTreeMap<String, MetadataValue>> = serde_json::from_str(object).ok();
        for key in ["role", "new_role", "privileges", "missing"] {
            let expected = map.as_ref().and_then(|map| match map.get(key) {
                Some(MetadataValue::String(text)) => Some(text.clone()),
                _ => None,
            });
            let read = MetadataView::Json(&raw)
                .text(key)
                .map(|text| text.into_owned());
            assert_eq!(read, expected, "{key} of {object}");
        }
    }
}
