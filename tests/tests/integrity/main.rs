//! Issue 15 — tamper evidence on the real Kafka and ClickHouse: tampering with ClickHouse
//! directly is found and named (window and event), crashes and rebalances never look like
//! tampering, and a key rotation keeps old digests verifiable.
//!
//! One module per promise:
//!
//! | module | what it checks |
//! |---|---|
//! | [`tampering`] | rows deleted, altered, inserted or cut in ClickHouse are found and named (window and event) |
//! | [`crashes`] | killed and rebalanced indexers never make an intact chain look tampered |
//! | [`key_rotation`] | digests signed before a key rotation keep verifying |
//! | [`offline_export`] | an export verifies offline with the standalone verifier; a flipped byte is named |
//! | [`siem`] | digests reach the SIEM of organizations that ask for them |
//!
//! [`common`] holds the settings and calls they share.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

mod common;
mod crashes;
mod key_rotation;
mod offline_export;
mod siem;
mod tampering;
