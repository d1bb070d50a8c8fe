//! Opaque, signed cursors. A cursor is `base64url(position) . base64url(HMAC)`, the MAC
//! binding it to its kind and organization: a forged or altered cursor is a 400, and a cursor
//! of one organization is useless in another. The tag is the first [`TAG_BYTES`] bytes of the
//! HMAC and must be given whole: a shorter tag is refused (a one-byte tag would let one forged
//! cursor in 256 through).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::ApiError;

/// Which listing a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    /// Newest-first list, by `occurred_at`.
    Page,
    /// Arrival-ordered feed, by `indexed_at`.
    Feed,
}

impl CursorKind {
    fn tag(self) -> &'static str {
        match self {
            CursorKind::Page => "page",
            CursorKind::Feed => "feed",
        }
    }
}

/// Bytes of the HMAC kept in a cursor (128 bits).
pub const TAG_BYTES: usize = 16;

/// Signs and checks cursors with one key.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec")
    }
}

impl CursorCodec {
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, kind: CursorKind, org_id: &str, payload: &str) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(kind.tag().as_bytes());
        mac.update(&[0]);
        mac.update(org_id.as_bytes());
        mac.update(&[0]);
        mac.update(payload.as_bytes());
        mac
    }

    pub fn encode(&self, kind: CursorKind, org_id: &str, position_ms: i64, id: Uuid) -> String {
        let payload = format!("{position_ms}:{id}");
        let tag = self.mac(kind, org_id, &payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(&tag[..TAG_BYTES])
        )
    }

    pub fn decode(
        &self,
        kind: CursorKind,
        org_id: &str,
        param: &str,
        cursor: &str,
    ) -> Result<(i64, Uuid), ApiError> {
        let invalid = || {
            ApiError::bad_request(
                param,
                "invalid cursor (use the next_cursor value of a previous response)",
            )
        };
        if cursor.len() > 256 {
            return Err(invalid());
        }
        let (payload, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let payload = String::from_utf8(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        if tag.len() != TAG_BYTES {
            return Err(invalid());
        }
        // Constant-time comparison of the leftmost TAG_BYTES bytes, all of them given.
        self.mac(kind, org_id, &payload)
            .verify_truncated_left(&tag)
            .map_err(|_| invalid())?;
        let (position, id) = payload.split_once(':').ok_or_else(invalid)?;
        let position = position.parse::<i64>().map_err(|_| invalid())?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok((position, id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trip_and_forgery() {
        let codec = CursorCodec::new(b"k");
        let id = Uuid::now_v7();
        let cursor = codec.encode(CursorKind::Page, "org_a", 1_764_000_000_123, id);
        assert_eq!(
            codec
                .decode(CursorKind::Page, "org_a", "cursor", &cursor)
                .expect("valid"),
            (1_764_000_000_123, id)
        );
        assert!(
            codec
                .decode(CursorKind::Page, "org_b", "cursor", &cursor)
                .is_err(),
            "other organization"
        );
        assert!(
            codec
                .decode(CursorKind::Feed, "org_a", "cursor", &cursor)
                .is_err(),
            "other kind"
        );
        assert!(
            CursorCodec::new(b"other")
                .decode(CursorKind::Page, "org_a", "cursor", &cursor)
                .is_err()
        );
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(format!("0:{id}")),
            cursor.split_once('.').map(|(_, t)| t).unwrap_or("")
        );
        assert!(
            codec
                .decode(CursorKind::Page, "org_a", "cursor", &forged)
                .is_err()
        );
        // Truncated tags of every length are refused, even when they are a prefix of the
        // right one (the forgery of issue 14: a one-byte tag matched 1 time in 256).
        let (payload, tag) = cursor.split_once('.').expect("dot");
        let tag = URL_SAFE_NO_PAD.decode(tag).expect("tag");
        assert_eq!(tag.len(), TAG_BYTES);
        for length in 0..TAG_BYTES {
            let truncated = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag[..length]));
            assert!(
                codec
                    .decode(CursorKind::Page, "org_a", "cursor", &truncated)
                    .is_err(),
                "a {length}-byte prefix of the right tag"
            );
        }
        // Longer than the tag (the full HMAC, or the tag plus junk) is refused too.
        let full = codec
            .mac(
                CursorKind::Page,
                "org_a",
                &String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("payload"))
                    .expect("utf-8"),
            )
            .finalize()
            .into_bytes();
        let longer = format!("{payload}.{}", URL_SAFE_NO_PAD.encode(full));
        assert!(
            codec
                .decode(CursorKind::Page, "org_a", "cursor", &longer)
                .is_err()
        );
        // Every one-byte tag for a forged position: none passes.
        let forged_payload = URL_SAFE_NO_PAD.encode(format!("0:{id}"));
        for byte in 0..=255u8 {
            let one_byte = format!("{forged_payload}.{}", URL_SAFE_NO_PAD.encode([byte]));
            assert!(
                codec
                    .decode(CursorKind::Page, "org_a", "cursor", &one_byte)
                    .is_err()
            );
        }
        for junk in ["", ".", "abc", "a.b.c", "%%%", &"x".repeat(1000)] {
            assert!(
                codec
                    .decode(CursorKind::Page, "org_a", "cursor", junk)
                    .is_err(),
                "{junk}"
            );
        }
    }
}
