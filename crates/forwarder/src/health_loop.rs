//! The health loop (every second): for each destination, follow the settings (an operator's
//! resume), write a pause that is due, set its metrics, write its health record when one is
//! due; now and then, delete expired records; at shutdown, delete this instance's records.
//!
//! It only orchestrates: the state is `crate::health::DestinationShared`, the rules and writes
//! of pauses are [`PauseWriter`] and [`plan_pause`], the health records [`HealthRecords`] (see
//! [`crate::health`]). Re-exported here for the callers that knew them by this path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_settings::{DestinationState, SettingsStore};
use tokio_util::sync::CancellationToken;

use crate::health::{DestinationShared, Registry, record_metrics};
pub use crate::health::{HealthRecords, PausePlan, PauseWriter, plan_pause};

/// How often expired health records are looked for, at most.
const SWEEP_AT_MOST_EVERY: Duration = Duration::from_secs(60);

pub struct HealthLoop {
    pub registry: Arc<Registry>,
    /// Read for the destinations' paused state.
    pub settings: SettingsStore,
    pub pauses: PauseWriter,
    pub records: HealthRecords,
    pub publish_interval: Duration,
    /// Longest interval between two records of a destination.
    pub refresh: Duration,
    pub pause_after: Duration,
}

impl HealthLoop {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.records.retire().await;
                    return;
                }
                _ = tick.tick() => {}
            }
            for shared in self.registry.all() {
                shared.follow_settings(self.paused_in_settings(&shared));
                if let Some(request) = shared.pause_due(self.pause_after) {
                    self.pauses.pause(&shared, &request).await;
                }
                record_metrics(&shared);
                if shared.take_publish_due(self.publish_interval, self.refresh) {
                    self.records.publish(&shared).await;
                }
            }
            if last_sweep.elapsed() >= self.refresh.min(SWEEP_AT_MOST_EVERY) {
                last_sweep = Instant::now();
                self.records.delete_expired().await;
            }
        }
    }

    /// Whether the settings show the destination paused (`None`: not there).
    fn paused_in_settings(&self, shared: &DestinationShared) -> Option<bool> {
        let view = self.settings.view();
        view.org(&shared.org_id)
            .and_then(|org| org.destination(&shared.destination_id))
            .map(|destination| matches!(destination.state, DestinationState::Paused { .. }))
    }
}
