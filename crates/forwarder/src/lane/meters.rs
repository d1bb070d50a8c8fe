//! The metric handles of one lane, created once when the lane starts.

use audit_settings::Destination;

use super::Role;
use audit_sinks::Attempt;

/// Per-lane metric handles (created once).
pub(super) struct LaneMetrics {
    pub(super) delivered: metrics::Counter,
    pub(super) parked: metrics::Counter,
    pub(super) dead_lettered: metrics::Counter,
    pub(super) retries: metrics::Counter,
    pub(super) stale: metrics::Counter,
    pub(super) batch_rows: metrics::Histogram,
    pub(super) batch_bytes: metrics::Histogram,
    pub(super) request_seconds: metrics::Histogram,
    pub(super) latency_seconds: metrics::Histogram,
    pub(super) labels: Vec<(&'static str, String)>,
}

impl LaneMetrics {
    pub(super) fn new(org_id: &str, destination: &Destination, role: Role) -> Self {
        let labels = vec![
            ("org_id", org_id.to_string()),
            ("destination_id", destination.id.clone()),
            (
                "destination_type",
                destination.config.type_name().to_string(),
            ),
            ("lane", role.as_str().to_string()),
        ];
        let type_only = [(
            "destination_type",
            destination.config.type_name().to_string(),
        )];
        Self {
            delivered: metrics::counter!("forwarder_delivered_total", &labels),
            parked: metrics::counter!("forwarder_parked_total", &labels),
            dead_lettered: metrics::counter!("forwarder_dead_lettered_total", &labels),
            retries: metrics::counter!("forwarder_retries_total", &labels),
            stale: metrics::counter!("forwarder_dropped_revoked_total", &labels),
            batch_rows: metrics::histogram!("forwarder_batch_rows", &type_only),
            batch_bytes: metrics::histogram!("forwarder_batch_bytes", &type_only),
            request_seconds: metrics::histogram!("forwarder_request_seconds", &type_only),
            latency_seconds: metrics::histogram!("forwarder_delivery_latency_seconds", &type_only),
            labels,
        }
    }

    pub(super) fn request(&self, attempt: &Attempt) {
        let mut labels = self.labels.clone();
        labels.push(("class", attempt.verdict.class().to_string()));
        metrics::counter!("forwarder_requests_total", &labels).increment(1);
        if !attempt.is_delivered() {
            metrics::counter!("forwarder_failures_total", &labels).increment(1);
        }
        self.request_seconds.record(attempt.latency.as_secs_f64());
    }
}
