//! Which records of the settings topic a reader applies — the rules every instance of every
//! service follows identically (pure: no IO, see [`decide`]):
//!
//! | record | decision |
//! |---|---|
//! | no valid `settings-auth` tag ([`crate::auth`]) | refused (`unauthenticated`) |
//! | unreadable JSON, or its kind's key differs from the message key | refused |
//! | a tombstone of a kind that is never deleted (all but `health/…`) | refused (`tombstone`) |
//! | a tombstone of `health/…` | removes the key |
//! | first record of a key (the earlier ones compacted away) | applied |
//! | revision = applied + 1 | applied |
//! | revision > applied + 1 (this reader missed one) | applied, reported (`skipped`) |
//! | the applied record again, byte for byte (a repair, a retried write) | nothing changes |
//! | revision ≤ applied otherwise (a concurrent writer lost, or a replay) | refused, reported (`repeated`) |
//! | destination health (no revision) | applied (only its own instance writes it) |
//!
//! Every refusal leaves the key's applied record in force. When the refused record is now
//! the last one of its key on the topic, compaction would eventually keep it and drop the
//! applied one, so the key is marked for repair: the gateway writes the applied record again
//! ([`crate::store::SettingsStore::spawn_repairs`]).

use std::sync::Arc;

use crate::auth::Unauthenticated;
use crate::model::{SettingsRecord, deletable};

/// The record a key's state comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its offset on the settings topic.
    pub offset: i64,
    pub revision: Option<u64>,
    /// Its exact bytes (a repair writes them again).
    pub payload: Arc<[u8]>,
}

/// Why a record was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(Unauthenticated),
    Unreadable(String),
    KeyMismatch { record_key: String },
    Tombstone,
    Repeated { applied: u64, got: u64 },
}

impl Refusal {
    /// The `reason` label of `settings_records_refused_total`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::Unreadable(_) => "unreadable",
            Refusal::KeyMismatch { .. } => "key_mismatch",
            Refusal::Tombstone => "tombstone",
            Refusal::Repeated { .. } => "repeated_revision",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unauthenticated(why) => write!(f, "not authenticated: {why}"),
            Refusal::Unreadable(why) => write!(f, "unreadable: {why}"),
            Refusal::KeyMismatch { record_key } => {
                write!(f, "the record belongs under `{record_key}`")
            }
            Refusal::Tombstone => f.write_str("records of this kind are never deleted"),
            Refusal::Repeated { applied, got } => write!(
                f,
                "revision {got} does not continue the applied revision {applied} (a concurrent write that lost, or a replay)"
            ),
        }
    }
}

/// What a reader does with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply it; `skipped` is `(applied, got)` when it jumps over revisions.
    Apply {
        skipped: Option<(u64, u64)>,
    },
    /// Delete the key.
    Remove,
    /// The applied record again: nothing changes (the key no longer needs repair).
    Duplicate,
    Refuse(Refusal),
}

