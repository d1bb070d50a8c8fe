//! The tamper-evidence routes' response bodies as OpenAPI schemas (docs/integrity.md).
//!
//! The bodies are built from `audit_integrity` types, which know nothing of OpenAPI; the
//! shapes are described here and the Schemathesis suite (tests/tests/openapi.rs) checks every
//! response against them.

#![allow(dead_code)] // schema descriptions: read by the OpenAPI derive, never constructed

use utoipa::{IntoParams, ToSchema};

/// `since`/`until` of the integrity routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Start of the range (RFC 3339 with a zone); default: 24 hours before `until`.
    #[param(format = DateTime)]
    since: Option<String>,
    /// End of the range, exclusive (RFC 3339 with a zone); default: now.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// A public key digests are signed with.
#[derive(ToSchema)]
pub struct PublishedKey {
    key_id: String,
    /// `ed25519`.
    algorithm: String,
    /// Base64 of the 32-byte public key.
    public_key: String,
}

#[derive(ToSchema)]
pub struct PublishedKeys {
    keys: Vec<PublishedKey>,
}

/// A signed digest of one window of an organization's log (a signed note).
#[derive(ToSchema)]
pub struct SignedDigest {
    org_id: String,
    seq: u64,
    /// The signed text: organization, window, tree size, root, previous digest.
    note: String,
    key_id: String,
    /// Base64 of the 64-byte Ed25519 signature over `note`.
    signature: String,
    /// Hex SHA-256 of `note`: the next digest's `prev`.
    hash: String,
}

#[derive(ToSchema)]
pub struct DigestList {
    org_id: String,
    digests: Vec<SignedDigest>,
}

/// That an event is in a sealed window: its leaf, audit path and the window's digest.
#[derive(ToSchema)]
pub struct InclusionProof {
    #[schema(format = "uuid")]
    event_id: String,
    /// Hex SHA-256 leaf hash of the event's stored bytes.
    leaf: String,
    leaf_index: u64,
    tree_size: u64,
    /// Hex sibling hashes from the leaf to the root.
    audit_path: Vec<String>,
    digest: SignedDigest,
}

/// Something verification found wrong.
#[derive(ToSchema)]
pub struct Finding {
    /// `bad_digest`, `broken_chain`, `leaves_altered`, `altered`, `inserted`, `duplicated`,
    /// `deleted`, `truncated`, `not_sealed_recently`, …
    kind: String,
    seq: Option<u64>,
    event_id: Option<String>,
    detail: String,
}

/// The verdict for the events that occurred in the range.
#[derive(ToSchema)]
pub struct Verdict {
    org_id: String,
    #[schema(format = DateTime)]
    since: String,
    #[schema(format = DateTime)]
    until: String,
    /// `intact`, `problems`, or `not_yet_sealed` (intact so far, newest events not sealed).
    #[schema(pattern = "^(intact|problems|not_yet_sealed)$")]
    state: String,
    /// Whether the newest digest was compared with the one published outside the store.
    head_confirmed: bool,
    intact: bool,
    windows: u64,
    leaves: u64,
    events: u64,
    /// Leaves in the range whose events were removed by retention.
    expired_by_retention: u64,
    /// `sealed_at` of the newest digest checked.
    #[schema(format = DateTime)]
    sealed_until: Option<String>,
    findings: Vec<Finding>,
}

#[derive(ToSchema)]
pub struct BundleLeaf {
    leaf: String,
    id: String,
    occurred_at: String,
}

#[derive(ToSchema)]
pub struct BundleWindow {
    digest: SignedDigest,
    leaves: Vec<BundleLeaf>,
}

/// What `audit-verify` needs to verify an export offline.
#[derive(ToSchema)]
pub struct Bundle {
    /// `solarius-audit-integrity-bundle/v1`.
    format: String,
    org_id: String,
    since: String,
    until: String,
    generated_at: String,
    windows: Vec<BundleWindow>,
}
