//! Integrity tags on the events topic: proof that a message was written by the platform.
//!
//! Anyone allowed to produce to the events topic can write any bytes and any header, so a
//! consumer must not take a message's word for where it came from. The services share a key
//! that producers never hold (`[topics] integrity_key`) and tag what they write with
//! `audit-integrity: v3=<signer>.<tag>`, an HMAC-SHA256 of the message value's leaf
//! (`SHA-256(0x00 || value)`, [`audit_integrity::leaf`]: the leaf the indexer seals the stored
//! event under, docs/integrity.md), domain-separated by signer:
//!
//! | signer | who | what it proves |
//! |---|---|---|
//! | `gateway` | the gateway's ingest API | validated, `source` = the authenticated producer key, `received_at` = the gateway's clock |
//! | `system` | the gateway's and forwarder's own records (reads, exports, settings changes, pauses) | written by the audit-log service itself |
//!
//! The tag covers the leaf rather than the value so that one pass over the bytes both checks
//! the tag and gives the leaf to seal (HMAC of a collision-resistant hash of the value
//! authenticates the value). A tag of one signer never verifies as the other's (the signer is
//! part of the MAC input), so a gateway-validated event cannot be passed off as a system
//! event. A consumer that verifies a tag decodes the canonical event directly after checking
//! that the event says what the tag says ([`check_tagged`]: its `provenance`, and internal
//! categories only from `system`); every other message (no tag, a forged tag, an older `v1=`
//! tag) goes through the full validator as a direct producer's, which refuses internal
//! categories. The previous version's `v2=` tags (an HMAC of the value itself) still verify,
//! so what was in flight during an upgrade keeps its provenance: upgrade the consumers
//! (indexer, forwarder) before the producers (gateway, forwarder).

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use audit_integrity::leaf;

use crate::catalogue::Catalogue;
use crate::event::Provenance;

/// The message header carrying the tag.
pub const HEADER: &str = "audit-integrity";

/// Who tagged a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signer {
    /// The gateway, for a producer's event it validated.
    Gateway,
    /// The audit-log service, for its own (`audit_log`) events.
    System,
}

impl Signer {
    fn label(self) -> &'static str {
        match self {
            Signer::Gateway => "gateway",
            Signer::System => "system",
        }
    }

    fn from_label(label: &[u8]) -> Option<Self> {
        match label {
            b"gateway" => Some(Signer::Gateway),
            b"system" => Some(Signer::System),
            _ => None,
        }
    }

    /// The provenance an event tagged by this signer must state.
    pub fn provenance(self) -> Provenance {
        match self {
            Signer::Gateway => Provenance::Gateway,
            Signer::System => Provenance::System,
        }
    }
}

/// Signs and verifies integrity tags with one shared key.
#[derive(Clone)]
pub struct IntegrityKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrityKey(***)")
    }
}

/// Why an integrity key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be at least 32 characters")]
pub struct KeyTooShort;

impl IntegrityKey {
    /// A key from the shared secret (at least 32 bytes of text).
    pub fn new(secret: &str) -> Result<Self, KeyTooShort> {
        if secret.len() < 32 {
            return Err(KeyTooShort);
        }
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
            .map_err(|_| KeyTooShort)?;
        Ok(Self { mac })
    }

    /// The tag's MAC: over the value's leaf (`v3`), or the value itself (`v2`).
    fn mac_of(&self, version: Version, signer: Signer, input: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(match version {
            Version::V3 => b"audit-integrity/v3\0",
            Version::V2 => b"audit-integrity/v2\0",
        });
        mac.update(signer.label().as_bytes());
        mac.update(b"\0");
        mac.update(input);
        mac
    }

    /// The header value for a message value written by `signer`.
    pub fn tag(&self, signer: Signer, payload: &[u8]) -> String {
        let tag = self
            .mac_of(Version::V3, signer, &leaf(payload))
            .finalize()
            .into_bytes();
        format!("v3={}.{}", signer.label(), STANDARD_NO_PAD.encode(tag))
    }

