//! Issue 6 — the read side: who may read, filters checked against seeded data, pagination
//! stable under concurrent inserts, hostile input, streamed exports parsed back, the audit
//! trail of reads, and the arrival-ordered feed for Enterprise API tokens.
//!
//! One module per concern:
//!
//! | module | what it checks |
//! |---|---|
//! | [`access`] | who may read which organization: roles, plans, forged and expired tokens, API tokens |
//! | [`filters`] | every filter against seeded data, stable pagination, hostile input, CSV/NDJSON exports and their audit trail |
//! | [`feed`] | the arrival-ordered feed: everything once, late arrivals included |
//!
//! [`common`] holds the reading client and helpers they share.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod access;
mod common;
mod feed;
mod filters;
