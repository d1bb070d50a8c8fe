//! Boundary: producers (HTTP and straight to Kafka) sending history, and rows the engine
//! refuses. Issue 13, item 1: one request of 101 valid events spanning 101 months was answered
//! 202 and then every INSERT failed ("Too many partitions for single INSERT block"), the
//! indexer rewound forever and indexing stopped for every organization, silently.

use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, Service, ServiceKind, eventually, kafka};
use serde_json::{Value, json};

use crate::common::{
    bystander_is_indexed, bystander_is_indexed_via_gateway, dead_letters, metric, months_ago,
};

/// Plans that let an Enterprise organization keep ten years, so a 101-month history is inside
/// its retention (the shipped maximum is three years).
const TEN_YEARS: &str = "3700";

async fn ten_year_org(gateway: &Gateway, org: &str) {
    let (status, body) = gateway
        .admin(
            reqwest::Method::PATCH,
            &format!("/v1/admin/orgs/{org}"),
            Some(&json!({"plan": "enterprise", "retention_days": 3650})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn history(org: &str, months: i64) -> Vec<Value> {
    (0..months)
        .map(|age| {
            let mut old = event(org, "member.role.changed");
            old["occurred_at"] = json!(months_ago(age));
            old
        })
        .collect()
}

async fn count(ns: &Namespace, org: &str) -> Option<u64> {
    // The history only (operator changes are in the organization's log too).
    ns.try_sql_u64(&format!(
        "SELECT count() FROM events FINAL WHERE org_id = '{org}' AND action = 'member.role.changed'"
    ))
    .await
}

/// The reproduction over HTTP: 101 events over 101 months in one request. Inside the
/// organization's retention they are all indexed (the indexer splits the INSERT by partition),
/// older events are refused per event with the reason, and other organizations keep flowing.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_backfill_over_101_months_is_indexed_and_nobody_stops() {
    let ns = Namespace::new("hostile-backfill-http");
    let indexer = Service::start(
        ServiceKind::Indexer,
        &ns,
        &[
            ("INDEXER__PLANS__ENTERPRISE__MAX_RETENTION_DAYS", TEN_YEARS),
            // Few partitions per INSERT, so the split certainly happens within the batch.
            ("INDEXER__BATCH__MAX_PARTITIONS_PER_INSERT", "10"),
        ],
    )
    .await;
    let gateway_service = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[("GATEWAY__PLANS__ENTERPRISE__MAX_RETENTION_DAYS", TEN_YEARS)],
    )
    .await;
    let gateway = Gateway::new(&gateway_service.url());
    ten_year_org(&gateway, "org_migrating").await;
    let key = gateway.producer_key("importer", &["*"], None).await;

    let (status, body) = gateway
        .post_events(&key, &Value::Array(history("org_migrating", 101)))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 101);

    // The same history for an organization keeping 90 days: what it would never see is
    // refused, event by event, with the reason; the rest is accepted.
    let (status, body) = gateway
        .post_events(&key, &Value::Array(history("org_free", 101)))
        .await;
    assert_eq!(status, 207, "{body}");
    let results = body["results"].as_array().unwrap();
    let rejected: Vec<&Value> = results
        .iter()
        .filter(|result| result["status"] == "rejected")
        .collect();
    assert!(rejected.len() >= 97, "{body}");
    for result in &rejected {
        let error = &result["errors"][0];
        assert_eq!(error["path"], "$.occurred_at", "{result}");
        assert!(
            error["reason"]
                .as_str()
                .unwrap()
                .contains("keeps its log for 90 days"),
            "{result}"
        );
    }
    let accepted_free = u64::try_from(results.len() - rejected.len()).unwrap();

    bystander_is_indexed_via_gateway(&ns, &gateway, &key, "org_bystander").await;
    eventually(
        "the whole backfill indexed",
        Duration::from_secs(60),
        || async {
            (count(&ns, "org_migrating").await == Some(101)
                && count(&ns, "org_free").await == Some(accepted_free))
            .then_some(())
        },
    )
    .await;
    let splits = metric(&indexer.url(), "indexer_insert_splits_total").await;
    assert!(
        splits >= 1.0,
        "101 months in one batch were split: {splits}"
    );
    // Every month is its own partition, and still in the log.
    let months = ns
        .sql_u64("SELECT uniqExact(toYYYYMM(occurred_at)) FROM events FINAL WHERE org_id = 'org_migrating' AND action = 'member.role.changed'")
        .await;
    assert_eq!(months, 101);
}

