//! Leaves and RFC 6962 Merkle trees over them (docs/integrity.md, "Building blocks").

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The leaf of an event: `SHA-256(0x00 || event_bytes)`, over the exact canonical bytes.
pub fn leaf(event_bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(event_bytes);
    hasher.finalize().into()
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// RFC 6962 Merkle Tree Hash of leaf hashes (`SHA-256()` for none).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [only] => *only,
        _ => {
            let k = split(leaves.len());
            node(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 audit path of leaf `index`, from the leaf up. `None` if out of range.
pub fn audit_path(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    collect_path(leaves, index, &mut path);
    Some(path)
}

fn collect_path(leaves: &[Hash], index: usize, path: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    if index < k {
        collect_path(&leaves[..k], index, path);
        path.push(root(&leaves[k..]));
    } else {
        collect_path(&leaves[k..], index - k, path);
        path.push(root(&leaves[..k]));
    }
}

/// Checks an audit path (RFC 9162 §2.1.3.2): does `leaf` at `index` of a tree of `size` leaves
/// hash up to `expected_root`?
pub fn verify_path(
    leaf: &Hash,
    index: usize,
    size: usize,
    path: &[Hash],
    expected_root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut hash = *leaf;
    for sibling in path {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            hash = node(sibling, &hash);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            hash = node(&hash, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &hash == expected_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf(format!("{{\"n\":{i}}}").as_bytes()))
            .collect()
    }

    #[test]
    fn empty_and_single_trees_follow_rfc_6962() {
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let one = leaves(1);
        assert_eq!(root(&one), one[0]);
    }

    #[test]
    fn the_root_splits_at_the_largest_power_of_two() {
        let l = leaves(3);
        assert_eq!(root(&l), node(&node(&l[0], &l[1]), &l[2]));
        let l = leaves(5);
        let left = node(&node(&l[0], &l[1]), &node(&l[2], &l[3]));
        assert_eq!(root(&l), node(&left, &l[4]));
    }

    #[test]
    fn every_audit_path_verifies_and_no_other_leaf_or_index_does() {
        for size in 1..=17 {
            let l = leaves(size);
            let expected = root(&l);
            for index in 0..size {
                let path = audit_path(&l, index).expect("in range");
                assert!(
                    verify_path(&l[index], index, size, &path, &expected),
                    "{size}/{index}"
                );
                let other = leaf(b"forged");
                assert!(!verify_path(&other, index, size, &path, &expected));
                if size > 1 {
                    assert!(!verify_path(
                        &l[index],
                        (index + 1) % size,
                        size,
                        &path,
                        &expected
                    ));
                }
            }
            assert!(audit_path(&l, size).is_none());
        }
    }

    #[test]
    fn reordering_leaves_changes_the_root() {
        let mut l = leaves(4);
        let before = root(&l);
        l.swap(1, 2);
        assert_ne!(root(&l), before);
    }
}
