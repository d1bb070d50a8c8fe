//! Readers under load (`/v1/orgs/{org}/events…`): one tenant looping expensive searches and
//! opening many slow exports, exports abandoned mid-stream, and reads past their engine bounds.

use std::time::{Duration, Instant};

use audit_tests::events::Gateway;
use audit_tests::hostile::{ReadHammer, still_indexing};
use audit_tests::{Namespace, Service, ServiceKind, eventually, synthetic, user_token};
use serde_json::{Value, json};

/// The organization the synthetic rows belong to.
const BIG_ORG: &str = "org_0000";

struct Setup {
    ns: Namespace,
    _indexer: Service,
    gateway: Service,
    client: Gateway,
    key: String,
}

async fn setup(name: &str, rows: u64, gateway_env: &[(&str, &str)]) -> Setup {
    let ns = Namespace::new(name);
    let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, gateway_env).await;
    let client = Gateway::new(&gateway.url());
    let key = client.producer_key("svc", &["*"], None).await;
    if rows > 0 {
        ns.sql(&synthetic::generate_sql(0, rows, rows)).await;
    }
    Setup {
        ns,
        _indexer: indexer,
        gateway,
        client,
        key,
    }
}

/// Makes `org` Enterprise and returns a new read-only API token of it.
async fn api_token(client: &Gateway, org: &str) -> String {
    client.enterprise(org).await;
    let response = client
        .http
        .post(format!("{}/v1/orgs/{org}/api-tokens", client.url))
        .bearer_auth(user_token(org, "admin", "u_admin", 3600))
        .json(&json!({"name": "siem-pull"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    created["token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_hammering_reads_is_throttled_while_other_organizations_stay_fresh() {
    let setup = setup("hostile-hammer", 300_000, &[]).await;
    let token = api_token(&setup.client, BIG_ORG).await;
    let undisturbed = still_indexing(&setup.ns, &setup.client, &setup.key, "org_fresh").await;

    // One API token looping a search that matches almost everything, and holding many slow
    // exports.
    let hammer = ReadHammer::start(&setup.gateway.url(), BIG_ORG, &token, 16, 12);
    let http = reqwest::Client::new();

    // Meanwhile another organization's new events keep arriving and being read.
    let fresh_reader = user_token("org_fresh", "admin", "u_fresh", 3600);
    let mut freshness = Vec::new();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        freshness.push(still_indexing(&setup.ns, &setup.client, &setup.key, "org_fresh").await);
        let response = http
            .get(format!(
                "{}/v1/orgs/org_fresh/events?limit=10",
                setup.gateway.url()
            ))
            .bearer_auth(&fresh_reader)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "another organization's reads are not throttled"
        );
        let page: Value = response.json().await.unwrap();
        assert!(!page["data"].as_array().unwrap().is_empty());
    }
    let (searches, exports) = hammer.stop();
    println!("undisturbed freshness (ack → queryable): {undisturbed:?}");
    println!("freshness of another organization while one tenant hammers reads: {freshness:?}");
    println!("the hammering token's searches: {:?}", searches.counts);
    println!("the hammering token's exports: {:?}", exports.counts);
    assert!(
        searches.count("429 too_many_requests") > 0,
        "searches over the cap are refused"
    );
    assert!(
        exports.count("429 too_many_requests") > 0,
        "exports over the cap are refused"
    );
    assert!(exports.count("200") > 0, "exports within the cap stream");
    for seen in [&searches, &exports] {
        assert_eq!(
            seen.without_retry_after, 0,
            "every 429/503 says when to retry"
        );
        let unexpected: Vec<&String> = seen
            .counts
            .keys()
            .filter(|key| {
                !(key.starts_with("200")
                    || key.starts_with("429 too_many_requests")
                    || key.starts_with("503 read_limit_exceeded"))
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "only bounded answers: {unexpected:?}"
        );
    }
    still_indexing(&setup.ns, &setup.client, &setup.key, "org_after").await;
}

/// The gateway's export queries of `database` running on the engine.
async fn running_exports(ns: &Namespace) -> Vec<String> {
    let text = ns
        .sql(&format!(
            "SELECT query_id FROM system.processes WHERE query_id LIKE 'gw-export-%' AND current_database = '{}' FORMAT TSVRaw",
            ns.database
        ))
        .await;
    text.lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_abandoned_mid_stream_ends_on_the_engine() {
    let setup = setup(
        "hostile-abandoned-export",
        300_000,
        &[("GATEWAY__READ__MAX_CONCURRENT_EXPORTS_PER_READER", "1")],
    )
    .await;
    let admin = user_token(BIG_ORG, "admin", "u_exporter", 3600);
    let url = format!(
        "{}/v1/orgs/{BIG_ORG}/events/export?format=ndjson",
        setup.gateway.url()
    );
    let http = reqwest::Client::new();
    let mut export = http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(export.status(), 200);
    let first = export.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    // The client stops reading: the engine's query waits on its output, mid-stream.
    let query_id = eventually(
        "the export's query on the engine",
        Duration::from_secs(30),
        || async { running_exports(&setup.ns).await.into_iter().next() },
    )
    .await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            running_exports(&setup.ns).await.contains(&query_id),
            "the export cannot finish while its client holds it unread"
        );
    }
    let second = http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(
        second.status(),
        429,
        "the reader's export slot is held while it streams"
    );
    assert!(second.headers().contains_key("retry-after"));

    // The client goes away.
    let disconnected = Instant::now();
    drop(export);
    eventually(
        "the abandoned export's query to end",
        Duration::from_secs(60),
        || async { (!running_exports(&setup.ns).await.contains(&query_id)).then_some(()) },
    )
    .await;
    println!(
        "query {query_id} left system.processes {:.1?} after the client disconnected",
        disconnected.elapsed()
    );
    // And its slot is free again.
    let again = http.get(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(again.status(), 200);
    drop(again);
    still_indexing(&setup.ns, &setup.client, &setup.key, "org_other").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_past_their_engine_bounds_are_stopped_with_a_clear_503() {
    let setup = setup(
        "hostile-read-bounds",
        2_000,
        &[("GATEWAY__READ__QUERY_MAX_RESULT_BYTES", "20000")],
    )
    .await;
    let admin = user_token(BIG_ORG, "admin", "u_admin", 3600);
    let http = reqwest::Client::new();
    let get = |path: String| {
        let (http, admin) = (http.clone(), admin.clone());
        let url = format!("{}{path}", setup.gateway.url());
        async move {
            let response = http.get(url).bearer_auth(admin).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            (status, retry_after, response.text().await.unwrap())
        }
    };
    // A page far over the result bound is stopped by the engine, with a clear answer.
    let (status, retry_after, body) = get(format!("/v1/orgs/{BIG_ORG}/events?limit=1000")).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "read_limit_exceeded");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("result size")
    );
    // A page within it is served.
    let (status, _, body) = get(format!("/v1/orgs/{BIG_ORG}/events?limit=5")).await;
    assert_eq!(status, 200, "{body}");
    // Exports have no result cap: every row, far past the bytes a page may have.
    let (status, _, body) = get(format!("/v1/orgs/{BIG_ORG}/events/export?format=csv")).await;
    assert_eq!(status, 200);
    // The export records itself (and the page reads above record a view) in this organization's
    // log, so those rows may be in it too, depending on whether they were indexed in time.
    let mut parser = csv::Reader::from_reader(body.as_bytes());
    let action = parser
        .headers()
        .unwrap()
        .iter()
        .position(|c| c == "action")
        .unwrap();
    let actions: Vec<String> = parser
        .records()
        .map(|r| r.unwrap()[action].to_string())
        .collect();
    let synthetic = actions
        .iter()
        .filter(|a| !a.starts_with("audit_log."))
        .count();
    assert_eq!(synthetic, 2_000, "every stored row, once");
    assert!(
        actions.len() - synthetic <= 2,
        "only the reads' own records besides: {actions:?}"
    );

    // A second gateway whose exports may use almost no memory: refused before the first byte.
    let starved = Service::start(
        ServiceKind::Gateway,
        &setup.ns,
        &[("GATEWAY__READ__EXPORT_MAX_MEMORY_BYTES", "1024")],
    )
    .await;
    let response = http
        .get(format!(
            "{}/v1/orgs/{BIG_ORG}/events/export?format=ndjson",
            starved.url()
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "read_limit_exceeded", "{error}");
    still_indexing(&setup.ns, &setup.client, &setup.key, "org_other").await;
}
