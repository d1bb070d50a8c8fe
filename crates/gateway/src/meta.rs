//! Meta events: the audit log records who read it, who exported it and who changed its
//! settings, in the organization's own log (category `audit_log`).

use std::collections::BTreeMap;

use audit_core::{Actor, AuditEvent, Context, MetadataValue, Outcome, Target};
use axum::http::HeaderMap;
use time::OffsetDateTime;

use crate::App;
use crate::error::ApiError;
use crate::publisher::Outgoing;

/// The `source` of meta events.
pub const SOURCE: &str = "audit-log";

/// A meta event to record.
#[derive(Debug)]
pub struct Meta {
    pub org_id: String,
    pub action: &'static str,
    pub actor: Actor,
    pub targets: Vec<Target>,
    pub metadata: BTreeMap<String, MetadataValue>,
    pub context: Context,
}

impl Meta {
    pub fn new(org_id: &str, action: &'static str, actor: Actor, headers: &HeaderMap) -> Self {
        Self {
            org_id: org_id.to_string(),
            action,
            actor,
            targets: Vec::new(),
            metadata: BTreeMap::new(),
            context: request_context(headers),
        }
    }

    pub fn target(mut self, kind: &str, id: &str, name: Option<&str>) -> Self {
        self.targets.push(Target {
            kind: kind.to_string(),
            id: id.to_string(),
            name: name.map(str::to_string),
        });
        self
    }

    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        let mut value: String = value.into();
        if value.len() > 1000 {
            let mut end = 1000;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value.truncate(end);
        }
        self.metadata
            .insert(key.to_string(), MetadataValue::String(value));
        self
    }
}

/// The actor for an operator (platform staff).
pub fn operator_actor(name: &str) -> Actor {
    Actor {
        kind: audit_core::ActorType::User,
        id: format!("operator:{name}"),
        name: Some(name.to_string()),
        email: None,
    }
}

/// Records a meta event (durably: waits for Kafka's acknowledgement).
pub async fn record(app: &App, meta: Meta) -> Result<(), ApiError> {
    let now = OffsetDateTime::now_utc();
    let event = AuditEvent {
        id: audit_core::event::new_event_id(),
        org_id: meta.org_id,
        occurred_at: audit_core::event::to_utc_millis(now),
        received_at: Some(audit_core::event::to_utc_millis(now)),
        category: "audit_log".into(),
        action: meta.action.into(),
        outcome: Outcome::Success,
        actor: meta.actor,
        targets: meta.targets,
        context: meta.context,
        metadata: meta.metadata,
        source: Some(SOURCE.into()),
        version: audit_core::SCHEMA_VERSION,
    };
    let json = event.to_json();
    app.publisher
        .publish(
            &[Outgoing {
                org_id: &event.org_id,
                json: &json,
            }],
            SOURCE,
        )
        .await
        .map_err(|error| {
            tracing::warn!(%error, action = %event.action, "could not record a meta event");
            ApiError::unavailable(
                format!("could not record the audit trail of this action: {error}"),
                2,
            )
        })
}

fn request_context(headers: &HeaderMap) -> Context {
    let text = |name: &str, max: usize| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(max).collect::<String>())
    };
    let ip = text("x-forwarded-for", 100)
        .and_then(|v| v.split(',').next().map(|ip| ip.trim().to_string()))
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    Context {
        ip,
        user_agent: text("user-agent", 512),
        location: None,
        request_id: text("x-request-id", 128),
    }
}
