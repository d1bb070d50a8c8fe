//! The row stored per event. `indexed_at`, `search_text` and `version` are computed by
//! ClickHouse (DEFAULT / MATERIALIZED), so they are not part of the inserted row.

use audit_core::AuditEvent;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub org_id: String,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "clickhouse::serde::uuid")]
    pub id: Uuid,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    pub received_at: OffsetDateTime,
    pub category: String,
    pub action: String,
    pub outcome: String,
    pub actor_type: String,
    pub actor_id: String,
    pub actor_name: String,
    pub actor_email: String,
    pub target_types: Vec<String>,
    pub target_ids: Vec<String>,
    pub target_names: Vec<String>,
    pub ip: String,
    pub user_agent: String,
    pub location: String,
    pub request_id: String,
    pub metadata: Vec<(String, String)>,
    pub source: String,
    pub schema_version: u8,
    pub retention_days: u16,
    pub raw: String,
}

impl EventRow {
    /// Builds the row of a validated event. `raw` is the event's canonical JSON;
    /// `received_at` falls back to `fallback_received_at` (the broker's append time).
    pub fn from_event(
        event: &AuditEvent,
        raw: &[u8],
        retention_days: u16,
        fallback_received_at: OffsetDateTime,
    ) -> Self {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Self {
            org_id: event.org_id.clone(),
            occurred_at: event.occurred_at,
            id: event.id,
            received_at: event.received_at.unwrap_or(fallback_received_at),
            category: event.category.clone(),
            action: event.action.clone(),
            outcome: event.outcome.as_str().to_string(),
            actor_type: event.actor.kind.as_str().to_string(),
            actor_id: event.actor.id.clone(),
            actor_name: text(&event.actor.name),
            actor_email: text(&event.actor.email),
            target_types: event.targets.iter().map(|t| t.kind.clone()).collect(),
            target_ids: event.targets.iter().map(|t| t.id.clone()).collect(),
            target_names: event
                .targets
                .iter()
                .map(|t| t.name.clone().unwrap_or_default())
                .collect(),
            ip: text(&event.context.ip),
            user_agent: text(&event.context.user_agent),
            location: text(&event.context.location),
            request_id: text(&event.context.request_id),
            metadata: event
                .metadata
                .iter()
                .map(|(key, value)| (key.clone(), value.to_text()))
                .collect(),
            source: text(&event.source),
            schema_version: event.version,
            retention_days,
            // The canonical encoding is produced by serde_json (or verified UTF-8 by it), so
            // the lossy fallback never replaces anything; it only avoids a panic path.
            raw: std::str::from_utf8(raw).map_or_else(
                |_| String::from_utf8_lossy(raw).into_owned(),
                str::to_string,
            ),
        }
    }

    /// Approximate size in memory/on the wire, for batch byte limits.
    pub fn approx_bytes(&self) -> usize {
        self.raw.len() * 2 + 64
    }
}

/// An event waiting to be inserted: its canonical JSON (one allocation) and what the indexer
/// decided about it. The full row is built only while the insert streams, one at a time, so a
/// batch costs about the size of its JSON in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub org_id: String,
    pub json: Vec<u8>,
    pub retention_days: u16,
    /// The broker's append time (ms): `received_at` for events that carry none.
    pub broker_ms: i64,
    /// The table partition the row lands in ([`partition_of`] its `occurred_at`).
    pub partition: u32,
    /// The JSON's leaf when checking the message's integrity tag computed it (the platform's
    /// own messages); the indexer computes it for the others when it seals.
    pub leaf: Option<audit_core::integrity::Leaf>,
}

/// The events table's partition of a row: the UTC month of its `occurred_at` as `YYYYMM`
/// (the table is `PARTITION BY toYYYYMM(occurred_at)`). ClickHouse refuses an INSERT that
/// touches more than `max_partitions_per_insert_block` partitions, so the indexer counts them.
pub fn partition_of(occurred_at: OffsetDateTime) -> u32 {
    let utc = occurred_at.to_offset(time::UtcOffset::UTC);
    // Years before 0 cannot pass validation (RFC 3339); clamp rather than wrap.
    let year = u32::try_from(utc.year()).unwrap_or(0);
    year * 100 + u32::from(u8::from(utc.month()))
}

impl PendingEvent {
    /// Approximate memory held, for batch byte limits.
    pub fn approx_bytes(&self) -> usize {
        self.json.len() + self.org_id.len() + 96
    }

    /// The row to insert (parses the canonical JSON).
    pub fn to_row(&self) -> Result<EventRow, serde_json::Error> {
        let event: AuditEvent = serde_json::from_slice(&self.json)?;
        let broker =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.broker_ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Ok(EventRow::from_event(
            &event,
            &self.json,
            self.retention_days,
            broker,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn partitions_are_utc_months() {
        assert_eq!(
            partition_of(datetime!(2026-11-30 23:59:59.999 UTC)),
            202_611
        );
        // 00:30 on the 1st in UTC+02:00 is still the previous month in UTC.
        assert_eq!(partition_of(datetime!(2026-12-01 00:30 +02:00)), 202_611);
        assert_eq!(partition_of(datetime!(2016-01-01 00:00 UTC)), 201_601);
    }
}
