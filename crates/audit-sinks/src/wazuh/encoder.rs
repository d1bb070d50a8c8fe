//! Events → Wazuh event strings; strings → `{"events":[…]}`.

use crate::Payload;

/// The JSON string (quoted, escaped) of `{"integration":"solarius-audit-log","audit":<event>}`
/// (`"ocsf":<object>` in the OCSF format).
pub fn encode(payload: Payload<'_>) -> Vec<u8> {
    let mut inner = Vec::with_capacity(payload.json.len() + 48);
    inner.extend_from_slice(b"{\"integration\":\"solarius-audit-log\",\"");
    inner.extend_from_slice(payload.key.as_bytes());
    inner.extend_from_slice(b"\":");
    inner.extend_from_slice(payload.json);
    inner.push(b'}');
    // The event JSON is UTF-8 (it came from a JSON parser), so this is lossless.
    let text = String::from_utf8_lossy(&inner);
    serde_json::to_vec(text.as_ref()).unwrap_or_default()
}

/// What opens the request body.
const EVENTS_OPEN: &[u8] = b"{\"events\":";

pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let array = crate::json_array(parts);
    let mut body = Vec::with_capacity(EVENTS_OPEN.len() + array.len() + 1);
    body.extend_from_slice(EVENTS_OPEN);
    body.extend_from_slice(&array);
    body.push(b'}');
    body
}

/// The length of [`frame`] of `count` parts totalling `bytes`: `{"events":[a,b]}`.
pub fn framed_len(bytes: usize, count: usize) -> usize {
    EVENTS_OPEN.len() + crate::json_array_len(bytes, count) + 1
}
