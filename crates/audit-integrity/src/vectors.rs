//! The test vectors of docs/integrity.md (computed with an independent implementation), so the
//! document and this crate cannot drift apart.

use time::macros::datetime;

use crate::keys::SigningKeys;
use crate::merkle::{leaf, root};
use crate::note::{Note, SignedDigest};

const EVENTS: [&str; 3] = [
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_acme","occurred_at":"2026-12-02T10:00:00.000Z","category":"authentication","action":"user.login.succeeded","outcome":"success","actor":{"type":"user","id":"u_1"}}"#,
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000002","org_id":"org_acme","occurred_at":"2026-12-02T10:01:00.000Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_2"}}"#,
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000003","org_id":"org_acme","occurred_at":"2026-12-02T10:02:00.000Z","category":"security","action":"api_key.generated","outcome":"success","actor":{"type":"user","id":"u_1"}}"#,
];

#[test]
fn the_documented_vectors_hold() {
    let leaves: Vec<_> = EVENTS.iter().map(|event| leaf(event.as_bytes())).collect();
    let hex: Vec<String> = leaves.iter().map(hex::encode).collect();
    assert_eq!(
        hex,
        [
            "68aafdc241f4a3f686c1af7718442ee952d3b008c68fe67d1d24cc91bd1f50ed",
            "1146241e3beece3a33df59f76cb033153f65b08793dc480fbdb4025ccd84c763",
            "80159386e4417b1c9580f16d5a37a421c16cf75870b597d77c1013b4d4bd62c3",
        ]
    );
    let window_root = root(&leaves);
    assert_eq!(
        hex::encode(window_root),
        "7cd9a7fbd6c5c159240efe7bc753b4266ff2797ec8fe4a12b48d2162596a2db9"
    );
    let keys = SigningKeys::parse(&["test:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="])
        .expect("test key");
    assert_eq!(
        keys.public_keys().entries(),
        ["test:ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ="]
    );
    let note = Note {
        org_id: "org_acme".into(),
        seq: 0,
        partition: 3,
        offsets: (1200, 1203),
        sealed_at: datetime!(2026-12-02 10:05:00 UTC),
        count: 3,
        root: window_root,
        prev: [0; 32],
        retention_days: 90,
    };
    let signed = SignedDigest::sign(&note, keys.current());
    assert_eq!(
        signed.hash,
        "60279cb1e9eb488cb5ec32a5d12a5055f1715646fc3716068011edcba47d5b16"
    );
    assert_eq!(
        signed.signature,
        "QDRxYqfN8MfnHVHxpp2IE2yxjBn3LSs6/3fPBfFz6SpA1P2/a2AvMPpFjmSWcGhiUvFw+nb7GfH3wJaxHegOAw=="
    );
}
