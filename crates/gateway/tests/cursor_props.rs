//! Property tests of the cursor codec: every cursor it issues decodes back to its position,
//! and any change to a cursor — a character replaced, a character dropped, a truncation
//! anywhere (of the tag too: a cursor whose tag is not the full tag is refused), another
//! organization, another kind, another key — is refused.

#![allow(clippy::unwrap_used)] // tests: unwrap states what must hold

use gateway::read::cursor::{CursorCodec, CursorKind};
use proptest::prelude::*;
use uuid::Uuid;

fn kind() -> impl Strategy<Value = CursorKind> {
    prop_oneof![Just(CursorKind::Page), Just(CursorKind::Feed)]
}

fn other(kind: CursorKind) -> CursorKind {
    match kind {
        CursorKind::Page => CursorKind::Feed,
        CursorKind::Feed => CursorKind::Page,
    }
}

/// The characters a cursor is made of (base64url and the separator), plus a few others.
fn cursor_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/"
                .chars()
                .collect::<Vec<_>>()
        ),
        any::<char>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn issued_cursors_decode_to_their_position(
        key in prop::collection::vec(any::<u8>(), 1..64),
        org in "[A-Za-z0-9][A-Za-z0-9._:-]{0,40}",
        kind in kind(),
        position in any::<i64>(),
        id in any::<u128>(),
    ) {
        let codec = CursorCodec::new(&key);
        let id = Uuid::from_u128(id);
        let cursor = codec.encode(kind, &org, position, id);
        prop_assert_eq!(codec.decode(kind, &org, "cursor", &cursor).unwrap(), (position, id));
        prop_assert!(codec.decode(other(kind), &org, "cursor", &cursor).is_err());
        let other_org = format!("{org}x");
        prop_assert!(codec.decode(kind, &other_org, "cursor", &cursor).is_err());
        let mut other_key = key.clone();
        other_key[0] ^= 1;
        prop_assert!(CursorCodec::new(&other_key).decode(kind, &org, "cursor", &cursor).is_err());
    }

    #[test]
    fn a_replaced_character_is_refused(
        org in "[a-z_]{1,20}",
        kind in kind(),
        position in any::<i64>(),
        id in any::<u128>(),
        at in any::<prop::sample::Index>(),
        replacement in cursor_char(),
    ) {
        let codec = CursorCodec::new(b"property-key");
        let cursor = codec.encode(kind, &org, position, Uuid::from_u128(id));
        let mut chars: Vec<char> = cursor.chars().collect();
        let at = at.index(chars.len());
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let altered: String = chars.into_iter().collect();
        prop_assert!(codec.decode(kind, &org, "cursor", &altered).is_err(), "accepted {altered} (from {cursor})");
    }

    #[test]
    fn a_dropped_character_or_any_truncation_is_refused(
        org in "[a-z_]{1,20}",
        kind in kind(),
        position in any::<i64>(),
        id in any::<u128>(),
        at in any::<prop::sample::Index>(),
    ) {
        let codec = CursorCodec::new(b"property-key");
        let cursor = codec.encode(kind, &org, position, Uuid::from_u128(id));
        let at = at.index(cursor.len());
        let mut dropped = cursor.clone();
        dropped.remove(at);
        prop_assert!(codec.decode(kind, &org, "cursor", &dropped).is_err(), "accepted {dropped} (from {cursor})");
        let truncated = &cursor[..at];
        prop_assert!(codec.decode(kind, &org, "cursor", truncated).is_err(), "accepted {truncated} (from {cursor})");
    }

    #[test]
    fn every_shortened_tag_is_refused(
        org in "[a-z_]{1,20}",
        position in any::<i64>(),
        id in any::<u128>(),
        keep in 0usize..22,
    ) {
        let codec = CursorCodec::new(b"property-key");
        let cursor = codec.encode(CursorKind::Page, &org, position, Uuid::from_u128(id));
        let (payload, tag) = cursor.split_once('.').unwrap();
        let shortened = format!("{payload}.{}", &tag[..keep.min(tag.len().saturating_sub(1))]);
        prop_assert!(codec.decode(CursorKind::Page, &org, "cursor", &shortened).is_err(), "accepted {shortened} (from {cursor})");
    }

    #[test]
    fn arbitrary_text_is_refused_without_panicking(text in ".{0,300}") {
        let codec = CursorCodec::new(b"property-key");
        prop_assert!(codec.decode(CursorKind::Page, "org", "cursor", &text).is_err());
    }
}
