//! The health records on the settings topic: one per destination and instance
//! (`health/<destination>/<instance>`), written when something changed (at most every
//! `publish_interval_secs`) and at least every `refresh_secs`, each valid for three times
//! `refresh_secs` (`expires_at`). A stopping instance deletes its own records; every instance
//! deletes expired ones (an instance that died), and the operator view ignores them.
//!
//! When a record is due is the state's business (`take_publish_due`); this module turns a
//! snapshot into a record ([`health_record`], pure) and writes or deletes records.

use std::time::Duration;

use audit_settings::{DestinationHealth, SettingsRecord, SettingsStore};
use time::OffsetDateTime;

use super::state::{DestinationShared, HealthSnapshot};

/// The longest a stopping instance spends deleting its health records.
const RETIRE_WITHIN: Duration = Duration::from_secs(5);

/// The record of `snapshot` written by `instance` at `now`, counting for `lifetime`.
pub fn health_record(
    snapshot: &HealthSnapshot,
    instance: &str,
    now: OffsetDateTime,
    lifetime: Duration,
) -> DestinationHealth {
    let parse = |text: &Option<String>| {
        text.as_deref().and_then(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
    };
    DestinationHealth {
        org_id: snapshot.org_id.clone(),
        destination_id: snapshot.destination_id.clone(),
        instance: instance.to_string(),
        state: snapshot.state.as_str().to_string(),
        last_success_at: parse(&snapshot.last_success_at),
        last_failure_at: parse(&snapshot.last_failure_at),
        last_failure_status: snapshot.last_failure_status.clone(),
        last_failure_excerpt: snapshot.last_failure_excerpt.clone(),
        consecutive_failures: snapshot.consecutive_failures,
        backlog: snapshot.backlog,
        delivered_total: snapshot.delivered_total,
        dead_lettered_total: snapshot.dead_lettered_total,
        updated_at: now,
        expires_at: Some(now + lifetime),
    }
}

/// Writes and deletes this instance's health records.
pub struct HealthRecords {
    pub settings: SettingsStore,
    /// This forwarder instance (the records' key and `instance`).
    pub instance: String,
    /// How long a record counts after it was written.
    pub record_lifetime: Duration,
}

impl HealthRecords {
    /// Writes the destination's record; on error, it is tried again at the next tick.
    pub async fn publish(&self, shared: &DestinationShared) {
        let snapshot = shared.snapshot();
        let record = health_record(
            &snapshot,
            &self.instance,
            OffsetDateTime::now_utc(),
            self.record_lifetime,
        );
        if let Err(error) = self
            .settings
            .put(&SettingsRecord::DestinationHealth(record))
            .await
        {
            tracing::warn!(%error, destination_id = %snapshot.destination_id, "could not publish destination health");
            shared.publish_failed();
        }
    }

    /// Deletes this instance's health records (graceful shutdown): the operator view then
    /// shows only the instances that are running. Bounded by `RETIRE_WITHIN` (Kafka may be
    /// down): a record left behind expires anyway.
    pub async fn retire(&self) {
        let view = self.settings.view();
        let retire = async {
            for (id, record) in &view.health {
                if record.instance != self.instance {
                    continue;
                }
                let key =
                    audit_settings::model::health_key(&record.destination_id, &record.instance);
                if let Err(error) = self.settings.delete(&key).await {
                    tracing::warn!(%error, health = %id, "could not delete this instance's health record");
                }
            }
        };
        if tokio::time::timeout(RETIRE_WITHIN, retire).await.is_err() {
            tracing::warn!("health records not all deleted at shutdown; they will expire");
        }
    }

    /// Deletes expired health records (instances that stopped without deleting theirs).
    pub async fn delete_expired(&self) {
        let now = OffsetDateTime::now_utc();
        let view = self.settings.view();
        for record in view.health.values().filter(|record| record.is_expired(now)) {
            let key = audit_settings::model::health_key(&record.destination_id, &record.instance);
            match self.settings.delete(&key).await {
                Ok(_) => tracing::info!(key, "deleted an expired health record"),
                Err(error) => {
                    tracing::warn!(%error, key, "could not delete an expired health record")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::HealthState;

    #[test]
    fn a_record_carries_the_snapshot_and_expires_after_its_lifetime() {
        let snapshot = HealthSnapshot {
            org_id: "org_a".into(),
            destination_id: "dst_1".into(),
            state: HealthState::Retrying,
            last_success_at: Some("2026-11-26T12:00:00.123Z".into()),
            last_failure_at: None,
            last_failure_status: Some("503".into()),
            last_failure_excerpt: Some("busy".into()),
            consecutive_failures: 2,
            backlog: 7,
            delivered_total: 10,
            dead_lettered_total: 1,
            parked_total: 3,
        };
        let now = OffsetDateTime::UNIX_EPOCH;
        let record = health_record(&snapshot, "fwd-1", now, Duration::from_secs(90));
        assert_eq!(record.instance, "fwd-1");
        assert_eq!(record.state, "retrying");
        assert_eq!(
            record.last_success_at,
            Some(time::macros::datetime!(2026-11-26 12:00:00.123 UTC))
        );
        assert_eq!(record.last_failure_at, None);
        assert_eq!(record.last_failure_status.as_deref(), Some("503"));
        assert_eq!(record.last_failure_excerpt.as_deref(), Some("busy"));
        assert_eq!((record.consecutive_failures, record.backlog), (2, 7));
        assert_eq!(
            (record.delivered_total, record.dead_lettered_total),
            (10, 1)
        );
        assert_eq!(record.updated_at, now);
        assert_eq!(record.expires_at, Some(now + Duration::from_secs(90)));
        assert!(record.is_expired(now + Duration::from_secs(90)));
    }
}
