//! Per-destination health: what this instance knows about each destination, exposed on
//! `/v1/destinations`, as metrics, and as `DestinationHealth` records on the settings topic
//! (at most every `publish_interval_secs` per destination, when something changed) that the
//! gateway's operator API aggregates across instances; and the automatic pause of a
//! destination that is misconfigured or keeps failing.
//!
//! One concern per module, so that each reads alone and the rules are tested without IO:
//!
//! * `state`: [`DestinationShared`] (what the lanes report, what the loop reads) and its
//!   [`HealthSnapshot`]; in memory only, no IO.
//! * `registry`: [`Registry`], every destination this process has seen.
//! * `pause`: when a destination is paused ([`PauseRequest`], the failure-streak rule), what
//!   the pause writes ([`plan_pause`], a pure rewrite of the organization's settings, and the
//!   `audit_log.destination.paused` event), and [`PauseWriter`], which writes it.
//! * `records`: the health records on the settings topic ([`HealthRecords`]).
//! * `metrics`: the Prometheus gauges of each destination.
//!
//! The loop that drives them every second is [`crate::health_loop`].

mod metrics;
mod pause;
mod records;
mod registry;
mod rule;
mod state;

pub(crate) use self::metrics::record_metrics;
pub use pause::{PausePlan, PauseWriter, plan_pause};
pub use records::{HealthRecords, health_record};
pub use registry::Registry;
pub use rule::PauseRequest;
pub use state::{DestinationShared, HealthSnapshot, HealthState};
