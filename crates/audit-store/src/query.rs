//! Organization-scoped reads. Every function takes the organization explicitly; every value
//! reaches ClickHouse as a server-side query parameter (`{name:Type}`), never as SQL text.
//!
//! * [`Store::list_events`]: newest first, keyset pagination on `(occurred_at, id)` — stable
//!   while new events arrive (they land before the first page, never between pages).
//! * [`Store::export_ndjson`], [`Store::export_rows`] (in [`crate::export`]): the same filters,
//!   no row cap, streamed, so the gateway's memory stays flat whatever the size.
//! * [`Store::feed`]: everything after a cursor in *arrival* order (`indexed_at`, then id), a
//!   few seconds behind "now" so that batches still being inserted are never skipped: a
//!   poller sees late-arriving events too, without gaps or duplicates.

use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::bounds::classify;
use crate::error::{Error, Result};
use crate::store::Store;

/// The filters of the list and export APIs. Empty means "no restriction".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub categories: Vec<String>,
    /// Exact action names.
    pub actions: Vec<String>,
    /// Action prefixes (from `user.*`: `user.`).
    pub action_prefixes: Vec<String>,
    /// Actor id or email.
    pub actor: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    pub ip: Option<String>,
    /// Free text over names, ids, emails, context and metadata (case-insensitive substring).
    pub text: Option<String>,
}

/// A position in the newest-first list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub occurred_at_ms: i64,
    pub id: Uuid,
}

/// A position in the arrival-ordered feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedCursor {
    pub indexed_at_ms: i64,
    pub id: Uuid,
}

/// One listed event: its position and its canonical JSON.
#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
pub struct ListedEvent {
    pub position_ms: i64,
    /// Named so as not to shadow the `id` column in WHERE (ClickHouse aliases are visible there).
    pub event_id: String,
    pub raw: String,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON event per line.
    Ndjson,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// Rows past their retention are invisible at once, even before a TTL merge removes them.
pub(crate) const NOT_EXPIRED: &str =
    "toDateTime(occurred_at) + toIntervalDay(retention_days) > now()";

/// A SQL fragment with the parameters it uses.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    conditions: Vec<String>,
    params: Vec<(String, ParamValue)>,
}

#[derive(Debug)]
enum ParamValue {
    Text(String),
    List(Vec<String>),
}

impl Sql {
    fn param(&mut self, name: &str, value: ParamValue) {
        self.params.push((name.to_string(), value));
    }

    pub(crate) fn apply(&self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for (name, value) in &self.params {
            query = match value {
                ParamValue::Text(text) => query.param(name, text),
                ParamValue::List(items) => query.param(name, items),
            };
        }
        query
    }

    pub(crate) fn where_clause(&self) -> String {
        self.conditions.join(" AND ")
    }
}

/// `2026-11-26 07:04:25.123` — the text form of a DateTime64(3) parameter (UTC).
pub(crate) fn datetime_param(at: OffsetDateTime) -> String {
    audit_core::event::format_utc_millis_sql(at)
}

