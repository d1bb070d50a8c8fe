//! Pausing a destination: when, what is written, and the write.
//!
//! A destination is paused when it asked to be (misconfigured: a lane sent a
//! [`PauseRequest`]) or when it has failed continuously for `pause_after_secs`
//! (`super::rule`). The pause is set in its organization's settings and an
//! `audit_log.destination.paused` event (a system event, see `audit_core::system`) is recorded
//! in the organization's log. The settings write is compare-and-set on the organization
//! record's revision: when an operator's change won the race, the pause is re-applied on top of
//! the record as it now is ([`plan_pause`]), so an operator's change acknowledged with a 200 is
//! never undone.
//!
//! The rules (`super::rule`, [`plan_pause`], [`paused_event`]) are pure functions; only
//! [`PauseWriter`] talks to Kafka.

use audit_core::integrity::{IntegrityKey, Signer};
use audit_core::system::SystemEvent;
use audit_settings::{DestinationState, OrgSettings, SettingsRecord, SettingsStore};
use time::OffsetDateTime;

use super::rule::PauseRequest;
use super::state::DestinationShared;
use crate::parking::Parker;

/// How many times a pause is re-applied after losing a race before the next tick.
const PAUSE_ATTEMPTS: usize = 5;

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

/// The `audit_log.destination.paused` event recorded in the organization's log. The reason is
/// passed whole: the builder bounds metadata values.
pub(crate) fn paused_event(
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

/// Writes pauses: the settings (compare-and-set) and the audit event.
pub struct PauseWriter {
    pub settings: SettingsStore,
    /// Produces the pause events (the parking producer).
    pub parker: Parker,
    /// Tags the pause events as the system's own (see `audit_core::integrity`).
    pub integrity: IntegrityKey,
    pub events_topic: String,
}

impl PauseWriter {
    /// Records the pause in the settings and the audit log. Retried on the next tick on error.
    pub async fn pause(&self, shared: &DestinationShared, request: &PauseRequest) {
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
            let (name, type_name) = (
                destination.name.clone(),
                destination.config.type_name().to_string(),
            );
            match self.settings.put(&SettingsRecord::Org(*updated)).await {
                Ok(_) => {
                    tracing::warn!(
                        org_id = %shared.org_id,
                        destination_id = %shared.destination_id,
                        reason = %request.reason,
                        "destination paused"
                    );
                    metrics::counter!("forwarder_destinations_paused_total", "destination_type" => type_name.clone())
                        .increment(1);
                    shared.pause_recorded();
                    self.record_pause(shared, &name, &type_name, request, now)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
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
            config: serde_json::from_value(
                serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"}),
            )
            .unwrap(),
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

    #[test]
    fn the_paused_event_names_the_destination_and_the_reason() {
        let shared = DestinationShared::new("org_a", "dst_1");
        let request = PauseRequest {
            reason: format!("misconfigured: HTTP 403 {}", "x".repeat(5000)),
            last_status: Some("403".into()),
        };
        let event =
            paused_event(&shared, "SOC", "splunk_hec", &request).build(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(event.org_id, "org_a");
        assert_eq!(event.action, "audit_log.destination.paused");
        assert_eq!(event.actor.id, "forwarder");
        assert_eq!(event.targets[0].id, "dst_1");
        assert_eq!(event.targets[0].name.as_deref(), Some("SOC"));
        assert_eq!(event.metadata["destination_type"].to_text(), "splunk_hec");
        assert_eq!(event.metadata["last_status"].to_text(), "403");
        let reason = event.metadata["reason"].to_text();
        assert!(reason.starts_with("misconfigured: HTTP 403 x"));
        assert_eq!(
            reason.chars().count(),
            audit_core::system::MAX_METADATA_CHARS,
            "bounded by the builder"
        );
        let without_status = PauseRequest {
            last_status: None,
            ..request
        };
        let event = paused_event(&shared, "SOC", "splunk_hec", &without_status)
            .build(OffsetDateTime::UNIX_EPOCH);
        assert!(!event.metadata.contains_key("last_status"));
    }
}
