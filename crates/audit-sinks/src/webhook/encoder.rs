//! Events → the receiver's JSON array, byte for byte as they are on the topic (or as OCSF
//! objects in that format).

use crate::Payload;

/// The event's canonical JSON, unchanged (its `id` lets receivers deduplicate per event), or
/// its OCSF object (`metadata.uid` is the id).
pub fn encode(payload: Payload<'_>) -> Vec<u8> {
    payload.json.to_vec()
}

pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    crate::json_array(parts)
}

/// The length of [`frame`] of `count` parts totalling `bytes`: `[a,b]`.
pub fn framed_len(bytes: usize, count: usize) -> usize {
    crate::json_array_len(bytes, count)
}
