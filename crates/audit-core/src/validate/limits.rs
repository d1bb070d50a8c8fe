//! The operator-configurable limits on one event, and the check of the limits themselves.

use serde::{Deserialize, Serialize};

/// Limits on one event. The defaults are the contract's; operators may change them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest event, in bytes of its normalised JSON encoding.
    pub max_event_bytes: usize,
    /// Most keys in `metadata`.
    pub max_metadata_keys: u64,
    /// Longest string anywhere in the event, in characters.
    pub max_string_chars: u64,
    /// Most entries in `targets`.
    pub max_targets: u64,
    /// How far in the future `occurred_at` may be, in seconds (clock skew allowance).
    pub max_future_skew_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_metadata_keys: 64,
            max_string_chars: 1024,
            max_targets: 32,
            max_future_skew_secs: 300,
        }
    }
}

/// A limit that cannot be used: which key of [`Limits`] and why. The services' configs report
/// it as `limits.{field}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct LimitError {
    /// The key of [`Limits`], e.g. `max_event_bytes`.
    pub field: &'static str,
    pub reason: &'static str,
}

impl Limits {
    /// Checks the limits themselves; the error names the first bad key.
    pub fn validate(&self) -> Result<(), LimitError> {
        if self.max_event_bytes < 1024 {
            return Err(LimitError {
                field: "max_event_bytes",
                reason: "must be at least 1024",
            });
        }
        if self.max_string_chars == 0 {
            return Err(LimitError {
                field: "max_string_chars",
                reason: "must be positive",
            });
        }
        if self.max_future_skew_secs < 0 {
            return Err(LimitError {
                field: "max_future_skew_secs",
                reason: "must not be negative",
            });
        }
        Ok(())
    }
}
