//! Exports: every event matching a filter, newest first, with no row cap, streamed from
//! ClickHouse so that neither side holds the whole result.
//!
//! * [`Store::export_ndjson`] relays the stored canonical JSON, one event per line, as
//!   ClickHouse writes it.
//! * [`Store::export_rows`] yields typed [`ExportRow`]s for the gateway's CSV encoder: the
//!   encoding (quoting, formula-injection protection, timestamp format) is done in Rust where it
//!   can be tested for any input, and the shared engine spends no CPU on it.
//!
//! Both carry the export bounds ([`crate::bounds`]): time and memory, never a row count.

use clickhouse::query::{BytesCursor, Query, RowCursor};
use serde::Deserialize;

use crate::error::Result;
use crate::query::EventFilter;
use crate::store::Store;

/// One event as the CSV export needs it: text columns as stored, times as unix milliseconds,
/// targets as parallel arrays, metadata as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, clickhouse::Row, Deserialize)]
pub struct ExportRow {
    pub event_id: String,
    pub occurred_at_ms: i64,
    pub received_at_ms: i64,
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
    pub metadata_json: String,
    pub source: String,
}

/// The SELECT list of [`ExportRow`]. Computed columns get names of their own: an alias equal
/// to a column name would replace that column in WHERE.
pub const EXPORT_ROW_COLUMNS: &str = "toString(id) AS event_id, \
     toUnixTimestamp64Milli(occurred_at) AS occurred_at_ms, \
     toUnixTimestamp64Milli(received_at) AS received_at_ms, \
     category, action, outcome, actor_type, actor_id, actor_name, actor_email, \
     target_types, target_ids, target_names, ip, user_agent, location, request_id, \
     toJSONString(metadata) AS metadata_json, toString(source) AS source";

impl Store {
    /// All matching events, newest first, as NDJSON bytes (the stored canonical JSON).
    pub fn export_ndjson(&self, org_id: &str, filter: &EventFilter) -> Result<BytesCursor> {
        // `raw` is compact JSON (no raw newlines or tabs), so TSVRaw yields NDJSON as is.
        let query = self.export_query(org_id, filter, "raw");
        Ok(query.fetch_bytes("TSVRaw")?)
    }

    /// All matching events, newest first, as typed rows (for the CSV encoder).
    pub fn export_rows(&self, org_id: &str, filter: &EventFilter) -> Result<RowCursor<ExportRow>> {
        let query = self.export_query(org_id, filter, EXPORT_ROW_COLUMNS);
        Ok(query.fetch::<ExportRow>()?)
    }

    /// `columns` of every event of `org_id` matching `filter`, newest first, under the export
    /// bounds.
    fn export_query(&self, org_id: &str, filter: &EventFilter, columns: &str) -> Query {
        let sql = filter.to_sql(org_id);
        let statement = format!(
            "SELECT {columns} FROM events FINAL WHERE {} ORDER BY occurred_at DESC, id DESC",
            sql.where_clause()
        );
        let query = sql.apply(self.client().query(&statement));
        self.export_bounds()
            .apply(query, self.read_label(), "export", org_id)
    }
}
