//! What every hostile-input case checks after the hostile input: the pipeline still indexes
//! other organizations' events.

use std::time::{Duration, Instant};

use crate::events::{Gateway, event};
use crate::{Namespace, eventually};

/// Publishes one event of `org` through the gateway (202) and waits until ClickHouse serves
/// it; returns the time from the gateway's acknowledgement to the event being queryable.
pub async fn still_indexing(ns: &Namespace, gateway: &Gateway, key: &str, org: &str) -> Duration {
    let probe = event(org, "resource.created");
    let id = probe["id"].as_str().unwrap_or_default().to_string();
    let (status, body) = gateway.post_events(key, &probe).await;
    assert_eq!(
        status, 202,
        "another organization's event is accepted: {body}"
    );
    let acknowledged = Instant::now();
    let query = format!("SELECT count() FROM events FINAL WHERE org_id = '{org}' AND id = '{id}'");
    eventually(
        &format!("{org}'s new event indexed"),
        Duration::from_secs(60),
        || async { (ns.try_sql_u64(&query).await == Some(1)).then_some(()) },
    )
    .await;
    acknowledged.elapsed()
}
