//! Events → the receiver's JSON array, byte for byte as they are on the topic.

use crate::event::ForwardEvent;

/// The event's canonical JSON, unchanged (its `id` lets receivers deduplicate per event).
pub fn encode(event: &ForwardEvent) -> Vec<u8> {
    event.json.to_vec()
}

pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    crate::sinks::json_array(parts)
}
