use audit_integrity::leaf;

use super::*;

fn digest(org: &str, seq: u64, hash: &str) -> DigestRow {
    DigestRow {
        org_id: org.into(),
        seq,
        partition: 0,
        first_offset: 0,
        end_offset: 10,
        sealed_at: OffsetDateTime::UNIX_EPOCH,
        count: 0,
        retention_days: 30,
        hash: hash.into(),
        note: String::new(),
        key_id: "k".into(),
        signature: String::new(),
    }
}

fn open(offset: i64, bytes: &[u8]) -> OpenLeaf {
    let key = RowKey {
        id: uuid::Uuid::from_u128(offset as u128),
        occurred_at: OffsetDateTime::UNIX_EPOCH,
    };
    OpenLeaf::new(offset, leaf(bytes), key)
}

#[test]
fn each_window_is_one_row_of_its_leaves_in_order_under_its_digest() {
    let sealed = |opens: &[OpenLeaf]| opens.iter().map(OpenLeaf::sealed).collect::<Vec<_>>();
    let seal = Seal {
        end: 10,
        sealed_at: OffsetDateTime::UNIX_EPOCH,
        digests: vec![digest("org_a", 3, "aa"), digest("org_b", 0, "bb")],
        leaves: vec![
            sealed(&[open(1, b"x"), open(4, b"y")]),
            sealed(&[open(2, b"z")]),
        ],
        heads: Vec::new(),
    };
    let rows: Vec<_> = seal
        .window_rows()
        .map(|row| {
            let leaves: Vec<_> = row
                .leaves()
                .iter()
                .map(|leaf| (leaf.leaf, leaf.id))
                .collect();
            (row.org_id, row.seq, row.digest_hash, leaves)
        })
        .collect();
    let id = uuid::Uuid::from_u128;
    assert_eq!(
        rows,
        vec![
            (
                "org_a",
                3,
                "aa",
                vec![(leaf(b"x"), id(1)), (leaf(b"y"), id(4))]
            ),
            ("org_b", 0, "bb", vec![(leaf(b"z"), id(2))]),
        ]
    );
    assert_eq!(seal.leaf_count(), 3);
}

#[test]
fn the_longest_note_is_recorded_whole() {
    let note = audit_integrity::note::Note {
        org_id: "o".repeat(128),
        seq: u64::MAX,
        partition: i32::MIN,
        offsets: (i64::MIN, i64::MIN),
        sealed_at: OffsetDateTime::UNIX_EPOCH,
        count: u64::MAX,
        root: [0xff; 32],
        prev: [0xff; 32],
        retention_days: u16::MAX,
    };
    let mut row = digest("org_a", 1, "aa");
    row.note = note.render();
    let event = sealed_event(&row);
    assert_eq!(event.metadata["note"].to_text(), row.note);
}
