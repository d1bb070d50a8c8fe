//! Issue 4 — the indexer under faults: killed mid-stream, ClickHouse gone for 20 s, and
//! per-organization TTL retention (default, Enterprise, custom) including changes applied to
//! rows already stored.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // test suites: unwrap states what must hold

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{
    DedicatedEngine, EngineKind, Namespace, Service, ServiceKind, eventually, kafka,
};
use serde_json::{Value, json};

/// Produces events straight to Kafka until `stop`, returning every id acknowledged.
fn produce_until(
    ns: &Namespace,
    orgs: usize,
    per_second: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    let brokers = ns.infra.kafka.clone();
    let topic = ns.events_topic.clone();
    tokio::spawn(async move {
        let producer = kafka::producer(&brokers);
        let mut ids = Vec::new();
        let mut n = 0usize;
        let tick = Duration::from_millis(100);
        let per_tick = (per_second / 10).max(1);
        while !stop.load(Ordering::Relaxed) {
            let started = std::time::Instant::now();
            let mut sends = Vec::new();
            for _ in 0..per_tick {
                let org = format!("org_{}", n % orgs);
                let sent = event(&org, "resource.config.edited");
                ids.push(sent["id"].as_str().unwrap().to_string());
                let payload = sent.to_string();
                let producer = producer.clone();
                let topic = topic.clone();
                sends.push(async move {
                    kafka::produce(&producer, &topic, Some(&org), payload.as_bytes()).await
                });
                n += 1;
            }
            futures::future::join_all(sends).await;
            if let Some(rest) = tick.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        ids
    })
}

/// Compares the produced ids with ClickHouse: every id exactly once in query results.
async fn assert_exactly_once(ns: &Namespace, produced: &[String]) {
    let expected: HashSet<&str> = produced.iter().map(String::as_str).collect();
    assert_eq!(
        expected.len(),
        produced.len(),
        "the producer made unique ids"
    );
    let count_query = "SELECT count() FROM events FINAL";
    eventually(
        "every produced event indexed",
        Duration::from_secs(120),
        || async {
            (ns.try_sql_u64(count_query).await >= Some(expected.len() as u64)).then_some(())
        },
    )
    .await;
    let listed = ns
        .sql("SELECT toString(id) FROM events FINAL FORMAT TSVRaw")
        .await;
    let listed: Vec<&str> = listed.lines().collect();
    let unique: HashSet<&str> = listed.iter().copied().collect();
    let missing = expected.difference(&unique).count();
    let unexpected = unique.difference(&expected).count();
    let duplicated = listed.len() - unique.len();
    let physical = ns.sql_u64("SELECT count() FROM events").await;
    println!(
        "{}: produced {}, in query results {}, missing {missing}, duplicated {duplicated}, unexpected {unexpected}; physical rows before merges {physical}",
        ns.id,
        expected.len(),
        listed.len()
    );
    assert_eq!((missing, duplicated, unexpected), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_stream_every_event_exactly_once() {
    let ns = Namespace::new("indexer-sigkill");
    // Small, frequent batches so the kill lands between insert and commit as often as possible.
    let extra = [
        ("INDEXER__BATCH__MAX_ROWS", "500"),
        ("INDEXER__BATCH__MAX_WAIT_MS", "50"),
    ];
    let mut indexer = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(&ns, 12, 2_000, stop.clone());

    eventually("some events indexed", Duration::from_secs(60), || async {
        (ns.try_sql_u64("SELECT count() FROM events")
            .await
            .unwrap_or(0)
            > 2_000)
            .then_some(())
    })
    .await;
    indexer.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    indexer.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    indexer.kill();
    indexer.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    assert_exactly_once(&ns, &produced).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clickhouse_down_for_20s_no_loss_no_duplicates() {
    let mut ns = Namespace::new("indexer-ch-down");
    let clickhouse = DedicatedEngine::start(EngineKind::ClickHouse, &ns);
    ns.infra.clickhouse = clickhouse.address();
    let extra = [
        ("INDEXER__RETRY__MAX_BACKOFF_MS", "2000"),
        ("INDEXER__BATCH__MAX_ROWS", "2000"),
    ];
    let indexer = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(&ns, 6, 1_000, stop.clone());
    tokio::time::sleep(Duration::from_secs(4)).await;

    clickhouse.stop();
    let http = reqwest::Client::new();
    let not_ready = eventually(
        "readiness reflects the outage",
        Duration::from_secs(15),
        || async {
            let response = http
                .get(format!("{}/readyz", indexer.url()))
                .send()
                .await
                .ok()?;
            (response.status().as_u16() == 503).then_some(())?;
            response.text().await.ok()
        },
    )
    .await;
    assert!(not_ready.contains("clickhouse"), "{not_ready}");
    tokio::time::sleep(Duration::from_secs(16)).await;
    clickhouse.resume();
    indexer.wait_ready(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    assert_exactly_once(&ns, &produced).await;

    // The lag recovers: every partition's consumer lag returns to zero.
    eventually(
        "consumer lag back to zero",
        Duration::from_secs(60),
        || async {
            let text = http
                .get(format!("{}/metrics", indexer.url()))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            let lags: Vec<f64> = text
                .lines()
                .filter(|line| {
                    line.starts_with("kafka_consumer_lag{") && line.contains(&ns.events_topic)
                })
                .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
                .collect();
            (!lags.is_empty() && lags.iter().all(|lag| *lag == 0.0)).then_some(())
        },
    )
    .await;
}

fn days_ago(days: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Surviving ages (in days) of an organization's events.
async fn surviving_ages(ns: &Namespace, org: &str) -> Vec<i64> {
    let text = ns
        .sql(&format!(
            "SELECT toInt64(round(dateDiff('second', occurred_at, now64(3)) / 86400)) FROM events FINAL WHERE org_id = '{org}' AND action = 'resource.created' ORDER BY 1 FORMAT TSVRaw"
        ))
        .await;
    text.lines().map(|l| l.parse().unwrap()).collect()
}

async fn retention_of(ns: &Namespace, org: &str) -> Vec<u64> {
    let text = ns
        .sql(&format!("SELECT DISTINCT retention_days FROM events WHERE org_id = '{org}' AND action = 'resource.created' ORDER BY 1 FORMAT TSVRaw"))
        .await;
    text.lines().map(|l| l.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_removes_rows_past_each_organizations_retention() {
    let ns = Namespace::new("indexer-ttl");
    let _indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, &[]).await;
    let client = Gateway::new(&gateway.url());
    // Hold TTL merges so stamping can be observed before anything is removed.
    ns.sql("SYSTEM STOP TTL MERGES events").await;

    let patch = |org: &str, body: Value| {
        let client = client.clone();
        let org = org.to_string();
        async move {
            let (status, body) = client
                .admin(
                    reqwest::Method::PATCH,
                    &format!("/v1/admin/orgs/{org}"),
                    Some(&body),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    patch(
        "org_ent",
        json!({"plan": "enterprise", "retention_days": 1095}),
    )
    .await;
    patch("org_custom", json!({"plan": "team", "retention_days": 50})).await;
    // org_default has no settings at all: the free plan's 90 days.

    // Each organization gets events aged 10, 45, 100 and 400 days. Those already older than
    // their organization's retention would be deleted as soon as stored: they are
    // dead-lettered with the reason instead (the gateway refuses them with a 422).
    let producer = kafka::producer(&ns.infra.kafka);
    let ages = [10, 45, 100, 400];
    for org in ["org_default", "org_ent", "org_custom"] {
        for age in ages {
            let mut old = event(org, "resource.created");
            old["occurred_at"] = json!(days_ago(age));
            kafka::produce(
                &producer,
                &ns.events_topic,
                Some(org),
                old.to_string().as_bytes(),
            )
            .await;
        }
    }
    eventually("8 events indexed", Duration::from_secs(30), || async {
        (ns.try_sql_u64("SELECT count() FROM events WHERE action = 'resource.created'")
            .await
            == Some(8))
        .then_some(())
    })
    .await;
    let expired = eventually(
        "4 expired events dead-lettered",
        Duration::from_secs(30),
        || async {
            let letters = kafka::read_all(&ns.infra.kafka, &ns.dead_letter_topic);
            (letters.len() >= 4).then_some(letters)
        },
    )
    .await;
    for letter in &expired {
        let reason = kafka::header(letter, "dlq-reason").unwrap_or_default();
        assert!(
            reason.contains("$.occurred_at") && reason.contains("deleted as soon as it was stored"),
            "{reason}"
        );
    }
    assert_eq!(retention_of(&ns, "org_default").await, [90]);
    assert_eq!(retention_of(&ns, "org_ent").await, [1095]);
    assert_eq!(retention_of(&ns, "org_custom").await, [50]);

    // Retention changes reach stored rows: extend the custom org (its 45-day-old event stays)
    // and shorten the Enterprise org (its 400-day-old event goes).
    patch("org_custom", json!({"retention_days": 60})).await;
    patch("org_ent", json!({"retention_days": 365})).await;
    eventually(
        "stored rows re-stamped",
        Duration::from_secs(60),
        || async {
            let custom = retention_of(&ns, "org_custom").await;
            let ent = retention_of(&ns, "org_ent").await;
            (custom == [60] && ent == [365]).then_some(())
        },
    )
    .await;
    let progress = eventually(
        "mutation progress reported as applied",
        Duration::from_secs(30),
        || async {
            let (status, body) = client
                .admin(
                    reqwest::Method::GET,
                    "/v1/admin/orgs/org_ent/retention",
                    None,
                )
                .await;
            (status == 200
                && body["applied_to_stored_rows"] == true
                && body["retention_days"] == 365)
                .then_some(body)
        },
    )
    .await;
    assert!(
        !progress["mutations"].as_array().unwrap().is_empty(),
        "{progress}"
    );

    // Let TTL apply.
    ns.sql("SYSTEM START TTL MERGES events").await;
    ns.sql("OPTIMIZE TABLE events FINAL").await;
    assert_eq!(
        surviving_ages(&ns, "org_default").await,
        [10, 45],
        "90 days (plan default)"
    );
    assert_eq!(
        surviving_ages(&ns, "org_ent").await,
        [10, 45, 100],
        "365 days (Enterprise, shortened from 1095)"
    );
    assert_eq!(
        surviving_ages(&ns, "org_custom").await,
        [10, 45],
        "60 days (custom, extended from 50)"
    );

    // The change itself is in the organization's own log.
    let changes = ns
        .sql_u64("SELECT count() FROM events FINAL WHERE org_id = 'org_ent' AND action = 'audit_log.retention.changed'")
        .await;
    assert!(changes >= 1);
}

/// Issue 8: several indexers share the partitions; killing one mid-stream, adding one and
/// stopping one gracefully all rebalance without loss or duplicates in query results.
#[tokio::test(flavor = "multi_thread")]
async fn rebalances_keep_results_exactly_once() {
    let ns = Namespace::new("indexer-rebalance");
    let extra = [
        ("INDEXER__BATCH__MAX_ROWS", "1000"),
        ("INDEXER__BATCH__MAX_WAIT_MS", "100"),
    ];
    let mut first = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let mut second = Service::start(ServiceKind::Indexer, &ns, &extra).await;
    let stop = Arc::new(AtomicBool::new(false));
    let producing = produce_until(&ns, 24, 1_500, stop.clone());

    let progress = |minimum: u64| {
        let ns = &ns;
        async move {
            eventually("indexing progresses", Duration::from_secs(60), || async {
                (ns.try_sql_u64("SELECT count() FROM events")
                    .await
                    .unwrap_or(0)
                    > minimum)
                    .then_some(())
            })
            .await
        }
    };
    progress(1_500).await;
    first.kill(); // its partitions move to the survivor after the session timeout
    progress(8_000).await;
    let third = Service::start(ServiceKind::Indexer, &ns, &extra).await; // scale up
    progress(14_000).await;
    assert!(second.terminate(), "graceful stop drains and exits cleanly"); // scale down
    progress(18_000).await;
    stop.store(true, Ordering::Relaxed);
    let produced = producing.await.unwrap();
    assert_exactly_once(&ns, &produced).await;
    let log = std::fs::read_to_string(third.log_path()).unwrap();
    assert!(
        log.contains("partitions assigned"),
        "the added indexer took partitions"
    );
}
