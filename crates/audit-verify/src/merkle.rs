//! Leaves and window roots, as `docs/integrity.md` defines them.
//!
//! * leaf of an event: `SHA-256(0x00 || event bytes)`, over the bytes exactly as received;
//! * root of a window: the RFC 6962 §2.1 Merkle Tree Hash of its leaves, in order; the empty
//!   window's root is `SHA-256()` and a single leaf is its own root (the `0x00` prefix is
//!   applied once, in the leaf).

use sha2::{Digest, Sha256};

/// A SHA-256 output.
pub type Hash = [u8; 32];

/// Hashes one event's bytes into its leaf incrementally, so that a line longer than what the
/// verifier keeps in memory still gets its leaf.
pub struct LeafHasher(Sha256);

impl LeafHasher {
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update([0x00]);
        Self(hasher)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> Hash {
        self.0.finalize().into()
    }
}

impl Default for LeafHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The leaf of one event: `SHA-256(0x00 || event_bytes)`.
pub fn leaf_hash(event_bytes: &[u8]) -> Hash {
    let mut hasher = LeafHasher::new();
    hasher.update(event_bytes);
    hasher.finish()
}

/// `MTH(D[n])` of RFC 6962 §2.1 over leaves that are already leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [single] => *single,
        _ => {
            let split = largest_power_of_two_below(leaves.len());
            let (left, right) = leaves.split_at(split);
            interior_node(&root(left), &root(right))
        }
    }
}

/// `SHA-256(0x01 || left || right)`.
fn interior_node(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn largest_power_of_two_below(n: usize) -> usize {
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Lowercase hex, the only spelling the format uses.
pub fn to_hex(hash: &Hash) -> String {
    hex::encode(hash)
}

/// Parses exactly 64 lowercase hex digits.
pub fn parse_hex(text: &str) -> Option<Hash> {
    let canonical = text.len() == 64
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
    if !canonical {
        return None;
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok()?;
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors;

    #[test]
    fn leaves_of_the_documented_events_match_the_vectors() {
        for (event, expected) in vectors::EVENTS.iter().zip(vectors::LEAVES) {
            assert_eq!(to_hex(&leaf_hash(event.as_bytes())), expected);
        }
    }

    #[test]
    fn incremental_leaf_equals_one_shot_leaf() {
        let event = vectors::EVENTS[0].as_bytes();
        let mut hasher = LeafHasher::new();
        for chunk in event.chunks(7) {
            hasher.update(chunk);
        }
        assert_eq!(hasher.finish(), leaf_hash(event));
    }

    #[test]
    fn window_root_of_the_documented_events_matches_the_vector() {
        let leaves: Vec<Hash> = vectors::EVENTS
            .iter()
            .map(|event| leaf_hash(event.as_bytes()))
            .collect();
        assert_eq!(to_hex(&root(&leaves)), vectors::ROOT);
    }

    #[test]
    fn empty_window_root_is_the_hash_of_nothing() {
        assert_eq!(to_hex(&root(&[])), vectors::EMPTY_ROOT);
    }

    #[test]
    fn one_leaf_is_its_own_root_and_three_split_two_then_one() {
        let [a, b, c] = [[1u8; 32], [2u8; 32], [3u8; 32]];
        assert_eq!(root(&[a]), a);
        let expected = interior_node(&interior_node(&a, &b), &c);
        assert_eq!(root(&[a, b, c]), expected);
    }

    #[test]
    fn split_points_are_the_largest_power_of_two_below() {
        let splits: Vec<usize> = (2..=9).map(largest_power_of_two_below).collect();
        assert_eq!(splits, [1, 2, 2, 4, 4, 4, 4, 8]);
    }

    #[test]
    fn only_lowercase_64_digit_hex_parses() {
        let lower = "ab".repeat(32);
        assert_eq!(parse_hex(&lower), Some([0xab; 32]));
        assert_eq!(parse_hex(&lower.to_uppercase()), None);
        assert_eq!(parse_hex(&lower[2..]), None);
        assert_eq!(parse_hex(&format!("{}zz", &lower[2..])), None);
    }
}