    /// Who tagged `payload`, and its leaf, when `header` is a valid tag of it under this key
    /// (constant-time comparison of the full tag); `None` for anything else.
    pub fn verify(&self, payload: &[u8], header: &[u8]) -> Option<Verified> {
        let (version, rest) = match header.split_at_checked(3)? {
            (b"v3=", rest) => (Version::V3, rest),
            (b"v2=", rest) => (Version::V2, rest),
            _ => return None,
        };
        let dot = rest.iter().position(|byte| *byte == b'.')?;
        let signer = Signer::from_label(&rest[..dot])?;
        let tag = STANDARD_NO_PAD.decode(&rest[dot + 1..]).ok()?;
        let leaf = leaf(payload);
        let input: &[u8] = match version {
            Version::V3 => &leaf,
            Version::V2 => payload,
        };
        self.mac_of(version, signer, input)
            .verify_slice(&tag)
            .is_ok()
            .then_some(Verified { signer, leaf })
    }
}

/// The versions of the tag that verify.
#[derive(Debug, Clone, Copy)]
enum Version {
    /// An HMAC of the value's leaf (what is written).
    V3,
    /// An HMAC of the value (written before; still verified, see the module doc).
    V2,
}

/// An event's leaf, `SHA-256(0x00 || canonical bytes)` ([`audit_integrity::leaf`]).
pub type Leaf = audit_integrity::Hash;

/// A message whose tag verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub signer: Signer,
    /// The value's leaf, `SHA-256(0x00 || value)`: what the indexer seals the stored event
    /// under, computed once for both.
    pub leaf: Leaf,
}

/// A tagged event that does not state what its tag proves (a dead-letter reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagMismatch {
    /// The event's `provenance` (`None`: absent) is not the signer's.
    #[error("integrity tag of `{}` but the event's provenance is `{}`", .signer.label(), .provenance.as_deref().unwrap_or("none"))]
    Provenance {
        signer: Signer,
        provenance: Option<String>,
    },
    /// A producer's event (tagged by the gateway) in an internal category.
    #[error("category `{category}` is internal: a producer's event cannot carry it")]
    InternalFromProducer { category: String },
    /// A system event outside the internal categories.
    #[error("the audit-log service writes only internal categories, not `{category}`")]
    SystemNotInternal { category: String },
}

