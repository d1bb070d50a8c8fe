//! Per-key concurrency caps: how many requests one organization, one reader (user or API
//! token) or one producer key may have in flight on this gateway instance at once.
//!
//! A request takes a [`Slot`] for every key it counts against before doing any work; a key
//! at its cap answers 429 with `Retry-After` at once (nothing waits in a queue, so a client
//! hammering the API costs a hash lookup per request). A slot is released when dropped — for
//! a streamed export, when the stream ends or the client goes away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::ApiError;

/// In-flight counts per key, each capped at `max`.
#[derive(Debug)]
pub struct KeyedLimiter {
    /// What is limited, for messages and metrics (`"exports per organization"`).
    what: &'static str,
    max: usize,
    in_flight: Mutex<HashMap<String, usize>>,
}

/// One admitted request for one key; frees its place when dropped.
#[derive(Debug)]
pub struct Slot {
    limiter: Arc<KeyedLimiter>,
    key: String,
}

impl KeyedLimiter {
    pub fn new(what: &'static str, max: usize) -> Arc<Self> {
        Arc::new(Self {
            what,
            max,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `key`, or `None` when `key` already has `max` requests in flight.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Option<Slot> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let count = in_flight.entry(key.to_string()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            limiter: self.clone(),
            key: key.to_string(),
        })
    }

    /// A slot for `key`, or the 429 telling the caller to come back after `retry_after_secs`.
    pub fn admit(self: &Arc<Self>, key: &str, retry_after_secs: u64) -> Result<Slot, ApiError> {
        self.try_acquire(key).ok_or_else(|| {
            metrics::counter!("gateway_throttled_requests_total", "limit" => self.what)
                .increment(1);
            ApiError::TooManyRequests {
                message: format!(
                    "too many concurrent requests: at most {} {} at once; retry after {retry_after_secs} s",
                    self.max, self.what
                ),
                retry_after_secs,
            }
        })
    }

    /// Requests in flight for `key`.
    pub fn in_flight(&self, key: &str) -> usize {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.get(key).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self
            .limiter
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Keys come and go (organizations, tokens): keep only those in flight.
                in_flight.remove(&self.key);
            }
        }
    }
}

/// The two kinds of reads, each with its own caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// Pages, single events, the feed.
    Query,
    /// Streamed exports (long-lived, so capped lower).
    Export,
}

/// The caps on reads: per organization and per reader, separately for queries and exports.
#[derive(Debug)]
pub struct ReadAdmission {
    queries_per_org: Arc<KeyedLimiter>,
    queries_per_reader: Arc<KeyedLimiter>,
    exports_per_org: Arc<KeyedLimiter>,
    exports_per_reader: Arc<KeyedLimiter>,
    retry_after_secs: u64,
}

/// The slots one admitted read holds (organization and reader).
#[derive(Debug)]
pub struct ReadPermit {
    _org: Slot,
    _reader: Slot,
}

/// The read caps, from `[read]`.
#[derive(Debug, Clone, Copy)]
pub struct ReadCaps {
    pub queries_per_org: usize,
    pub queries_per_reader: usize,
    pub exports_per_org: usize,
    pub exports_per_reader: usize,
    pub retry_after_secs: u64,
}

impl ReadAdmission {
    pub fn new(caps: ReadCaps) -> Self {
        Self {
            queries_per_org: KeyedLimiter::new("queries per organization", caps.queries_per_org),
            queries_per_reader: KeyedLimiter::new("queries per reader", caps.queries_per_reader),
            exports_per_org: KeyedLimiter::new("exports per organization", caps.exports_per_org),
            exports_per_reader: KeyedLimiter::new("exports per reader", caps.exports_per_reader),
            retry_after_secs: caps.retry_after_secs,
        }
    }

    /// Admits one read of `kind` by `reader` (user id or API token id) of `org_id`, or 429.
    /// The reader's cap is checked first: a reader at its cap never takes an organization
    /// slot that a colleague could use.
    pub fn admit(
        &self,
        kind: ReadKind,
        org_id: &str,
        reader: &str,
    ) -> Result<ReadPermit, ApiError> {
        let (per_org, per_reader) = match kind {
            ReadKind::Query => (&self.queries_per_org, &self.queries_per_reader),
            ReadKind::Export => (&self.exports_per_org, &self.exports_per_reader),
        };
        // Reader ids are unique within an organization only.
        let reader_key = format!("{org_id}\u{0}{reader}");
        let reader_slot = per_reader.admit(&reader_key, self.retry_after_secs)?;
        let org_slot = per_org.admit(org_id, self.retry_after_secs)?;
        Ok(ReadPermit {
            _org: org_slot,
            _reader: reader_slot,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_key_is_capped_and_freed_on_drop() {
        let limiter = KeyedLimiter::new("things", 2);
        let first = limiter.try_acquire("a").unwrap();
        let _second = limiter.try_acquire("a").unwrap();
        assert!(limiter.try_acquire("a").is_none());
        assert!(
            limiter.try_acquire("b").is_some(),
            "other keys are not affected"
        );
        drop(first);
        assert_eq!(limiter.in_flight("a"), 1);
        assert!(limiter.try_acquire("a").is_some());
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let limiter = KeyedLimiter::new("things", 1);
        drop(limiter.try_acquire("a").unwrap());
        assert!(limiter.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn over_the_cap_is_a_429_with_retry_after() {
        let limiter = KeyedLimiter::new("exports per reader", 1);
        let _held = limiter.admit("k", 3).unwrap();
        match limiter.admit("k", 3) {
            Err(ApiError::TooManyRequests {
                message,
                retry_after_secs,
            }) => {
                assert_eq!(retry_after_secs, 3);
                assert!(
                    message.contains("at most 1 exports per reader"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    fn caps() -> ReadCaps {
        ReadCaps {
            queries_per_org: 3,
            queries_per_reader: 2,
            exports_per_org: 1,
            exports_per_reader: 1,
            retry_after_secs: 1,
        }
    }

    #[test]
    fn readers_and_organizations_are_capped_separately_for_queries_and_exports() {
        let admission = ReadAdmission::new(caps());
        let a1 = admission.admit(ReadKind::Query, "org", "alice").unwrap();
        let _a2 = admission.admit(ReadKind::Query, "org", "alice").unwrap();
        assert!(
            admission.admit(ReadKind::Query, "org", "alice").is_err(),
            "alice at her cap"
        );
        let _b1 = admission.admit(ReadKind::Query, "org", "bob").unwrap();
        assert!(
            admission.admit(ReadKind::Query, "org", "carol").is_err(),
            "the organization at its cap"
        );
        assert!(
            admission.admit(ReadKind::Query, "other", "alice").is_ok(),
            "another organization (and its own alice) is unaffected"
        );
        let _export = admission.admit(ReadKind::Export, "org", "alice").unwrap();
        assert!(admission.admit(ReadKind::Export, "org", "bob").is_err());
        drop(a1);
        assert!(admission.admit(ReadKind::Query, "org", "carol").is_ok());
    }

    #[test]
    fn a_refused_reader_takes_no_organization_slot() {
        let admission = ReadAdmission::new(caps());
        let _held: Vec<ReadPermit> = (0..2)
            .map(|_| admission.admit(ReadKind::Query, "org", "alice").unwrap())
            .collect();
        for _ in 0..10 {
            assert!(admission.admit(ReadKind::Query, "org", "alice").is_err());
        }
        assert!(admission.admit(ReadKind::Query, "org", "bob").is_ok());
    }
}