/// The same straight to Kafka, with the partition split disabled: ClickHouse refuses the
/// INSERT as a whole ("Too many partitions"), the indexer isolates (halves the batch until
/// the INSERTs succeed) instead of retrying forever. Events older than their organization's
/// retention are dead-lettered with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_backfill_that_clickhouse_refuses_whole_is_isolated_not_retried_forever() {
    let ns = Namespace::new("hostile-backfill-kafka");
    let indexer = Service::start(
        ServiceKind::Indexer,
        &ns,
        &[
            ("INDEXER__PLANS__ENTERPRISE__MAX_RETENTION_DAYS", TEN_YEARS),
            // As before the fix: one INSERT for the whole batch, whatever it spans.
            ("INDEXER__BATCH__MAX_PARTITIONS_PER_INSERT", "100000"),
            // One batch for the whole burst.
            ("INDEXER__BATCH__MAX_WAIT_MS", "2000"),
            ("INDEXER__BATCH__MAX_WAIT_BEHIND_MS", "2000"),
        ],
    )
    .await;
    let gateway_service = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[("GATEWAY__PLANS__ENTERPRISE__MAX_RETENTION_DAYS", TEN_YEARS)],
    )
    .await;
    let gateway = Gateway::new(&gateway_service.url());
    ten_year_org(&gateway, "org_migrating").await;

    let producer = kafka::producer(&ns.infra.kafka);
    let mut sends = Vec::new();
    for old in history("org_migrating", 101) {
        let producer = producer.clone();
        let topic = ns.events_topic.clone();
        sends.push(async move {
            kafka::produce(
                &producer,
                &topic,
                Some("org_migrating"),
                old.to_string().as_bytes(),
            )
            .await;
        });
    }
    futures::future::join_all(sends).await;
    let mut expired = event("org_free", "member.role.changed");
    expired["occurred_at"] = json!(months_ago(7));
    kafka::produce(
        &producer,
        &ns.events_topic,
        Some("org_free"),
        expired.to_string().as_bytes(),
    )
    .await;

    bystander_is_indexed(&ns, "org_bystander").await;
    eventually(
        "the whole backfill indexed",
        Duration::from_secs(90),
        || async { (count(&ns, "org_migrating").await == Some(101)).then_some(()) },
    )
    .await;
    let isolations = metric(&indexer.url(), "indexer_isolation_rewinds_total").await;
    assert!(
        isolations >= 1.0,
        "the refused batch was re-read in halves: {isolations}"
    );
    let letters = eventually(
        "the expired event dead-lettered",
        Duration::from_secs(30),
        || async {
            let letters = dead_letters(&ns);
            letters
                .into_iter()
                .find(|(payload, _)| payload["id"] == expired["id"])
        },
    )
    .await;
    assert!(
        letters.1.contains("keeps its log for 90 days"),
        "{}",
        letters.1
    );
    assert_eq!(count(&ns, "org_free").await, Some(0));
}

