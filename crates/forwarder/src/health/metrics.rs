//! The Prometheus gauges of each destination, set from its state at every tick of the health
//! loop: `forwarder_backlog`, `forwarder_destination_state` (one series per state, 1 for the
//! current one) and `forwarder_consecutive_failures`, labelled by organization and
//! destination. The counters of deliveries and pauses are incremented where they happen.

use super::state::{DestinationShared, HealthState};

pub(crate) fn record_metrics(shared: &DestinationShared) {
    let state = shared.state();
    let labels = [
        ("org_id", shared.org_id.clone()),
        ("destination_id", shared.destination_id.clone()),
    ];
    metrics::gauge!("forwarder_backlog", &labels).set(shared.backlog() as f64);
    for candidate in [
        HealthState::Healthy,
        HealthState::Retrying,
        HealthState::Paused,
    ] {
        let mut labels = labels.to_vec();
        labels.push(("state", candidate.as_str().to_string()));
        metrics::gauge!("forwarder_destination_state", &labels).set(if candidate == state {
            1.0
        } else {
            0.0
        });
    }
    metrics::gauge!("forwarder_consecutive_failures", &labels)
        .set(shared.consecutive_failures() as f64);
}
