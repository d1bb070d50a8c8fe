//! Boundary: a producer importing years of history (`POST /v1/events/import`). Issue 13,
//! item 1: migrating from another audit log is a real use, so it has its own endpoint and
//! limits — a bad line is reported by number without stopping the import, re-sending stores
//! nothing twice, one import per key, and other organizations' live events keep being indexed
//! while history streams in.

use std::collections::BTreeSet;
use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::hostile::still_indexing;
use audit_tests::{Namespace, Service, ServiceKind, eventually};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::common::{metric, metric_where, months_ago};

/// Enterprise may keep ten years here, so 120 months of history are inside the retention.
const TEN_YEARS: &str = "3700";
const ORG: &str = "org_migrating";
const LINES: u64 = 3000;

/// The history file: `LINES` lines over 120 months, none with an `id` (the gateway derives
/// them), and at known lines the bad ones. Returns the file and the bad lines with what their
/// error must say.
fn history_file() -> (Vec<String>, Vec<(u64, &'static str)>) {
    let bad: Vec<(u64, &'static str)> = vec![
        (100, "not valid JSON"),
        (200, "action"),
        (300, "keeps its log for 3650 days"),
        (301, "keeps its log for 3650 days"),
        (600, "the limit is"),
        (1500, "keeps its log for 3650 days"),
        (2999, "not valid JSON"),
    ];
    let lines = (1..=LINES)
        .map(|number| {
            let mut line = event(ORG, "member.role.changed");
            line.as_object_mut().unwrap().remove("id");
            line["occurred_at"] = json!(months_ago(i64::try_from(number % 120).unwrap()));
            line["metadata"] = json!({"line": number});
            match number {
                100 | 2999 => "{\"org_id\": \"org_migrating\", ".to_string(),
                200 => {
                    line.as_object_mut().unwrap().remove("action");
                    line.to_string()
                }
                300 | 301 | 1500 => {
                    line["occurred_at"] = json!(months_ago(125));
                    line.to_string()
                }
                600 => {
                    line["metadata"] = json!({"blob": "x".repeat(200 * 1024)});
                    line.to_string()
                }
                // A blank line is counted (numbers stay those of the file) and ignored.
                400 => "  ".to_string(),
                _ => line.to_string(),
            }
        })
        .collect();
    (lines, bad)
}

fn ndjson(lines: &[String]) -> Vec<u8> {
    let mut body = lines.join("\n").into_bytes();
    body.push(b'\n');
    body
}

/// A request body the test sends piece by piece; it ends when the sender is dropped.
fn streamed_body() -> (mpsc::Sender<Vec<u8>>, reqwest::Body) {
    let (sender, receiver) = mpsc::channel::<Vec<u8>>(4);
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    (sender, reqwest::Body::wrap_stream(stream))
}

async fn stored(ns: &Namespace) -> Option<u64> {
    ns.try_sql_u64(&format!(
        "SELECT count() FROM events FINAL WHERE org_id = '{ORG}' AND action = 'member.role.changed'"
    ))
    .await
}

/// Checks a completed import's summary against the file's bad lines.
fn assert_summary(summary: &Value, bad: &[(u64, &str)], valid: u64) {
    assert_eq!(summary["accepted"], valid, "{summary:#}");
    assert_eq!(summary["rejected"], bad.len(), "{summary:#}");
    assert_eq!(summary["errors_not_shown"], 0);
    assert_eq!(summary["durable_through_line"], LINES);
    let errors = summary["errors"].as_array().unwrap();
    let reported: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    let expected: Vec<u64> = bad.iter().map(|(line, _)| *line).collect();
    assert_eq!(reported, expected, "every bad line named, in order");
    for ((line, says), error) in bad.iter().zip(errors) {
        let text = error["errors"].to_string();
        assert!(text.contains(says), "line {line}: {text}");
    }
}

/// A few thousand events over 120 months, streamed in two halves: while the import is open
/// another import by the same key is refused (429) and another organization's live events are
/// indexed; every bad line is named, every valid event stored once, and sending the file
/// again (in two requests, resuming with `?first_line=`) still stores each event once.
#[tokio::test(flavor = "multi_thread")]
async fn a_ten_year_import_is_stored_once_and_live_events_keep_flowing() {
    let ns = Namespace::new("hostile-import");
    let indexer = Service::start(
        ServiceKind::Indexer,
        &ns,
        &[("INDEXER__PLANS__ENTERPRISE__MAX_RETENTION_DAYS", TEN_YEARS)],
    )
    .await;
    let gateway_service = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[
            ("GATEWAY__PLANS__ENTERPRISE__MAX_RETENTION_DAYS", TEN_YEARS),
            ("GATEWAY__INGEST__IMPORT_MAX_EVENTS_PER_SEC", "1000"),
            // The test holds the body open while it checks the bystander.
            ("GATEWAY__INGEST__BODY_TIMEOUT_SECS", "120"),
        ],
    )
    .await;
    let gateway = Gateway::new(&gateway_service.url());
    let (status, body) = gateway
        .patch_org(ORG, &json!({"plan": "enterprise", "retention_days": 3650}))
        .await;
    assert_eq!(status, 200, "{body}");
    let key = gateway.producer_key("importer", &["*"], None).await;
    let live_key = gateway
        .producer_key("live", &["*"], Some(&["org_live"]))
        .await;

    let (lines, bad) = history_file();
    let blank = 1;
    let valid = LINES - blank - u64::try_from(bad.len()).unwrap();

    // The first half, then the body stays open.
    let (sender, stream) = streamed_body();
    let importing = {
        let (gateway, key) = (gateway.clone(), key.clone());
        tokio::spawn(async move { gateway.post_import(&key, stream, None).await })
    };
    sender.send(ndjson(&lines[..1500])).await.unwrap();
    eventually(
        "the first half of the history being indexed",
        Duration::from_secs(60),
        || async { stored(&ns).await.filter(|n| *n > 0) },
    )
    .await;

    let (status, body, retry_after) = gateway.post_import(&key, ndjson(&lines[..10]), None).await;
    assert_eq!(status, 429, "a second import by the same key: {body}");
    assert!(retry_after.is_some(), "429 says when to retry");

    // Another organization's live events are indexed while the import is open.
    still_indexing(&ns, &gateway, &live_key, "org_live").await;
    still_indexing(&ns, &gateway, &live_key, "org_live").await;
    assert_eq!(
        metric(&gateway_service.ops_url(), "gateway_imports_in_flight").await,
        1.0,
        "the import was still running"
    );

    sender.send(ndjson(&lines[1500..])).await.unwrap();
    drop(sender);
    let (status, first, _) = importing.await.unwrap();
    assert_eq!(status, 200, "{first:#}");
    assert_summary(&first, &bad, valid);
    eventually(
        "every valid event of the history indexed",
        Duration::from_secs(120),
        || async { (stored(&ns).await == Some(valid)).then_some(()) },
    )
    .await;
    let months = ns
        .sql_u64(&format!(
            "SELECT uniqExact(toYYYYMM(occurred_at)) FROM events FINAL WHERE org_id = '{ORG}' AND action = 'member.role.changed'"
        ))
        .await;
    assert!(months >= 120, "the history spans 120 months: {months}");

    // Sent again after a "failure": the head, then the rest resumed at line 1201.
    let (status, head, _) = gateway
        .post_import(&key, ndjson(&lines[..1200]), None)
        .await;
    assert_eq!(status, 200, "{head:#}");
    assert_eq!(
        head["first_id"], first["first_id"],
        "the same lines, the same ids"
    );
    let (status, tail, _) = gateway
        .post_import(&key, ndjson(&lines[1200..]), Some(1201))
        .await;
    assert_eq!(status, 200, "{tail:#}");
    assert_eq!(
        tail["last_id"], first["last_id"],
        "resumed lines keep their ids"
    );
    assert_eq!(tail["durable_through_line"], LINES);
    let resent = head["accepted"].as_u64().unwrap() + tail["accepted"].as_u64().unwrap();
    assert_eq!(resent, valid);
    let reported: BTreeSet<u64> = [&head, &tail]
        .iter()
        .flat_map(|s| s["errors"].as_array().unwrap().iter())
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(
        reported,
        bad.iter().map(|(line, _)| *line).collect(),
        "numbers are those of the file after resuming"
    );

    // Both copies reached ClickHouse, and the table holds each event once.
    let org_rows = format!("org_id=\"{ORG}\"");
    eventually(
        "the re-sent history written by the indexer",
        Duration::from_secs(120),
        || async {
            let rows = metric_where(&indexer.url(), "indexer_rows_total", &org_rows).await;
            (rows >= 2.0 * valid as f64).then_some(())
        },
    )
    .await;
    assert_eq!(stored(&ns).await, Some(valid), "nothing stored twice");
    still_indexing(&ns, &gateway, &live_key, "org_live").await;
}