fn datetime_from_ms(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| Error::invalid("cursor", "position out of range"))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl EventFilter {
    pub(crate) fn to_sql(&self, org_id: &str) -> Sql {
        let mut sql = Sql::default();
        sql.conditions.push("org_id = {org:String}".into());
        sql.param("org", ParamValue::Text(org_id.to_string()));
        sql.conditions.push(NOT_EXPIRED.into());
        if let Some(since) = self.since {
            sql.conditions
                .push("occurred_at >= {since:DateTime64(3, 'UTC')}".into());
            sql.param("since", ParamValue::Text(datetime_param(since)));
        }
        if let Some(until) = self.until {
            sql.conditions
                .push("occurred_at < {until:DateTime64(3, 'UTC')}".into());
            sql.param("until", ParamValue::Text(datetime_param(until)));
        }
        if !self.categories.is_empty() {
            sql.conditions
                .push("category IN {categories:Array(String)}".into());
            sql.param("categories", ParamValue::List(self.categories.clone()));
        }
        match (self.actions.is_empty(), self.action_prefixes.is_empty()) {
            (true, true) => {}
            (false, true) => sql.conditions.push("action IN {actions:Array(String)}".into()),
            (true, false) => sql
                .conditions
                .push("arrayExists(p -> startsWith(action, p), {prefixes:Array(String)})".into()),
            (false, false) => sql.conditions.push(
                "(action IN {actions:Array(String)} OR arrayExists(p -> startsWith(action, p), {prefixes:Array(String)}))"
                    .into(),
            ),
        }
        if !self.actions.is_empty() {
            sql.param("actions", ParamValue::List(self.actions.clone()));
        }
        if !self.action_prefixes.is_empty() {
            sql.param("prefixes", ParamValue::List(self.action_prefixes.clone()));
        }
        if let Some(actor) = &self.actor {
            sql.conditions
                .push("(actor_id = {actor:String} OR actor_email = {actor:String})".into());
            sql.param("actor", ParamValue::Text(actor.clone()));
        }
        match (&self.target_type, &self.target_id) {
            (Some(kind), Some(id)) => {
                sql.conditions.push(
                    "arrayExists((t, i) -> t = {target_type:String} AND i = {target_id:String}, target_types, target_ids)"
                        .into(),
                );
                sql.param("target_type", ParamValue::Text(kind.clone()));
                sql.param("target_id", ParamValue::Text(id.clone()));
            }
            (Some(kind), None) => {
                sql.conditions
                    .push("has(target_types, {target_type:String})".into());
                sql.param("target_type", ParamValue::Text(kind.clone()));
            }
            (None, Some(id)) => {
                sql.conditions
                    .push("has(target_ids, {target_id:String})".into());
                sql.param("target_id", ParamValue::Text(id.clone()));
            }
            (None, None) => {}
        }
        if let Some(outcome) = &self.outcome {
            sql.conditions.push("outcome = {outcome:String}".into());
            sql.param("outcome", ParamValue::Text(outcome.clone()));
        }
        if let Some(ip) = &self.ip {
            sql.conditions.push("ip = {ip:String}".into());
            sql.param("ip", ParamValue::Text(ip.clone()));
        }
        if let Some(text) = &self.text {
            // search_text is stored lower-cased; the n-gram index serves LIKE '%…%'.
            sql.conditions.push("search_text LIKE {text:String}".into());
            sql.param(
                "text",
                ParamValue::Text(format!("%{}%", like_literal(&text.to_lowercase()))),
            );
        }
        sql
    }
}

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct RawRow {
    raw: String,
}

impl Store {
    /// One event's canonical JSON, if it belongs to `org_id`.
    pub async fn event_json(&self, org_id: &str, id: Uuid) -> Result<Option<String>> {
        let query = self
            .client()
            .query(&format!(
                "SELECT raw FROM events FINAL WHERE org_id = {{org:String}} AND id = {{id:UUID}} AND {NOT_EXPIRED} LIMIT 1"
            ))
            .param("org", org_id)
            .param("id", id.to_string());
        let query = self
            .query_bounds()
            .apply(query, self.read_label(), "event", org_id);
        self.timed(async {
            let row: Option<RawRow> = query.fetch_optional().await.map_err(classify)?;
            Ok(row.map(|row| row.raw))
        })
        .await
    }

    /// How many distinct events an organization has (exactly-once count).
    pub async fn count_events(&self, org_id: &str) -> Result<u64> {
        self.timed(async {
            Ok(self
                .client()
                .query("SELECT count() FROM events FINAL WHERE org_id = {org:String}")
                .param("org", org_id)
                .fetch_one()
                .await?)
        })
        .await
    }

