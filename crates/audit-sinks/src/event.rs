//! The event as every destination type encodes it: the few fields the wire formats need, plus
//! the event's canonical JSON, sent byte for byte (or mapped once to its OCSF object).

use std::borrow::Cow;
use std::sync::OnceLock;

use audit_core::Catalogue;
use audit_core::event::{ActorType, Outcome};
use audit_core::ocsf::{ActorView, EventView};
use audit_core::system::SystemEvent;
use bytes::Bytes;
use time::OffsetDateTime;

/// One event, ready to be encoded for any destination.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardEvent {
    pub id: String,
    pub org_id: String,
    pub category: String,
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The producing service, when known.
    pub source: Option<String>,
    /// `occurred_at`, unix milliseconds.
    pub occurred_at_ms: i64,
    /// When the platform received the event (its `received_at`, else the broker's time), unix ms.
    pub received_at_ms: i64,
    /// The event's canonical JSON (an object).
    pub json: Bytes,
    /// Its OCSF object, once mapped (see [`ForwardEvent::ocsf`]).
    pub ocsf: OnceLock<Vec<u8>>,
}

impl ForwardEvent {
    /// The event's OCSF object ([`ocsf_json`]), mapped by the first lane that encodes it and
    /// kept with the event: every destination of the organization in the OCSF format sends the
    /// same bytes. (Mapping it in the consumer instead, off the lanes, was measured slower on
    /// 2 cores: the consumer thread became the bottleneck, and each lane was woken per event.)
    pub fn ocsf(&self, catalogue: &Catalogue) -> &[u8] {
        self.ocsf.get_or_init(|| ocsf_json(self, catalogue))
    }
}

/// The event as an OCSF object (`audit_core::ocsf`), mapped from a borrowing read of its
/// JSON. An event on the topic that does not read as contract v1 (a newer producer's, say) is
/// not held back: its object is made from the head the forwarder read (id, organization,
/// action, outcome, times, source).
pub fn ocsf_json(event: &ForwardEvent, catalogue: &Catalogue) -> Vec<u8> {
    // The whole event's UTF-8 checked at once is cheaper than string by string (`from_slice`).
    let view = std::str::from_utf8(&event.json)
        .map_err(|error| error.to_string())
        .and_then(|text| {
            serde_json::from_str::<EventView<'_>>(text).map_err(|error| error.to_string())
        });
    match view {
        Ok(view) => ocsf_of_view(&view, event, catalogue),
        Err(error) => {
            tracing::warn!(event_id = %event.id, %error, "event is not contract v1; its OCSF object has the head's fields only");
            ocsf_of_view(&head_only(event), event, catalogue)
        }
    }
}

/// The OCSF object of `event` from a view of all of it (already read), its `received_at` the
/// event's when the view has none.
/// The object is kept with the event while it waits in its lanes, so it is returned at its
/// exact size: written into this thread's scratch buffer (grown once, reused), then copied.
pub fn ocsf_of_view(view: &EventView<'_>, event: &ForwardEvent, catalogue: &Catalogue) -> Vec<u8> {
    SCRATCH.with_borrow_mut(|out| {
        out.clear();
        if view.received_at_ms.is_some() {
            audit_core::ocsf::write_json(view, catalogue, out);
        } else {
            let mut view = view.clone();
            view.received_at_ms = Some(event.received_at_ms);
            audit_core::ocsf::write_json(&view, catalogue, out);
        }
        let object = out.to_vec();
        if out.capacity() > SCRATCH_KEPT {
            // One outsized event does not pin its buffer for the thread's life.
            *out = Vec::new();
        }
        object
    })
}

/// The most a thread keeps of its scratch buffer between objects.
const SCRATCH_KEPT: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn head_only(event: &ForwardEvent) -> EventView<'_> {
    EventView {
        id: Cow::Borrowed(&event.id),
        org_id: Cow::Borrowed(&event.org_id),
        occurred_at_ms: event.occurred_at_ms,
        received_at_ms: Some(event.received_at_ms),
        category: Cow::Borrowed(&event.category),
        action: Cow::Borrowed(&event.action),
        outcome: if event.outcome == "failure" {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        actor: ActorView {
            kind: ActorType::System,
            id: Cow::Borrowed(event.source.as_deref().unwrap_or("unknown")),
            name: None,
            email: None,
        },
        targets: Vec::new(),
        context: Default::default(),
        metadata: Default::default(),
        source: event.source.as_deref().map(Cow::Borrowed),
        version: None,
        provenance: None,
    }
}

fn at_millis(unix_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `1433188255.500`: unix seconds with milliseconds, as Splunk's `time` wants it.
pub fn epoch_seconds_text(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    format!("{seconds}.{millis:03}")
}

/// `2026-11-26T07:04:25.123Z`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    audit_core::event::format_utc_millis(at_millis(unix_ms))
}

/// A synthetic event of the platform's own (built like every `audit_log.*` event, see
/// `audit_core::system`), for tests and the operator's "send a test event" action: sent to a
/// destination directly, never published to the events topic. Metadata values are kept as
/// text.
pub fn synthetic_event(org_id: &str, action: &str, metadata: serde_json::Value) -> ForwardEvent {
    let mut built = SystemEvent::new(org_id, action, audit_core::system::forwarder_actor());
    if let serde_json::Value::Object(entries) = metadata {
        for (key, value) in entries {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            built = built.meta(&key, text);
        }
    }
    let event = built.build(OffsetDateTime::now_utc());
    let json = event.to_json();
    ForwardEvent {
        id: event.id.to_string(),
        occurred_at_ms: event.occurred_at_millis(),
        received_at_ms: event.occurred_at_millis(),
        org_id: event.org_id,
        category: event.category,
        action: event.action,
        outcome: event.outcome.as_str().to_string(),
        source: event.source,
        json: Bytes::from(json),
        ocsf: OnceLock::new(),
    }
}
