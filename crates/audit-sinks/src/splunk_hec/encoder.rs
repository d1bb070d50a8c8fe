//! Events → HEC envelopes; envelopes → a request body (concatenated, no separators).

use crate::Payload;
use crate::event::{ForwardEvent, epoch_seconds_text};

use super::config::HecConfig;

/// `{"time":…,"host":…,"source":…,"sourcetype":…,"index":…,"fields":{…},"event":{…}}`, the
/// payload (native or OCSF) as `event`.
pub fn encode(config: &HecConfig, event: &ForwardEvent, payload: Payload<'_>) -> Vec<u8> {
    let time = epoch_seconds_text(event.occurred_at_ms);
    let category = serde_json::to_string(&event.category).unwrap_or_default();
    let action = serde_json::to_string(&event.action).unwrap_or_default();
    let mut out = Vec::with_capacity(
        payload.json.len() + config.envelope_middle.len() + category.len() + action.len() + 64,
    );
    out.extend_from_slice(b"{\"time\":");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(config.envelope_middle.as_bytes());
    out.extend_from_slice(b",\"category\":");
    out.extend_from_slice(category.as_bytes());
    out.extend_from_slice(b",\"action\":");
    out.extend_from_slice(action.as_bytes());
    out.extend_from_slice(b"},\"event\":");
    out.extend_from_slice(payload.json);
    out.push(b'}');
    out
}

/// Envelopes back to back, as HEC batches them.
pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The length of [`frame`] of `count` parts totalling `bytes`.
pub fn framed_len(bytes: usize, _count: usize) -> usize {
    bytes
}
