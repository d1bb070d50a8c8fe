//! What the integrity tests share: short sealing windows, the verification endpoints of the
//! gateway (a verdict, waiting for an intact one, the findings it names) and publishing events.

use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Service, eventually, user_token};
use serde_json::Value;

/// Windows of two seconds, so tests see seals quickly.
pub const INDEXER: [(&str, &str); 1] = [("INDEXER__INTEGRITY__WINDOW_SECS", "2")];
/// Batches reach the sealer within a second here (the default, 30 s, covers a slow insert).
pub const GATEWAY: [(&str, &str); 2] = [
    ("GATEWAY__INTEGRITY__WINDOW_SECS", "2"),
    ("GATEWAY__INTEGRITY__IN_FLIGHT_SECS", "1"),
];

pub async fn get(gateway: &Service, org: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", gateway.url()))
        .bearer_auth(user_token(org, "admin", "auditor@example.com", 600))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub async fn verify(gateway: &Service, org: &str) -> Value {
    let (status, body) = get(gateway, org, &format!("/v1/orgs/{org}/integrity/verify")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the organization's whole last day verifies as sealed and intact.
pub async fn intact(gateway: &Service, org: &str) -> Value {
    eventually(
        &format!("{org} sealed and intact"),
        Duration::from_secs(60),
        || async {
            let body = verify(gateway, org).await;
            (body["state"] == "intact" && body["head_confirmed"] == true).then_some(body)
        },
    )
    .await
}

/// Publishes `count` events of `org` through the gateway; returns their ids.
pub async fn publish(gateway: &Gateway, key: &str, org: &str, count: usize) -> Vec<String> {
    let events: Vec<Value> = (0..count).map(|_| event(org, "resource.created")).collect();
    let (status, body) = gateway
        .post_events(key, &Value::Array(events.clone()))
        .await;
    assert_eq!(status, 202, "{body}");
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

pub fn findings(body: &Value) -> Vec<(String, Option<String>, Option<u64>)> {
    body["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_string(),
                f["event_id"].as_str().map(str::to_string),
                f["seq"].as_u64(),
            )
        })
        .collect()
}
