//! The platform's own events — category `audit_log`: who viewed or exported the log, who
//! changed its retention, destinations or API tokens, which destination the forwarder paused.
//!
//! This is the one builder of those events (the gateway and the forwarder both use it), so
//! they all have the same shape: category [`CATEGORY`], `source` [`SOURCE`], provenance
//! `system`, `received_at` = `occurred_at` = the moment they were built, metadata values at
//! most [`MAX_METADATA_CHARS`] characters. Published with the `system` integrity tag
//! ([`crate::integrity::Signer::System`]); producers can neither publish this category nor
//! imitate the tag.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::event::{
    Actor, ActorType, AuditEvent, Context, MetadataValue, Outcome, Provenance, Target,
};

/// The category of the platform's own events (internal in the catalogue).
pub const CATEGORY: &str = "audit_log";

/// The `source` of the platform's own events.
pub const SOURCE: &str = "audit-log";

/// Longest metadata value, in characters (below the contract's string limit).
pub const MAX_METADATA_CHARS: usize = 1000;

/// One of the platform's own events, being built.
#[derive(Debug, Clone)]
pub struct SystemEvent {
    org_id: String,
    action: String,
    actor: Actor,
    targets: Vec<Target>,
    metadata: BTreeMap<String, MetadataValue>,
    context: Context,
}

impl SystemEvent {
    /// `action` is an `audit_log.*` action of the catalogue, e.g. `audit_log.exported`.
    pub fn new(org_id: &str, action: &str, actor: Actor) -> Self {
        Self {
            org_id: org_id.to_string(),
            action: action.to_string(),
            actor,
            targets: Vec::new(),
            metadata: BTreeMap::new(),
            context: Context::default(),
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn target(mut self, kind: &str, id: &str, name: Option<&str>) -> Self {
        self.targets.push(Target {
            kind: kind.to_string(),
            id: id.to_string(),
            name: name.map(str::to_string),
        });
        self
    }

    /// Adds a metadata entry, cut to [`MAX_METADATA_CHARS`] characters.
    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        let mut value: String = value.into();
        if let Some((cut, _)) = value.char_indices().nth(MAX_METADATA_CHARS) {
            value.truncate(cut);
        }
        self.metadata
            .insert(key.to_string(), MetadataValue::String(value));
        self
    }

    /// Where the request that caused it came from.
    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// The event, occurred and received `now`, with a fresh id.
    pub fn build(self, now: OffsetDateTime) -> AuditEvent {
        let at = crate::event::to_utc_millis(now);
        AuditEvent {
            id: crate::event::new_event_id(),
            org_id: self.org_id,
            occurred_at: at,
            received_at: Some(at),
            category: CATEGORY.into(),
            action: self.action,
            outcome: Outcome::Success,
            actor: self.actor,
            targets: self.targets,
            context: self.context,
            metadata: self.metadata,
            source: Some(SOURCE.into()),
            version: crate::SCHEMA_VERSION,
            provenance: Some(Provenance::System),
        }
    }
}

/// The actor of the forwarder's own actions (automatic pauses, test deliveries).
pub fn forwarder_actor() -> Actor {
    Actor {
        kind: ActorType::System,
        id: "forwarder".into(),
        name: Some("Audit log forwarder".into()),
        email: None,
    }
}

/// The actor of an operator (platform staff) acting through the operator API.
pub fn operator_actor(name: &str) -> Actor {
    Actor {
        kind: ActorType::User,
        id: format!("operator:{name}"),
        name: Some(name.to_string()),
        email: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use time::macros::datetime;

    #[test]
    fn system_events_have_one_shape() {
        let now = datetime!(2026-11-26 12:00:00.123456 UTC);
        let event = SystemEvent::new("org_a", "audit_log.destination.paused", forwarder_actor())
            .target("destination", "dst_1", Some("SOC"))
            .meta("reason", "é".repeat(MAX_METADATA_CHARS + 10))
            .build(now);
        assert_eq!(event.category, CATEGORY);
        assert_eq!(event.source.as_deref(), Some(SOURCE));
        assert_eq!(event.provenance, Some(Provenance::System));
        assert_eq!(event.received_at, Some(event.occurred_at));
        assert_eq!(event.occurred_at, datetime!(2026-11-26 12:00:00.123 UTC));
        assert_eq!(event.targets[0].id, "dst_1");
        assert_eq!(
            event.metadata["reason"].to_text().chars().count(),
            MAX_METADATA_CHARS,
            "cut on a character boundary"
        );
        let catalogue = crate::Catalogue::builtin();
        assert!(catalogue.category_of(&event.action) == Some(CATEGORY));
        assert_eq!(operator_actor("ops").id, "operator:ops");
    }
}
