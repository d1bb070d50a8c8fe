//! The arrival-ordered feed for Enterprise API tokens: every event exactly once, in the order
//! it arrived, including an event that arrives late with an old `occurred_at`.

use std::collections::HashSet;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, user_token};
use serde_json::{Value, json};

use crate::common::{Reader, ids_where, patch_org};

/// Polls the feed (3 events per call) until every id of `expected` has been delivered.
async fn drain_feed(
    reader: &Reader,
    token: &str,
    cursor: &mut Option<String>,
    delivered: &mut Vec<Value>,
    expected: &HashSet<String>,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let path = match cursor.as_deref() {
            Some(after) => format!("/v1/orgs/org_feed/events/feed?after={after}&limit=3"),
            None => "/v1/orgs/org_feed/events/feed?limit=3".to_string(),
        };
        let (status, body) = reader.json(token, &path).await;
        assert_eq!(status, 200, "{body}");
        delivered.extend(body["data"].as_array().unwrap().iter().cloned());
        *cursor = body["next_cursor"].as_str().map(str::to_string);
        let seen = ids_where(delivered, |_| true);
        if expected.is_subset(&seen) && body["has_more"] == false {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "feed did not deliver {expected:?}; got {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_returns_everything_once_in_arrival_order() {
    let ns = Namespace::new("read-feed");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[("GATEWAY__READ__FEED_SETTLE_SECS", "1")],
    )
    .await;
    let client = Gateway::new(&gateway.url());
    let reader = Reader::new(&gateway);
    patch_org(&client, "org_feed", json!({"plan": "enterprise"})).await;
    let key = client
        .producer_key("svc", &["authentication", "service"], None)
        .await;
    let admin = user_token("org_feed", "admin", "u_admin", 600);
    let response = reader
        .http
        .post(format!("{}/v1/orgs/org_feed/api-tokens", reader.url))
        .bearer_auth(&admin)
        .json(&json!({"name": "siem"}))
        .send()
        .await
        .unwrap();
    let api_token = response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();

    let mut delivered: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let first: Vec<Value> = (0..5)
        .map(|_| event("org_feed", "user.login.succeeded"))
        .collect();
    assert_eq!(
        client
            .post_events(&key, &Value::Array(first.clone()))
            .await
            .0,
        202
    );
    drain_feed(
        &reader,
        &api_token,
        &mut cursor,
        &mut delivered,
        &ids_where(&first, |_| true),
    )
    .await;

    // A late-arriving event (it happened 30 days ago) and a resubmission of an event already
    // delivered: the late one is delivered, the duplicate is not delivered again.
    let mut late = event("org_feed", "resource.deleted");
    late["occurred_at"] = json!(
        (time::OffsetDateTime::now_utc() - time::Duration::days(30))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let fresh = event("org_feed", "resource.created");
    assert_eq!(
        client
            .post_events(&key, &json!([late, first[2].clone(), fresh]))
            .await
            .0,
        202
    );
    drain_feed(
        &reader,
        &api_token,
        &mut cursor,
        &mut delivered,
        &ids_where(&[late.clone(), fresh.clone()], |_| true),
    )
    .await;
    // Give the duplicate every chance to show up before checking.
    tokio::time::sleep(Duration::from_secs(3)).await;
    drain_feed(
        &reader,
        &api_token,
        &mut cursor,
        &mut delivered,
        &HashSet::new(),
    )
    .await;

    // The feed carries the whole log, meta events (token creation, views) included.
    let business: Vec<String> = delivered
        .iter()
        .filter(|e| e["category"] != "audit_log")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let unique: HashSet<&String> = business.iter().collect();
    assert_eq!(
        unique.len(),
        business.len(),
        "every event once: {business:?}"
    );
    assert_eq!(unique.len(), 7, "5 + the late arrival + the fresh one");
    let all: Vec<&str> = delivered
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        all.iter().collect::<HashSet<_>>().len(),
        all.len(),
        "meta events are not repeated either"
    );
    // Arrival order: the late event (old occurred_at) comes after the first five.
    let position = |id: &str| business.iter().position(|b| b == id).unwrap();
    assert!(position(late["id"].as_str().unwrap()) > position(first[4]["id"].as_str().unwrap()));
}
