//! The digest note: the signed text of one window of one organization (docs/integrity.md,
//! "The digest note"), its parsing, signing and checking.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

use crate::keys::{PublicKeys, SigningKey};
use crate::merkle::Hash;
use crate::{Error, Result};

/// The first line of every note.
pub const NOTE_HEADER: &str = "solarius-audit-digest/v1";

/// What a note says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub org_id: String,
    pub seq: u64,
    pub partition: i32,
    /// `[first, end)` offsets of the partition covered by the window.
    pub offsets: (i64, i64),
    pub sealed_at: OffsetDateTime,
    pub count: u64,
    pub root: Hash,
    /// The digest hash of `seq - 1` (zeros for seq 0).
    pub prev: Hash,
    pub retention_days: u16,
}

impl Note {
    /// The exact bytes that are hashed and signed.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(400);
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{NOTE_HEADER}\norg: {}\nseq: {}\npartition: {}\noffsets: {} {}\nsealed_at: {}\ncount: {}\nroot: {}\nprev: {}\nretention_days: {}\n",
            self.org_id,
            self.seq,
            self.partition,
            self.offsets.0,
            self.offsets.1,
            format_time(self.sealed_at),
            self.count,
            hex::encode(self.root),
            hex::encode(self.prev),
            self.retention_days,
        );
        text
    }

    /// Parses a note; anything but the exact layout is refused.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::Note(why.to_string());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("a note ends with a newline"))?;
        let mut lines = body.split('\n');
        if lines.next() != Some(NOTE_HEADER) {
            return Err(bad("unknown note format"));
        }
        let mut field = |name: &str| -> Result<String> {
            let line = lines
                .next()
                .ok_or_else(|| Error::Note(format!("missing `{name}`")))?;
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(str::to_string)
                .ok_or_else(|| Error::Note(format!("expected `{name}: …`, found `{line}`")))
        };
        let number = |name: &str, value: String| -> Result<i64> {
            value
                .parse()
                .map_err(|_| Error::Note(format!("`{name}` is not a number")))
        };
        let org_id = field("org")?;
        let seq = number("seq", field("seq")?)?;
        let partition = number("partition", field("partition")?)?;
        let offsets = field("offsets")?;
        let (first, end) = offsets
            .split_once(' ')
            .ok_or_else(|| bad("`offsets` needs two numbers"))?;
        let sealed_at = parse_time(&field("sealed_at")?)?;
        let count = number("count", field("count")?)?;
        let root = parse_hash(&field("root")?)?;
        let prev = parse_hash(&field("prev")?)?;
        let retention_days = number("retention_days", field("retention_days")?)?;
        if lines.next().is_some() {
            return Err(bad("unexpected lines after `retention_days`"));
        }
        let note = Self {
            org_id,
            seq: u64::try_from(seq).map_err(|_| bad("negative `seq`"))?,
            partition: i32::try_from(partition).map_err(|_| bad("`partition` out of range"))?,
            offsets: (
                number("offsets", first.to_string())?,
                number("offsets", end.to_string())?,
            ),
            sealed_at,
            count: u64::try_from(count).map_err(|_| bad("negative `count`"))?,
            root,
            prev,
            retention_days: u16::try_from(retention_days)
                .map_err(|_| bad("`retention_days` out of range"))?,
        };
        // Canonical form only: the signed bytes are the rendering.
        if note.render() != text {
            return Err(bad("not in canonical form"));
        }
        Ok(note)
    }
}

/// A signed note, as published (API, Kafka topic, bundles).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDigest {
    pub org_id: String,
    pub seq: u64,
    pub note: String,
    pub key_id: String,
    /// Base64 of the 64-byte Ed25519 signature over `note`.
    pub signature: String,
    /// Hex SHA-256 of `note`: the next digest's `prev`.
    pub hash: String,
}

impl SignedDigest {
    /// Signs a note.
    pub fn sign(note: &Note, key: &SigningKey) -> Self {
        let text = note.render();
        let signature = key.key.sign(text.as_bytes());
        Self {
            org_id: note.org_id.clone(),
            seq: note.seq,
            hash: hex::encode(digest_hash(&text)),
            signature: STANDARD.encode(signature.to_bytes()),
            key_id: key.key_id.clone(),
            note: text,
        }
    }

    /// Checks the signature under the published keys and parses the note.
    pub fn verify(&self, keys: &PublicKeys) -> Result<Note> {
        let key = keys
            .get(&self.key_id)
            .ok_or_else(|| Error::Signature(format!("unknown key id `{}`", self.key_id)))?;
        let bytes = STANDARD
            .decode(&self.signature)
            .map_err(|_| Error::Signature("signature is not base64".into()))?;
        let signature = Signature::from_slice(&bytes)
            .map_err(|_| Error::Signature("signature is not 64 bytes".into()))?;
        key.verify(self.note.as_bytes(), &signature).map_err(|_| {
            Error::Signature(format!("does not verify under key `{}`", self.key_id))
        })?;
        Note::parse(&self.note)
    }
}

/// `SHA-256(note bytes)`.
pub fn digest_hash(note: &str) -> Hash {
    Sha256::digest(note.as_bytes()).into()
}

pub fn format_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

fn parse_time(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| Error::Note(format!("`{text}` is not an RFC 3339 time")))
}

pub fn parse_hash(text: &str) -> Result<Hash> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash)
        .map_err(|_| Error::Note(format!("`{text}` is not 64 hex digits")))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKeys;
    use time::macros::datetime;

    pub(crate) fn sample() -> Note {
        Note {
            org_id: "org_acme".into(),
            seq: 42,
            partition: 3,
            offsets: (1200, 1850),
            sealed_at: datetime!(2026-12-02 10:05:00 UTC),
            count: 17,
            root: [0xab; 32],
            prev: [0; 32],
            retention_days: 90,
        }
    }

    #[test]
    fn notes_render_and_parse_canonically() {
        let note = sample();
        let text = note.render();
        assert!(
            text.starts_with("solarius-audit-digest/v1\norg: org_acme\nseq: 42\n"),
            "{text}"
        );
        assert!(text.contains("\nsealed_at: 2026-12-02T10:05:00.000Z\n"));
        assert_eq!(Note::parse(&text).expect("parses"), note);
        for broken in [
            text.replace("seq: 42", "seq:  42"),
            text.trim_end().to_string(),
            text.replace("2026-12-02T10:05:00.000Z", "2026-12-02T11:05:00+01:00"),
            format!("{text}extra: 1\n"),
            text.replace("org: org_acme\n", ""),
        ] {
            assert!(Note::parse(&broken).is_err(), "{broken}");
        }
    }

    #[test]
    fn signed_digests_verify_only_unchanged_and_under_a_published_key() {
        let keys =
            SigningKeys::parse(&["k1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="]).expect("keys");
        let signed = SignedDigest::sign(&sample(), keys.current());
        let public = keys.public_keys();
        assert_eq!(signed.verify(&public).expect("verifies"), sample());
        assert_eq!(signed.hash, hex::encode(digest_hash(&signed.note)));

        let mut tampered = signed.clone();
        tampered.note = tampered.note.replace("count: 17", "count: 16");
        assert!(tampered.verify(&public).is_err());
        let mut unknown = signed.clone();
        unknown.key_id = "k2".into();
        assert!(unknown.verify(&public).is_err());
    }
}