    /// One page, newest first, strictly after `cursor` when given.
    pub async fn list_events(
        &self,
        org_id: &str,
        filter: &EventFilter,
        cursor: Option<PageCursor>,
        limit: u32,
    ) -> Result<Vec<ListedEvent>> {
        let mut sql = filter.to_sql(org_id);
        if let Some(cursor) = cursor {
            sql.conditions.push(
                "(occurred_at, id) < ({cursor_at:DateTime64(3, 'UTC')}, {cursor_id:UUID})".into(),
            );
            sql.param(
                "cursor_at",
                ParamValue::Text(datetime_param(datetime_from_ms(cursor.occurred_at_ms)?)),
            );
            sql.param("cursor_id", ParamValue::Text(cursor.id.to_string()));
        }
        let statement = format!(
            "SELECT toUnixTimestamp64Milli(occurred_at) AS position_ms, toString(id) AS event_id, raw \
             FROM events FINAL WHERE {} ORDER BY occurred_at DESC, id DESC LIMIT {{limit:UInt32}}",
            sql.where_clause()
        );
        let query = sql
            .apply(self.client().query(&statement))
            .param("limit", limit);
        let query = self
            .query_bounds()
            .apply(query, self.read_label(), "list", org_id);
        self.timed(async { query.fetch_all::<ListedEvent>().await.map_err(classify) })
            .await
    }

    /// Up to `limit` events after `after` in arrival order, at least `settle_secs` old.
    pub async fn feed(
        &self,
        org_id: &str,
        after: Option<FeedCursor>,
        settle_secs: u64,
        limit: u32,
    ) -> Result<Vec<ListedEvent>> {
        let mut conditions = vec![
            "org_id = {org:String}".to_string(),
            NOT_EXPIRED.to_string(),
            "indexed_at <= now64(3) - toIntervalSecond({settle:UInt32})".to_string(),
        ];
        if after.is_some() {
            conditions.push(
                "(indexed_at, id) > ({after_at:DateTime64(3, 'UTC')}, {after_id:UUID})".into(),
            );
        }
        let statement = format!(
            "SELECT toUnixTimestamp64Milli(indexed_at) AS position_ms, toString(id) AS event_id, raw \
             FROM events FINAL WHERE {} ORDER BY indexed_at, id LIMIT {{limit:UInt32}}",
            conditions.join(" AND ")
        );
        let mut query = self
            .client()
            .query(&statement)
            .param("org", org_id)
            .param("settle", u32::try_from(settle_secs).unwrap_or(u32::MAX))
            .param("limit", limit);
        if let Some(after) = after {
            query = query
                .param(
                    "after_at",
                    datetime_param(datetime_from_ms(after.indexed_at_ms)?),
                )
                .param("after_id", after.id.to_string());
        }
        let query = self
            .query_bounds()
            .apply(query, self.read_label(), "feed", org_id);
        self.timed(async { query.fetch_all::<ListedEvent>().await.map_err(classify) })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn filters_become_bound_conditions() {
        let filter = EventFilter {
            categories: vec!["billing".into()],
            actions: vec!["user.login.failed".into()],
            action_prefixes: vec!["member.".into()],
            actor: Some("x' OR 1=1 --".into()),
            text: Some("50%_off\\".into()),
            ..EventFilter::default()
        };
        let sql = filter.to_sql("org_a");
        let clause = sql.where_clause();
        assert!(
            !clause.contains("OR 1=1"),
            "values never enter the SQL text: {clause}"
        );
        assert!(clause.contains("{actor:String}"));
        let text = sql
            .params
            .iter()
            .find(|(name, _)| name == "text")
            .map(|(_, v)| v);
        assert!(matches!(text, Some(ParamValue::Text(t)) if t == "%50\\%\\_off\\\\%"));
    }

    #[test]
    fn datetimes_are_utc_milliseconds() {
        let at = time::macros::datetime!(2026-11-26 09:04:25.123456 +02:00);
        assert_eq!(datetime_param(at), "2026-11-26 07:04:25.123");
    }
}
