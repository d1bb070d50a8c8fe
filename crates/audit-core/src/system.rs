//! The platform's own events — category `audit_log`: who viewed or exported the log, who
//! changed its retention, destinations or API tokens, which destination the forwarder paused.
//!
//! This is the one builder of those events (the gateway and the forwarder both use it), so
//! they all have the same shape: category [`CATEGORY`], `source` [`SOURCE`], provenance
//! `system`, `received_at` = `occurred_at` = the moment they were built. Published with the
//! `system` integrity tag ([`crate::integrity::Signer::System`]); producers can neither publish
//! this category nor imitate the tag.
//!
//! The builder is also the one place that bounds what goes in: callers hand it whole texts
//! (a pause reason with a receiver's excerpt, a request's `User-Agent`, a filter value) and
//! it cuts each, on a character boundary, to the limit of its kind of field:
//!
//! | field                              | limit, in characters          |
//! |------------------------------------|-------------------------------|
//! | metadata value                     | [`MAX_METADATA_CHARS`] (1000) |
//! | target type, id, name              | [`MAX_TARGET_CHARS`] (1000)   |
//! | `context.user_agent`, `.location`  | [`MAX_USER_AGENT_CHARS`] (512)|
//! | `context.request_id`               | [`MAX_REQUEST_ID_CHARS`] (128)|
//!
//! All below the contract's string limit (1024), so the events stay valid whatever the
//! caller passes; a cut text is not marked (no ellipsis). Texts that must survive whole (the
//! indexer's signed digest note) are far below their limit. Metadata keys are chosen by the
//! code (or from a fixed list of filter names) and are not cut; `context.ip` is an address the
//! caller has parsed.

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

/// Longest target type, id or name, in characters (below the contract's string limit).
pub const MAX_TARGET_CHARS: usize = 1000;

/// Longest `context.user_agent` (and `context.location`), in characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// Longest `context.request_id`, in characters.
pub const MAX_REQUEST_ID_CHARS: usize = 128;

/// `text` cut to its first `max_chars` characters.
fn bounded(mut text: String, max_chars: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
    }
    text
}

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

    /// Adds a target; its type, id and name are cut to [`MAX_TARGET_CHARS`] characters.
    pub fn target(mut self, kind: &str, id: &str, name: Option<&str>) -> Self {
        let text = |text: &str| bounded(text.to_string(), MAX_TARGET_CHARS);
        self.targets.push(Target {
            kind: text(kind),
            id: text(id),
            name: name.map(text),
        });
        self
    }

    /// Adds a metadata entry, its value cut to [`MAX_METADATA_CHARS`] characters.
    pub fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        let value = bounded(value.into(), MAX_METADATA_CHARS);
        self.metadata
            .insert(key.to_string(), MetadataValue::String(value));
        self
    }

    /// Where the request that caused it came from, its texts cut to
    /// [`MAX_USER_AGENT_CHARS`] (user agent, location) and [`MAX_REQUEST_ID_CHARS`] (request
    /// id) characters.
    pub fn context(mut self, context: Context) -> Self {
        let Context {
            ip,
            user_agent,
            location,
            request_id,
        } = context;
        self.context = Context {
            ip,
            user_agent: user_agent.map(|text| bounded(text, MAX_USER_AGENT_CHARS)),
            location: location.map(|text| bounded(text, MAX_USER_AGENT_CHARS)),
            request_id: request_id.map(|text| bounded(text, MAX_REQUEST_ID_CHARS)),
        };
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

/// The actor of the indexer's own actions (sealing integrity windows).
pub fn indexer_actor() -> Actor {
    Actor {
        kind: ActorType::System,
        id: "indexer".into(),
        name: Some("Audit log indexer".into()),
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

    #[test]
    fn every_kind_of_text_is_cut_to_its_limit_on_a_character_boundary() {
        let long = |chars: usize| "é".repeat(chars + 10);
        let count = |text: &Option<String>| text.as_deref().map(|t| t.chars().count());
        let event = SystemEvent::new("org_a", "audit_log.viewed", operator_actor("ops"))
            .target(
                &long(MAX_TARGET_CHARS),
                &long(MAX_TARGET_CHARS),
                Some(&long(MAX_TARGET_CHARS)),
            )
            .meta("short", "as is")
            .meta("long", long(MAX_METADATA_CHARS))
            .context(Context {
                ip: Some("203.0.113.7".into()),
                user_agent: Some(long(MAX_USER_AGENT_CHARS)),
                location: Some(long(MAX_USER_AGENT_CHARS)),
                request_id: Some(long(MAX_REQUEST_ID_CHARS)),
            })
            .build(OffsetDateTime::UNIX_EPOCH);
        let target = &event.targets[0];
        assert_eq!(target.kind.chars().count(), MAX_TARGET_CHARS);
        assert_eq!(target.id.chars().count(), MAX_TARGET_CHARS);
        assert_eq!(count(&target.name), Some(MAX_TARGET_CHARS));
        assert_eq!(event.metadata["short"].to_text(), "as is");
        assert_eq!(
            event.metadata["long"].to_text().chars().count(),
            MAX_METADATA_CHARS
        );
        assert_eq!(event.context.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(count(&event.context.user_agent), Some(MAX_USER_AGENT_CHARS));
        assert_eq!(count(&event.context.location), Some(MAX_USER_AGENT_CHARS));
        assert_eq!(count(&event.context.request_id), Some(MAX_REQUEST_ID_CHARS));

        // Whatever the caller passed, the event is valid against the contract (checked under
        // a public action: the validator refuses the internal category to producers).
        let catalogue = std::sync::Arc::new(crate::Catalogue::builtin());
        let validator =
            crate::EventValidator::new(catalogue, crate::Limits::default()).expect("validator");
        let mut public = event;
        public.category = "billing".into();
        public.action = "billing.invoice.generated".into();
        let json = public.to_json();
        let arrival = crate::validate::Arrival::kafka_message(
            "audit.events.v1",
            0,
            0,
            crate::validate::BrokerTime::LogAppend(0),
        );
        if let Err(errors) = validator.validate_bytes(&json, arrival) {
            panic!("{}", crate::validate::describe(&errors));
        }
    }
}
