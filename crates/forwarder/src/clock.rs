//! The wall clock, in the unix milliseconds that parked events, health records and event ages
//! are kept in.

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    audit_core::event::unix_millis(time::OffsetDateTime::now_utc())
}
