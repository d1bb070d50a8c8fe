//! The health loop (every second): metrics, health records on the settings topic, pauses.
//!
//! * **Health records**: one per destination and instance (`health/<destination>/<instance>`),
//!   written when something changed (at most every `publish_interval_secs`) and at least
//!   every `refresh_secs`, each valid for three times `refresh_secs` (`expires_at`). A
//!   stopping instance deletes its own records; every instance deletes expired ones (an
//!   instance that died), and the operator view ignores them.
//! * **Pauses**: a destination that asked to be paused (misconfigured) or that has failed
//!   continuously for `pause_after_secs` is set to `Paused` in its organization's settings and
//!   an `audit_log.destination.paused` event (a system event, see `audit_core::system`) is
//!   recorded in the organization's log. The settings write is compare-and-set on the
//!   organization record's revision: when an operator's change won the race, the pause is
//!   re-applied on top of the record as it now is ([`plan_pause`]), so an operator's change
//!   acknowledged with a 200 is never undone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::integrity::{IntegrityKey, Signer};
use audit_core::system::SystemEvent;
use audit_settings::{
    DestinationHealth, DestinationState, OrgSettings, SettingsRecord, SettingsStore,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::health::{DestinationShared, PauseRequest, Registry, record_metrics};
use crate::parking::Parker;

/// How many times a pause is re-applied after losing a race before the next tick.
const PAUSE_ATTEMPTS: usize = 5;

/// The longest a stopping instance spends deleting its health records.
const RETIRE_WITHIN: Duration = Duration::from_secs(5);

/// How often expired health records are looked for, at most.
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_secs(60);

pub struct HealthLoop {
    /// Tags the pause events as the system's own (see `audit_core::integrity`).
    pub integrity: IntegrityKey,
    pub registry: Arc<Registry>,
    pub settings: SettingsStore,
    pub parker: Parker,
    pub events_topic: String,
    pub instance: String,
    pub publish_interval: Duration,
    /// Longest interval between two records of a destination.
    pub refresh: Duration,
    /// How long a record counts after it was written.
    pub record_lifetime: Duration,
    pub pause_after: Duration,
}

/// What pausing a destination means for its organization's record as it is now.
#[derive(Debug, Clone, PartialEq)]
pub enum PausePlan {
    /// Write this record (the pause applied, revision + 1).
    Write(Box<OrgSettings>),
    /// Already paused: nothing to write.
    AlreadyPaused,
    /// The organization or the destination is gone.
    Gone,
}

/// The organization record with `destination_id` paused for `reason` (pure).
pub fn plan_pause(
    org: Option<&OrgSettings>,
    destination_id: &str,
    reason: &str,
    now: OffsetDateTime,
) -> PausePlan {
    let Some(org) = org else {
        return PausePlan::Gone;
    };
    let mut updated = org.clone();
    let Some(destination) = updated.destination_mut(destination_id) else {
        return PausePlan::Gone;
    };
    if matches!(destination.state, DestinationState::Paused { .. }) {
        return PausePlan::AlreadyPaused;
    }
    destination.state = DestinationState::Paused {
        since: now,
        reason: reason.to_string(),
    };
    updated.revision += 1;
    updated.updated_at = now;
    updated.updated_by = "forwarder".into();
    PausePlan::Write(Box::new(updated))
}

impl HealthLoop {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.retire().await;
                    return;
                }
                _ = tick.tick() => {}
            }
            for shared in self.registry.all() {
                self.sync_paused_state(&shared);
                if let Some(request) = shared.pause_due(self.pause_after) {
                    self.pause(&shared, &request).await;
                }
                record_metrics(&shared);
                if shared.take_publish_due(self.publish_interval, self.refresh) {
                    self.publish(&shared).await;
                }
            }
            if last_sweep.elapsed() >= self.refresh.min(SWEEP_AT_MOST_EVERY) {
                last_sweep = Instant::now();
                self.delete_expired().await;
            }
        }
    }

    /// Follows the settings: an operator's resume clears a local pause.
    fn sync_paused_state(&self, shared: &DestinationShared) {
        let view = self.settings.view();
        let paused_in_settings = view
            .org(&shared.org_id)
            .and_then(|org| org.destination(&shared.destination_id))
            .map(|destination| matches!(destination.state, DestinationState::Paused { .. }));
        match paused_in_settings {
            Some(true) => shared.set_paused(true),
            Some(false) if !shared.has_pause_request() => shared.set_paused(false),
            _ => {}
        }
    }

    async fn publish(&self, shared: &DestinationShared) {
        let snapshot = shared.snapshot();
        let parse = |text: &Option<String>| {
            text.as_deref().and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
        };
        let now = OffsetDateTime::now_utc();
        let record = SettingsRecord::DestinationHealth(DestinationHealth {
            org_id: snapshot.org_id.clone(),
            destination_id: snapshot.destination_id.clone(),
            instance: self.instance.clone(),
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
            expires_at: Some(now + self.record_lifetime),
        });
        if let Err(error) = self.settings.put(&record).await {
            tracing::warn!(%error, destination_id = %snapshot.destination_id, "could not publish destination health");
            shared.publish_failed();
        }
    }

    /// Deletes this instance's health records (graceful shutdown): the operator view then
    /// shows only the instances that are running. Bounded by [`RETIRE_WITHIN`] (Kafka may be
    /// down): a record left behind expires anyway.
    async fn retire(&self) {
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
    async fn delete_expired(&self) {
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

    /// Records the pause in the settings and the audit log. Retried on the next tick on error.
    async fn pause(&self, shared: &DestinationShared, request: &PauseRequest) {
        for _ in 0..PAUSE_ATTEMPTS {
            let now = OffsetDateTime::now_utc();
            let view = self.settings.view();
            let org = view.org(&shared.org_id).map(AsRef::as_ref);
            let updated = match plan_pause(org, &shared.destination_id, &request.reason, now) {
                PausePlan::Gone => return,
                PausePlan::AlreadyPaused => {
                    shared.pause_recorded();
                    return;
                }
                PausePlan::Write(updated) => updated,
            };
            let Some(destination) = updated.destination(&shared.destination_id) else {
                return;
            };
            let (name, type_name) = (destination.name.clone(), destination.config.type_name());
            match self.settings.put(&SettingsRecord::Org(*updated)).await {
                Ok(_) => {
                    tracing::warn!(
                        org_id = %shared.org_id,
                        destination_id = %shared.destination_id,
                        reason = %request.reason,
                        "destination paused"
                    );
                    metrics::counter!("forwarder_destinations_paused_total", "destination_type" => type_name)
                        .increment(1);
                    shared.pause_recorded();
                    self.record_pause(shared, &name, type_name, request, now)
                        .await;
                    return;
                }
                Err(audit_settings::Error::Conflict(reason)) => {
                    // Another writer (an operator) changed the record first: re-read, re-apply.
                    metrics::counter!("forwarder_pause_conflicts_total").increment(1);
                    tracing::info!(destination_id = %shared.destination_id, %reason, "pause lost a race; re-applying it to the current settings");
                }
                Err(error) => {
                    tracing::warn!(%error, destination_id = %shared.destination_id, "could not pause the destination; retrying");
                    return;
                }
            }
        }
    }

    async fn record_pause(
        &self,
        shared: &DestinationShared,
        name: &str,
        type_name: &str,
        request: &PauseRequest,
        now: OffsetDateTime,
    ) {
        let event = paused_event(shared, name, type_name, request).build(now);
        let json = event.to_json();
        let tag = self.integrity.tag(Signer::System, &json);
        let headers = audit_kafka::event_headers(audit_core::system::SOURCE, Some(&tag));
        if let Err(error) = self
            .parker
            .produce(&self.events_topic, &shared.org_id, &json, headers)
            .await
        {
            tracing::error!(%error, destination_id = %shared.destination_id, "could not record the pause in the audit log");
        }
    }
}

/// The `audit_log.destination.paused` event recorded in the organization's log.
fn paused_event(
    shared: &DestinationShared,
    name: &str,
    type_name: &str,
    request: &PauseRequest,
) -> SystemEvent {
    let event = SystemEvent::new(
        &shared.org_id,
        "audit_log.destination.paused",
        audit_core::system::forwarder_actor(),
    )
    .target("destination", &shared.destination_id, Some(name))
    .meta("reason", request.reason.clone())
    .meta("destination_type", type_name);
    match &request.last_status {
        Some(status) => event.meta("last_status", status.clone()),
        None => event,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use audit_settings::model::{DestinationKind, WebhookSettings};
    use audit_settings::{Destination, Filters, Plan};

    fn org(revision: u64) -> OrgSettings {
        let mut org = OrgSettings::new("org_a", OffsetDateTime::UNIX_EPOCH, "ops");
        org.plan = Plan::Enterprise;
        org.revision = revision;
        org.destinations.push(Destination {
            id: "dst_1".into(),
            name: "SOC".into(),
            enabled: true,
            state: DestinationState::Active,
            filters: Filters::default(),
            signing_secrets: vec![],
            config: DestinationKind::Webhook(WebhookSettings {
                url: "https://soc.example.com/hook".into(),
                max_batch_events: None,
            }),
            created_at: OffsetDateTime::UNIX_EPOCH,
            format: Default::default(),
        });
        org
    }

    #[test]
    fn a_pause_is_applied_to_the_record_as_it_is_now() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        // An operator changed the retention (revision 8) after the forwarder last looked.
        let mut current = org(8);
        current.retention_days = Some(400);
        let PausePlan::Write(updated) = plan_pause(Some(&current), "dst_1", "HEC code 4", now)
        else {
            panic!("expected a write");
        };
        assert_eq!(updated.revision, 9, "the successor of what is there now");
        assert_eq!(
            updated.retention_days,
            Some(400),
            "the operator's change kept"
        );
        assert_eq!(updated.updated_by, "forwarder");
        assert!(matches!(
            updated.destination("dst_1").unwrap().state,
            DestinationState::Paused { ref reason, .. } if reason == "HEC code 4"
        ));
        assert_eq!(
            plan_pause(Some(&updated), "dst_1", "again", now),
            PausePlan::AlreadyPaused
        );
        assert_eq!(
            plan_pause(Some(&current), "dst_2", "x", now),
            PausePlan::Gone
        );
        assert_eq!(plan_pause(None, "dst_1", "x", now), PausePlan::Gone);
    }
}