/// The decision for the message `key` = `payload` (`None`: a tombstone), given whether its
/// tag verified, its decoded record and the key's applied record.
pub fn decide(
    key: &str,
    authenticated: Result<(), Unauthenticated>,
    payload: Option<&[u8]>,
    record: Option<&Result<SettingsRecord, serde_json::Error>>,
    applied: Option<&Applied>,
) -> Decision {
    if let Err(why) = authenticated {
        return Decision::Refuse(Refusal::Unauthenticated(why));
    }
    let (Some(payload), Some(record)) = (payload, record) else {
        return if deletable(key) {
            Decision::Remove
        } else {
            Decision::Refuse(Refusal::Tombstone)
        };
    };
    let record = match record {
        Ok(record) => record,
        Err(why) => return Decision::Refuse(Refusal::Unreadable(why.to_string())),
    };
    let record_key = record.key();
    if record_key != key {
        return Decision::Refuse(Refusal::KeyMismatch { record_key });
    }
    let Some(applied) = applied else {
        return Decision::Apply { skipped: None };
    };
    if *applied.payload == *payload {
        return Decision::Duplicate;
    }
    match (applied.revision, record.revision()) {
        (Some(current), Some(got)) if got == current + 1 => Decision::Apply { skipped: None },
        (Some(current), Some(got)) if got > current + 1 => Decision::Apply {
            skipped: Some((current, got)),
        },
        (Some(current), Some(got)) => Decision::Refuse(Refusal::Repeated {
            applied: current,
            got,
        }),
        _ => Decision::Apply { skipped: None },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{DestinationHealth, OrgSettings};
    use time::OffsetDateTime;

    fn org(revision: u64, retention: Option<u16>) -> SettingsRecord {
        let mut org = OrgSettings::new("org_a", OffsetDateTime::UNIX_EPOCH, "ops");
        org.revision = revision;
        org.retention_days = retention;
        SettingsRecord::Org(org)
    }

    fn applied(record: &SettingsRecord) -> Applied {
        Applied {
            offset: 7,
            revision: record.revision(),
            payload: serde_json::to_vec(record).unwrap().into(),
        }
    }

    fn decide_for(record: &SettingsRecord, current: Option<&Applied>) -> Decision {
        let payload = serde_json::to_vec(record).unwrap();
        decide(
            &record.key(),
            Ok(()),
            Some(&payload),
            Some(&Ok(record.clone())),
            current,
        )
    }

    #[test]
    fn decisions_follow_the_table() {
        let current = applied(&org(3, Some(30)));
        // Unauthenticated: refused whatever it says.
        let next = org(4, Some(40));
        let payload = serde_json::to_vec(&next).unwrap();
        assert_eq!(
            decide(
                "org/org_a",
                Err(Unauthenticated::Missing),
                Some(&payload),
                Some(&Ok(next.clone())),
                Some(&current)
            ),
            Decision::Refuse(Refusal::Unauthenticated(Unauthenticated::Missing))
        );
        // Unreadable and misplaced records.
        assert!(matches!(
            decide(
                "org/org_a",
                Ok(()),
                Some(b"{"),
                Some(&serde_json::from_slice::<SettingsRecord>(b"{")),
                None
            ),
            Decision::Refuse(Refusal::Unreadable(_))
        ));
        assert!(matches!(
            decide(
                "org/org_b",
                Ok(()),
                Some(&payload),
                Some(&Ok(next.clone())),
                None
            ),
            Decision::Refuse(Refusal::KeyMismatch { .. })
        ));
        // Tombstones delete health records only.
        assert_eq!(
            decide("org/org_a", Ok(()), None, None, Some(&current)),
            Decision::Refuse(Refusal::Tombstone)
        );
        assert_eq!(
            decide("health/dst_1/fwd-a", Ok(()), None, None, None),
            Decision::Remove
        );
        // The chain.
        assert_eq!(decide_for(&next, None), Decision::Apply { skipped: None });
        assert_eq!(
            decide_for(&next, Some(&current)),
            Decision::Apply { skipped: None }
        );
        assert_eq!(
            decide_for(&org(6, None), Some(&current)),
            Decision::Apply {
                skipped: Some((3, 6))
            }
        );
        assert_eq!(
            decide_for(&org(3, Some(30)), Some(&current)),
            Decision::Duplicate
        );
        assert_eq!(
            decide_for(&org(3, Some(99)), Some(&current)),
            Decision::Refuse(Refusal::Repeated { applied: 3, got: 3 })
        );
        assert_eq!(
            decide_for(&org(1, Some(30)), Some(&current)),
            Decision::Refuse(Refusal::Repeated { applied: 3, got: 1 }),
            "a replayed older record"
        );
    }

    #[test]
    fn health_records_have_no_chain() {
        let health = SettingsRecord::DestinationHealth(DestinationHealth {
            org_id: "org_a".into(),
            destination_id: "dst_1".into(),
            instance: "fwd-a".into(),
            state: "healthy".into(),
            last_success_at: None,
            last_failure_at: None,
            last_failure_status: None,
            last_failure_excerpt: None,
            consecutive_failures: 0,
            backlog: 0,
            delivered_total: 1,
            dead_lettered_total: 0,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
        });
        let current = Applied {
            offset: 1,
            revision: None,
            payload: b"{}".to_vec().into(),
        };
        assert_eq!(
            decide_for(&health, Some(&current)),
            Decision::Apply { skipped: None }
        );
    }
}
