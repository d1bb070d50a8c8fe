//! `audit-verify`: checks an NDJSON export of one organization's audit events against the
//! signed digests of its integrity bundle, and says `intact` or exactly what is wrong.
//!
//! It is written from `docs/integrity.md` alone and shares no code with what produces the
//! digests (no `audit-*` crate, indexer or gateway), so that one bug cannot hide in both.
//!
//! ```text
//! audit-verify --export events.ndjson --bundle bundle.json --keys keys.json \
//!              [--head digest.json] [--now 2026-12-03T00:00:00Z] [--json]
//! ```
//!
//! * `--export`: the NDJSON export (`GET /v1/orgs/{org}/events/export?format=ndjson`), `-` for standard
//!   input. Streamed: memory follows the number of leaves and events, not the export's bytes.
//! * `--bundle`: `GET /v1/orgs/{org}/integrity/bundle?since&until` for the same range.
//! * `--keys`: `GET /v1/integrity/keys`, **your own copy** from a channel you trust; keys are
//!   never taken from the bundle.
//! * `--head`: the newest digest you hold from outside ClickHouse (a message of the Kafka topic
//!   `audit.integrity.v1`, or your SIEM): proves the newest windows were not cut. Without it,
//!   a newest digest sealed more than two windows before the bundle was made is reported.
//! * `--now`: the time of the check for expiry by retention (default: the current time).
//!
//! The checks, in order (see [`chain`] and [`events`]): every digest (note, organization,
//! signature under your keys, `seq` without gap, `prev` chain, `root` and `count` recomputed
//! from the leaves); the head; every export line (a leaf, else *altered* or *inserted*;
//! *duplicated*); every leaf of the range (present, else *expired by retention* or *deleted*).
//!
//! Output: one line per finding — kind, window `seq`, event id, what — then the windows whose
//! events expired by retention (not findings), the throughput, and as the last line `intact`
//! or `NOT intact: N findings`. `--json` prints the same as one JSON object ([`Report`]).
//!
//! Exit codes: 0 intact, 1 findings, 2 the check could not be made (unreadable file, malformed
//! JSON in the keys, bundle or head — named with its line — or bad arguments). A line of the
//! export that is not JSON is a finding (*unreadable*), not an input error: the export is the
//! evidence under check.

pub mod bundle;
pub mod chain;
pub mod cli;
pub mod events;
pub mod export;
pub mod keys;
pub mod merkle;
pub mod note;
pub mod report;
pub mod run;
pub mod verify;

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod vectors;

pub use report::{Finding, Kind, Report, Verdict};
pub use run::{InputError, Inputs, run};
pub use verify::{Options, Verification};
