//! Organization-scoped reads. Every function takes the organization explicitly and binds it.

use serde::Deserialize;
use uuid::Uuid;

use crate::error::Result;
use crate::store::Store;

#[derive(Debug, Clone, clickhouse::Row, Deserialize)]
struct RawRow {
    raw: String,
}

impl Store {
    /// One event's canonical JSON, if it belongs to `org_id`.
    pub async fn event_json(&self, org_id: &str, id: Uuid) -> Result<Option<String>> {
        self.timed(async {
            let row: Option<RawRow> = self
                .client()
                .query("SELECT raw FROM events FINAL WHERE org_id = {org:String} AND id = {id:UUID} LIMIT 1")
                .param("org", org_id)
                .param("id", id.to_string())
                .fetch_optional()
                .await?;
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
}