/// Checks that a tagged event states what its tag proves: the signer's provenance, and an
/// internal category if and only if the platform itself wrote it. The error is a dead-letter
/// reason.
pub fn check_tagged(
    signer: Signer,
    provenance: Option<&str>,
    category: &str,
    catalogue: &Catalogue,
) -> Result<(), TagMismatch> {
    let expected = signer.provenance().as_str();
    if provenance != Some(expected) {
        return Err(TagMismatch::Provenance {
            signer,
            provenance: provenance.map(str::to_owned),
        });
    }
    let internal = catalogue.category(category).is_some_and(|c| c.internal);
    match (signer, internal) {
        (Signer::Gateway, true) => Err(TagMismatch::InternalFromProducer {
            category: category.to_owned(),
        }),
        (Signer::System, false) => Err(TagMismatch::SystemNotInternal {
            category: category.to_owned(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> IntegrityKey {
        IntegrityKey::new("0123456789abcdef0123456789abcdef").expect("key")
    }

    fn signer(key: &IntegrityKey, payload: &[u8], header: &[u8]) -> Option<Signer> {
        key.verify(payload, header).map(|verified| verified.signer)
    }

    #[test]
    fn tags_verify_only_the_same_payload_key_and_signer() {
        let key = key();
        let tag = key.tag(Signer::Gateway, b"{\"id\":1}");
        assert!(tag.starts_with("v3=gateway."), "{tag}");
        assert_eq!(
            key.verify(b"{\"id\":1}", tag.as_bytes()),
            Some(Verified {
                signer: Signer::Gateway,
                leaf: leaf(b"{\"id\":1}"),
            })
        );
        assert_eq!(signer(&key, b"{\"id\":2}", tag.as_bytes()), None);
        let other = IntegrityKey::new("fedcba9876543210fedcba9876543210").expect("key");
        assert_eq!(signer(&other, b"{\"id\":1}", tag.as_bytes()), None);
        assert_eq!(signer(&key, b"{\"id\":1}", b"v3=gateway.forged"), None);
        assert_eq!(signer(&key, b"{\"id\":1}", b""), None);
        assert!(IntegrityKey::new("short").is_err());
    }

    #[test]
    fn a_gateway_tag_cannot_be_relabelled_as_a_system_tag() {
        let key = key();
        let payload = b"{\"category\":\"audit_log\"}";
        let gateway = key.tag(Signer::Gateway, payload);
        let relabelled = gateway.replacen("v3=gateway.", "v3=system.", 1);
        assert_eq!(signer(&key, payload, relabelled.as_bytes()), None);
        let system = key.tag(Signer::System, payload);
        assert_eq!(
            signer(&key, payload, system.as_bytes()),
            Some(Signer::System)
        );
        assert_ne!(gateway.split('.').nth(1), system.split('.').nth(1));
    }

    #[test]
    fn truncated_and_old_style_tags_do_not_verify() {
        let key = key();
        let tag = key.tag(Signer::System, b"x");
        for cut in 0..tag.len() {
            assert_eq!(signer(&key, b"x", &tag.as_bytes()[..cut]), None, "{cut}");
        }
        let v1 = tag.replacen("v3=system.", "v1=", 1);
        assert_eq!(signer(&key, b"x", v1.as_bytes()), None);
        // A v3 MAC presented as v2 (the versions' inputs differ).
        let v2 = tag.replacen("v3=", "v2=", 1);
        assert_eq!(signer(&key, b"x", v2.as_bytes()), None);
    }

    /// What the previous version wrote (an HMAC of the value) still verifies, with the leaf:
    /// events in flight during an upgrade keep their provenance.
    #[test]
    fn the_previous_versions_tags_still_verify() {
        let key = key();
        let payload = b"{\"id\":1}";
        let mac = key
            .mac_of(Version::V2, Signer::Gateway, payload)
            .finalize()
            .into_bytes();
        let v2 = format!("v2=gateway.{}", STANDARD_NO_PAD.encode(mac));
        assert_eq!(
            key.verify(payload, v2.as_bytes()),
            Some(Verified {
                signer: Signer::Gateway,
                leaf: leaf(payload),
            })
        );
        assert_eq!(signer(&key, b"{\"id\":2}", v2.as_bytes()), None);
        let v3 = v2.replacen("v2=", "v3=", 1);
        assert_eq!(signer(&key, payload, v3.as_bytes()), None);
    }

    #[test]
    fn tagged_events_must_say_what_the_tag_proves() {
        let catalogue = Catalogue::builtin();
        assert!(check_tagged(Signer::Gateway, Some("gateway"), "billing", &catalogue).is_ok());
        assert!(check_tagged(Signer::System, Some("system"), "audit_log", &catalogue).is_ok());
        assert_eq!(
            check_tagged(Signer::Gateway, Some("system"), "billing", &catalogue)
                .unwrap_err()
                .to_string(),
            "integrity tag of `gateway` but the event's provenance is `system`"
        );
        assert_eq!(
            check_tagged(Signer::Gateway, None, "billing", &catalogue)
                .unwrap_err()
                .to_string(),
            "integrity tag of `gateway` but the event's provenance is `none`"
        );
        assert_eq!(
            check_tagged(Signer::Gateway, Some("gateway"), "audit_log", &catalogue)
                .unwrap_err()
                .to_string(),
            "category `audit_log` is internal: a producer's event cannot carry it"
        );
        assert_eq!(
            check_tagged(Signer::System, Some("system"), "billing", &catalogue)
                .unwrap_err()
                .to_string(),
            "the audit-log service writes only internal categories, not `billing`"
        );
    }
}