/// A body that stops arriving is cut off with 408, and the answer says what was stored and
/// where to resume; the key can import again at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_import_is_cut_off_and_says_where_to_resume() {
    let ns = Namespace::new("hostile-import-stall");
    let gateway_service = Service::start(
        ServiceKind::Gateway,
        &ns,
        &[("GATEWAY__INGEST__BODY_TIMEOUT_SECS", "2")],
    )
    .await;
    let gateway = Gateway::new(&gateway_service.url());
    let key = gateway.producer_key("importer", &["*"], None).await;
    let lines: Vec<String> = (0..10)
        .map(|_| {
            let mut line = event("org_stall", "member.role.changed");
            line.as_object_mut().unwrap().remove("id");
            line.to_string()
        })
        .collect();

    let (sender, stream) = streamed_body();
    // Ten lines and half of an eleventh, then nothing.
    let mut body = ndjson(&lines);
    body.extend_from_slice(b"{\"org_id\": \"org_st");
    sender.send(body).await.unwrap();
    let (status, answer, _) = gateway.post_import(&key, stream, None).await;
    drop(sender);
    assert_eq!(status, 408, "{answer:#}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("stalled"), "{message}");
    assert!(message.contains("?first_line=11"), "{message}");
    assert_eq!(answer["error"]["details"]["accepted"], 10, "{answer:#}");
    assert_eq!(answer["error"]["details"]["durable_through_line"], 10);

    let (status, again, _) = gateway.post_import(&key, ndjson(&lines), Some(1)).await;
    assert_eq!(status, 200, "the key's import place was freed: {again:#}");
    assert_eq!(again["first_id"], answer["error"]["details"]["first_id"]);
}
