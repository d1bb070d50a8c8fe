//! The test vectors of `docs/integrity.md` ("Test vectors"), copied from the document: they
//! were computed by an independent implementation (Python), so these tests check this crate
//! against the contract, not against the code that produces digests.

/// The three events, one export line each (no newline).
pub const EVENTS: [&str; 3] = [
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_acme","occurred_at":"2026-12-02T10:00:00.000Z","category":"authentication","action":"user.login.succeeded","outcome":"success","actor":{"type":"user","id":"u_1"}}"#,
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000002","org_id":"org_acme","occurred_at":"2026-12-02T10:01:00.000Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_2"}}"#,
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000003","org_id":"org_acme","occurred_at":"2026-12-02T10:02:00.000Z","category":"security","action":"api_key.generated","outcome":"success","actor":{"type":"user","id":"u_1"}}"#,
];

/// Their leaves, in order.
pub const LEAVES: [&str; 3] = [
    "68aafdc241f4a3f686c1af7718442ee952d3b008c68fe67d1d24cc91bd1f50ed",
    "1146241e3beece3a33df59f76cb033153f65b08793dc480fbdb4025ccd84c763",
    "80159386e4417b1c9580f16d5a37a421c16cf75870b597d77c1013b4d4bd62c3",
];

pub const ROOT: &str = "7cd9a7fbd6c5c159240efe7bc753b4266ff2797ec8fe4a12b48d2162596a2db9";
pub const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The test key: the bytes 1…32 as the seed.
pub const SEED: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
pub const PUBLIC_KEY: &str = "ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ=";
pub const KEY_ID: &str = "test";

/// The note of the window of the three events (seq 0).
pub const NOTE: &str = "solarius-audit-digest/v1\n\
org: org_acme\n\
seq: 0\n\
partition: 3\n\
offsets: 1200 1203\n\
sealed_at: 2026-12-02T10:05:00.000Z\n\
count: 3\n\
root: 7cd9a7fbd6c5c159240efe7bc753b4266ff2797ec8fe4a12b48d2162596a2db9\n\
prev: 0000000000000000000000000000000000000000000000000000000000000000\n\
retention_days: 90\n";

pub const DIGEST_HASH: &str = "60279cb1e9eb488cb5ec32a5d12a5055f1715646fc3716068011edcba47d5b16";
pub const SIGNATURE: &str =
    "QDRxYqfN8MfnHVHxpp2IE2yxjBn3LSs6/3fPBfFz6SpA1P2/a2AvMPpFjmSWcGhiUvFw+nb7GfH3wJaxHegOAw==";
