//! The masked public view of a destination, as every endpoint answers it: secrets (HEC token,
//! Datadog API key, Wazuh password, signing secrets) replaced by [`MASK`], timestamps in
//! RFC 3339 with milliseconds.

use audit_settings::Destination;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Shown instead of a secret.
pub const MASK: &str = "********";

/// The masked public view of a destination.
pub fn view(destination: &Destination) -> Value {
    let config = audit_sinks::registry::masked_config(&destination.config, MASK);
    let secrets: Vec<Value> = destination
        .signing_secrets
        .iter()
        .map(|s| json!({"id": s.id, "secret": MASK, "created_at": rfc3339(s.created_at), "expires_at": s.expires_at.map(rfc3339)}))
        .collect();
    json!({
        "id": destination.id,
        "name": destination.name,
        "type": destination.config.type_name(),
        "enabled": destination.enabled,
        "active": destination.is_active(),
        "state": destination.state,
        "filters": destination.filters,
        "config": config,
        "format": destination.format,
        "signing_secrets": secrets,
        "created_at": rfc3339(destination.created_at),
    })
}

/// A time as every admin answer writes it: RFC 3339, UTC, milliseconds.
pub fn rfc3339(at: OffsetDateTime) -> String {
    audit_core::event::format_utc_millis(at)
}

#[cfg(test)]
mod tests {
    use audit_settings::{DestinationState, EventFormat, Filters, SecretBox, SigningSecret};

    use super::*;

    #[test]
    fn views_mask_every_secret() {
        let secret_box = SecretBox::ephemeral();
        let now = OffsetDateTime::UNIX_EPOCH;
        for config in [
            json!({"type": "splunk_hec", "url": "https://hec.example.com",
                "token": secret_box.seal("tok-123", "c")}),
            json!({"type": "datadog", "site": "datadoghq.com",
                "api_key": secret_box.seal("dd-key", "c")}),
            json!({"type": "wazuh", "url": "https://wazuh.example.com:55000",
                "username": "ingest", "password": secret_box.seal("pw", "c")}),
            // A type this build does not know: its sealed values are masked all the same.
            json!({"type": "sentinel", "url": "https://x.example",
                "shared_key": secret_box.seal("pw", "c")}),
        ] {
            let destination = Destination {
                id: "dst_1".into(),
                name: "x".into(),
                enabled: true,
                state: DestinationState::Active,
                filters: Filters::default(),
                signing_secrets: vec![SigningSecret {
                    id: "whk_1".into(),
                    secret: secret_box.seal("whsec_x", "c"),
                    created_at: now,
                    expires_at: None,
                }],
                config: serde_json::from_value(config).expect("config"),
                created_at: now,
                format: EventFormat::Ocsf,
            };
            let text = view(&destination).to_string();
            assert!(!text.contains("v1."), "sealed value leaked: {text}");
            assert!(text.contains(MASK));
            assert!(text.contains(r#""format":"ocsf""#), "{text}");
        }
    }
}
