//! Splitting a request body into its events without building them.
//!
//! A JSON array is walked element by element: each element is kept as a borrowed slice of
//! the body (checked for syntax, never turned into a `serde_json::Value`), and once
//! `max_events` are kept the rest are only counted. NDJSON is split on line breaks the same
//! way. Each event is parsed later, one at a time, by the validator. So whatever a body looks
//! like (`[{},{},…]`, deep nesting, huge arrays inside one event), the memory a request costs
//! is bounded by the limits — the body size, the event count and the event size — not by its
//! shape.

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{ApiError, ApiResult};

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One event object, or a JSON array of events.
    Json,
    /// One event per line.
    Ndjson,
}

/// The events of a body, each as its raw bytes.
#[derive(Debug)]
pub struct Documents<'a> {
    pub items: Vec<&'a [u8]>,
    /// The body was one event object (not an array, not NDJSON).
    pub single: bool,
}

/// Splits `bytes`; more than `max_events` events is a 413 naming the count, malformed JSON
/// framing a 400. (A malformed NDJSON line is not an error here: it rejects that event only.)
pub fn split(bytes: &[u8], format: BodyFormat, max_events: usize) -> ApiResult<Documents<'_>> {
    let documents = match format {
        BodyFormat::Json => split_json(bytes, max_events)?,
        BodyFormat::Ndjson => split_lines(bytes, max_events)?,
    };
    if documents.items.is_empty() {
        return Err(ApiError::Malformed("the request contains no events".into()));
    }
    Ok(documents)
}

fn too_many(count: usize, max_events: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "{count} events in one request; at most {max_events}"
    ))
}

/// serde_json's nesting limit when it builds values; raw slices are checked against it up
/// front, so that a body too deep to parse is refused whole (400), as a parse would.
const MAX_DEPTH: usize = 128;

/// Whether arrays/objects in `bytes` nest deeper than `limit` (strings skipped).
fn nests_deeper_than(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn split_json(bytes: &[u8], max_events: usize) -> ApiResult<Documents<'_>> {
    let malformed =
        |error: serde_json::Error| ApiError::Malformed(format!("malformed JSON: {error}"));
    // The top-level array counts as one level, as it would in a parse.
    if nests_deeper_than(bytes, MAX_DEPTH) {
        return Err(ApiError::Malformed(format!(
            "malformed JSON: nested deeper than {MAX_DEPTH} levels"
        )));
    }
    match bytes.trim_ascii_start().first() {
        Some(b'[') => {
            let mut deserializer = serde_json::Deserializer::from_slice(bytes);
            let seed = BoundedArray { max_events };
            let array = seed.deserialize(&mut deserializer).map_err(malformed)?;
            deserializer.end().map_err(malformed)?;
            if array.count > max_events {
                return Err(too_many(array.count, max_events));
            }
            Ok(Documents {
                items: array.kept.iter().map(|raw| raw.get().as_bytes()).collect(),
                single: false,
            })
        }
        Some(b'{') => {
            let raw: &RawValue = serde_json::from_slice(bytes).map_err(malformed)?;
            Ok(Documents {
                items: vec![raw.get().as_bytes()],
                single: true,
            })
        }
        _ => {
            serde_json::from_slice::<&RawValue>(bytes).map_err(malformed)?;
            Err(ApiError::Malformed(
                "the body must be an event object or an array of events".into(),
            ))
        }
    }
}

fn split_lines(bytes: &[u8], max_events: usize) -> ApiResult<Documents<'_>> {
    let mut items = Vec::new();
    let mut count = 0usize;
    for line in bytes.split(|byte| *byte == b'\n') {
        if line.trim_ascii().is_empty() {
            continue;
        }
        count += 1;
        if count <= max_events {
            items.push(line);
        }
    }
    if count > max_events {
        return Err(too_many(count, max_events));
    }
    Ok(Documents {
        items,
        single: false,
    })
}

/// The elements of a JSON array: the first `max_events` as raw slices, the rest counted.
struct BoundedArray {
    max_events: usize,
}

struct Counted<'de> {
    kept: Vec<&'de RawValue>,
    count: usize,
}

