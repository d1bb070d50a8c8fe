//! Events → Datadog log objects; log objects → a (gzip) JSON array.

use std::io::Write;

use crate::Payload;
use crate::event::ForwardEvent;

use super::config::{DatadogConfig, tag_value};

/// One log object with the reserved attributes mapped and the event under `audit` (native) or
/// `ocsf`.
pub fn encode(config: &DatadogConfig, event: &ForwardEvent, payload: Payload<'_>) -> Vec<u8> {
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    let tags = format!(
        "{},category:{},action:{},outcome:{}",
        config.base_tags,
        tag_value(&event.category),
        tag_value(&event.action),
        tag_value(&event.outcome)
    );
    let status = if event.outcome == "failure" {
        "warn"
    } else {
        "info"
    };
    let hostname = event.source.as_deref().unwrap_or(&config.default_hostname);
    let message = format!("{} ({})", event.action, event.outcome);
    let mut out = Vec::with_capacity(payload.json.len() + 320);
    out.push(b'{');
    out.extend_from_slice(config.source_and_service.as_bytes());
    out.extend_from_slice(b",\"ddtags\":");
    out.extend_from_slice(quote(&tags).as_bytes());
    out.extend_from_slice(b",\"hostname\":");
    out.extend_from_slice(quote(hostname).as_bytes());
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(status.as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":");
    out.extend_from_slice(event.occurred_at_ms.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    out.extend_from_slice(quote(&message).as_bytes());
    out.extend_from_slice(b",\"evt\":{\"name\":");
    out.extend_from_slice(quote(&event.action).as_bytes());
    out.extend_from_slice(b",\"outcome\":");
    out.extend_from_slice(quote(&event.outcome).as_bytes());
    out.extend_from_slice(b"},\"");
    out.extend_from_slice(payload.key.as_bytes());
    out.extend_from_slice(b"\":");
    out.extend_from_slice(payload.json);
    out.push(b'}');
    out
}

/// The request body: a JSON array, gzip-compressed at `level` when given.
pub fn frame(parts: &[&[u8]], gzip_level: Option<u32>) -> Vec<u8> {
    let array = crate::json_array(parts);
    let Some(level) = gzip_level else {
        return array;
    };
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(array.len() / 4),
        flate2::Compression::new(level),
    );
    // Writing into a Vec cannot fail.
    if encoder.write_all(&array).is_err() {
        return array;
    }
    encoder.finish().unwrap_or(array)
}

/// The length of [`frame`] of `count` parts totalling `bytes`, before compression: `[a,b]`.
pub fn framed_len(bytes: usize, count: usize) -> usize {
    crate::json_array_len(bytes, count)
}
