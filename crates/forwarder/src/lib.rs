//! The forwarder (work in progress).

pub mod backoff;
pub mod config;
pub mod error;
pub mod event;
pub mod outbound;
pub mod signing;
pub mod sinks;