impl<'de> DeserializeSeed<'de> for BoundedArray {
    type Value = Counted<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedArray {
    type Value = Counted<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        while kept.len() < self.max_events {
            match seq.next_element::<&'de RawValue>()? {
                Some(raw) => kept.push(raw),
                None => {
                    let count = kept.len();
                    return Ok(Counted { kept, count });
                }
            }
        }
        // Over the cap: only count the rest (syntax is still checked, nothing is built).
        let mut count = kept.len();
        while seq.next_element::<IgnoredAny>()?.is_some() {
            count = count
                .checked_add(1)
                .ok_or_else(|| A::Error::custom("too many elements"))?;
        }
        Ok(Counted { kept, count })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_event_an_array_or_lines() {
        let one = split(b" {\"a\":1} ", BodyFormat::Json, 10).unwrap();
        assert!(one.single);
        assert_eq!(one.items, vec![&b"{\"a\":1}"[..]]);
        let two = split(b" [{},{\"b\":[1,2]}]", BodyFormat::Json, 10).unwrap();
        assert!(!two.single);
        assert_eq!(two.items, vec![&b"{}"[..], &b"{\"b\":[1,2]}"[..]]);
        let lines = split(b"{}\n\n{bad\n{}\n", BodyFormat::Ndjson, 10).unwrap();
        assert_eq!(lines.items.len(), 3);
        assert_eq!(lines.items[1], b"{bad");
    }

    #[test]
    fn framing_errors_are_400s() {
        for body in [&b"[{"[..], b"{\"org_id\": ", b"", b"[{}] x", b"\xff\xfe{"] {
            let error = split(body, BodyFormat::Json, 10).unwrap_err();
            assert!(
                matches!(&error, ApiError::Malformed(m) if m.starts_with("malformed JSON")),
                "{body:?}: {error:?}"
            );
        }
        for body in [&b"42"[..], b"\"event\"", b"null"] {
            let error = split(body, BodyFormat::Json, 10).unwrap_err();
            assert!(
                matches!(&error, ApiError::Malformed(m) if m.contains("event object or an array")),
                "{body:?}: {error:?}"
            );
        }
        assert!(matches!(
            split(b"[]", BodyFormat::Json, 10),
            Err(ApiError::Malformed(_))
        ));
        assert!(matches!(
            split(b"\n \n", BodyFormat::Ndjson, 10),
            Err(ApiError::Malformed(_))
        ));
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(matches!(
            split(deep.as_bytes(), BodyFormat::Json, 10),
            Err(ApiError::Malformed(_))
        ));
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!nests_deeper_than(br#"[{"a":"[[[[["}]"#, 2));
        assert!(!nests_deeper_than(br#"[{"a":"\"[[["}]"#, 2));
        assert!(nests_deeper_than(b"[[[]]]", 2));
        assert!(!nests_deeper_than(b"[[]][[]]", 2));
    }

    #[test]
    fn counts_past_the_cap_without_keeping_more() {
        let body = format!("[{}]", vec!["{}"; 1001].join(","));
        match split(body.as_bytes(), BodyFormat::Json, 1000) {
            Err(ApiError::PayloadTooLarge(message)) => {
                assert!(message.contains("1001 events"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let lines = ["{}"; 12].join("\n");
        match split(lines.as_bytes(), BodyFormat::Ndjson, 10) {
            Err(ApiError::PayloadTooLarge(message)) => assert!(message.contains("12 events")),
            other => panic!("{other:?}"),
        }
        let exact = format!("[{}]", vec!["{}"; 1000].join(","));
        assert_eq!(
            split(exact.as_bytes(), BodyFormat::Json, 1000)
                .unwrap()
                .items
                .len(),
            1000
        );
    }

    #[test]
    fn a_malformed_tail_past_the_cap_is_still_a_400() {
        let body = format!("[{},{{", vec!["{}"; 20].join(","));
        assert!(matches!(
            split(body.as_bytes(), BodyFormat::Json, 10),
            Err(ApiError::Malformed(_))
        ));
    }
}