/// A row that ClickHouse itself refuses (here: a table constraint added behind the indexer's
/// back) is isolated, dead-lettered with the engine's reason, and everything around it indexed.
#[tokio::test(flavor = "multi_thread")]
async fn a_row_the_engine_refuses_is_dead_lettered_with_its_reason_and_the_rest_indexed() {
    let ns = Namespace::new("hostile-refused-row");
    let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    ns.sql("ALTER TABLE events ADD CONSTRAINT no_poison CHECK actor_id != 'poison-actor'")
        .await;

    let producer = kafka::producer(&ns.infra.kafka);
    let mut sent = Vec::new();
    for n in 0..200 {
        let org = format!("org_{}", n % 4);
        let mut one = event(&org, "resource.created");
        if n == 100 {
            one["actor"]["id"] = json!("poison-actor");
        }
        sent.push((org, one));
    }
    let sends = sent.iter().map(|(org, one)| {
        let producer = producer.clone();
        let topic = ns.events_topic.clone();
        let payload = one.to_string();
        async move { kafka::produce(&producer, &topic, Some(org), payload.as_bytes()).await }
    });
    futures::future::join_all(sends).await;

    eventually("199 events indexed", Duration::from_secs(90), || async {
        (ns.try_sql_u64("SELECT count() FROM events FINAL").await == Some(199)).then_some(())
    })
    .await;
    let poison_id = sent[100].1["id"].clone();
    let (_, reason) = eventually(
        "the refused row dead-lettered",
        Duration::from_secs(30),
        || async {
            dead_letters(&ns)
                .into_iter()
                .find(|(payload, _)| payload["id"] == poison_id)
        },
    )
    .await;
    assert!(reason.contains("VIOLATED_CONSTRAINT"), "{reason}");
    assert_eq!(
        metric(&indexer.url(), "indexer_refused_rows_total").await,
        1.0
    );
    bystander_is_indexed(&ns, "org_bystander").await;
}

/// An engine failure that is not about the rows (the table gone) stalls indexing — and says
/// so: `/readyz` turns 503 naming the stall, the metrics show it; once the table is back,
/// everything is indexed exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_indexer_reports_it_and_recovers_without_loss() {
    let ns = Namespace::new("hostile-stall");
    let indexer = Service::start(
        ServiceKind::Indexer,
        &ns,
        &[
            ("INDEXER__HEALTH__STALL_AFTER_SECS", "3"),
            ("INDEXER__RETRY__MAX_BACKOFF_MS", "500"),
        ],
    )
    .await;
    ns.sql("RENAME TABLE events TO events_away").await;
    let producer = kafka::producer(&ns.infra.kafka);
    let mut ids = Vec::new();
    for n in 0..10 {
        let org = format!("org_{}", n % 3);
        let one = event(&org, "resource.created");
        ids.push(one["id"].as_str().unwrap().to_string());
        kafka::produce(
            &producer,
            &ns.events_topic,
            Some(&org),
            one.to_string().as_bytes(),
        )
        .await;
    }
    let readyz = format!("{}/readyz", indexer.url());
    let body = eventually(
        "the stall reported by /readyz",
        Duration::from_secs(60),
        || async {
            let response = reqwest::get(&readyz).await.ok()?;
            let status = response.status().as_u16();
            let body = response.text().await.ok()?;
            (status == 503 && body.contains("no batch written")).then_some(body)
        },
    )
    .await;
    println!("readyz while stalled: {body}");
    assert!(body.contains("indexing"), "{body}");
    assert_eq!(metric(&indexer.url(), "indexer_stalled").await, 1.0);
    assert!(metric(&indexer.url(), "indexer_oldest_unwritten_age_seconds").await > 0.0);
    let log = std::fs::read_to_string(indexer.log_path()).unwrap();
    assert!(log.contains("indexing stalled"), "a clear log line");

    ns.sql("RENAME TABLE events_away TO events").await;
    eventually("ready again", Duration::from_secs(60), || async {
        let response = reqwest::get(&readyz).await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    eventually(
        "every event indexed once",
        Duration::from_secs(60),
        || async {
            (ns.try_sql_u64("SELECT count() FROM events FINAL").await == Some(10)).then_some(())
        },
    )
    .await;
    let listed = ns
        .sql("SELECT toString(id) FROM events FINAL FORMAT TSVRaw")
        .await;
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort_unstable();
    ids.sort_unstable();
    assert_eq!(listed, ids);
    assert_eq!(metric(&indexer.url(), "indexer_stalled").await, 0.0);
}
