//! The inputs as JSON (`docs/integrity.md`, "The bundle" and "The digest note"): the bundle
//! served beside an export, and one signed digest (the shape of every digest in the API, the
//! Kafka topic `audit.integrity.v1` and bundles, used for `--head`).
//!
//! Every field is read with its format checked during parsing (hashes, times), so an error
//! names the line and column of the file. Unknown fields are ignored: these are API responses,
//! which may grow. Of a digest, only `note`, `key_id` and `signature` are trusted (after
//! checking); `seq` is read only to label a digest whose note does not parse.

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

use crate::merkle::{Hash, parse_hex};

pub const BUNDLE_FORMAT: &str = "solarius-audit-integrity-bundle/v1";

/// A digest as JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct SignedDigest {
    /// The note text, whose bytes are signed and hashed.
    pub note: String,
    /// The id of the key that signed the note.
    pub key_id: String,
    /// Ed25519 signature over the note bytes, base64.
    pub signature: String,
    /// Repeats the note's `seq`; untrusted.
    #[serde(default)]
    pub seq: Option<u64>,
}

impl SignedDigest {
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// What the auditor checks the export against, besides their own keys.
#[derive(Debug, Clone, Deserialize)]
pub struct Bundle {
    #[serde(deserialize_with = "bundle_format")]
    pub format: String,
    pub org_id: String,
    /// `occurred_at` range of the export, `until` exclusive.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// When the bundle was made: "not sealed recently" is judged against it.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// In `seq` order, without gap, up to the newest digest.
    pub windows: Vec<Window>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Window {
    pub digest: SignedDigest,
    /// The window's leaves in index order.
    pub leaves: Vec<Leaf>,
}

/// One leaf and the key of the row it stands for. Only `leaf` is covered by the signed root:
/// `id` and `occurred_at` are checked against the event wherever the export has it.
#[derive(Debug, Clone, Deserialize)]
pub struct Leaf {
    #[serde(deserialize_with = "hex_hash")]
    pub leaf: Hash,
    pub id: Box<str>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

impl Bundle {
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

fn hex_hash<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse_hex(&text)
        .ok_or_else(|| serde::de::Error::custom("a leaf is not 64 lowercase hex digits"))
}

fn bundle_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let format = String::deserialize(deserializer)?;
    if format != BUNDLE_FORMAT {
        return Err(serde::de::Error::custom(format!(
            "format {format:?} is not {BUNDLE_FORMAT:?}"
        )));
    }
    Ok(format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors;

    fn bundle_json(leaf: &str, format: &str) -> String {
        format!(
            r#"{{"format":"{format}","org_id":"org_acme",
  "since":"2026-12-02T00:00:00.000Z","until":"2026-12-03T00:00:00.000Z",
  "generated_at":"2026-12-02T10:07:12.345Z","extra":1,
  "windows":[{{"digest":{{"org_id":"org_acme","seq":0,"note":{note:?},"key_id":"test","signature":"{sig}","hash":"{hash}"}},
    "leaves":[{{"leaf":"{leaf}","id":"e1","occurred_at":"2026-12-02T10:00:00.000Z"}}]}}]}}"#,
            note = vectors::NOTE,
            sig = vectors::SIGNATURE,
            hash = vectors::DIGEST_HASH,
        )
    }

    #[test]
    fn a_bundle_parses_ignoring_fields_it_does_not_need() {
        let bundle =
            Bundle::from_json(bundle_json(vectors::LEAVES[0], BUNDLE_FORMAT).as_bytes()).unwrap();
        assert_eq!(bundle.org_id, "org_acme");
        assert_eq!(bundle.windows.len(), 1);
        assert_eq!(bundle.windows[0].digest.note, vectors::NOTE);
        assert_eq!(bundle.windows[0].digest.seq, Some(0));
        assert_eq!(&*bundle.windows[0].leaves[0].id, "e1");
    }

    #[test]
    fn a_malformed_leaf_or_format_is_refused_with_its_line() {
        let error = Bundle::from_json(bundle_json("ABC", BUNDLE_FORMAT).as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("not 64 lowercase hex"),
            "{error}"
        );
        assert_eq!(error.line(), 5);
        let error =
            Bundle::from_json(bundle_json(vectors::LEAVES[0], "v0").as_bytes()).unwrap_err();
        assert!(error.to_string().contains("format \"v0\""), "{error}");
        assert_eq!(error.line(), 1);
    }
}
