//! HTTP ingest (`POST /v1/events`): bodies built to cost memory, bodies and headers sent a
//! byte at a time, and slow senders trying to take every ingest permit.

use std::time::{Duration, Instant};

use audit_tests::events::{Gateway, event};
use audit_tests::hostile::still_indexing;
use audit_tests::{Namespace, Service, ServiceKind, eventually, proc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn pipeline(
    name: &str,
    gateway_env: &[(&str, &str)],
) -> (Namespace, Service, Service, Gateway, String) {
    let ns = Namespace::new(name);
    let indexer = Service::start(ServiceKind::Indexer, &ns, &[]).await;
    let gateway = Service::start(ServiceKind::Gateway, &ns, gateway_env).await;
    let client = Gateway::new(&gateway.url());
    let key = client.producer_key("svc", &["*"], None).await;
    (ns, indexer, gateway, client, key)
}

/// A raw HTTP/1.1 answer: status, JSON body, whole text.
fn parse_answer(raw: &[u8]) -> (u16, Value, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::Null),
        text,
    )
}

/// Sends `bytes` one at a time, `every` apart, while reading the answer; stops sending once
/// the server has answered and closed. Returns the answer and whether a write failed (the
/// server cut the connection). The outer timeout only keeps a broken gateway from hanging
/// the suite.
async fn drip(stream: TcpStream, bytes: &[u8], every: Duration) -> ((u16, Value, String), bool) {
    let (mut read_half, mut write_half) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut raw = Vec::new();
        let _ = read_half.read_to_end(&mut raw).await;
        raw
    });
    let mut cut = false;
    let sending = async {
        for byte in bytes {
            if reader.is_finished() {
                break;
            }
            if write_half.write_all(&[*byte]).await.is_err() {
                cut = true;
                break;
            }
            tokio::time::sleep(every).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(180), sending)
        .await
        .expect("still sending after 3 minutes");
    let raw = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the gateway never answered nor closed")
        .unwrap();
    (parse_answer(&raw), cut)
}

/// Opens a connection and sends the headers of an ingest request whose body (declared
/// `length` bytes, or chunked when `None`) is still to come.
async fn start_request(url: &str, key: &str, length: Option<usize>) -> TcpStream {
    let address = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let framing = match length {
        Some(length) => format!("content-length: {length}"),
        None => "transfer-encoding: chunked".to_string(),
    };
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n{framing}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Waits until the gateway's gauge `name` reaches `at_least` (its requests are in the
/// handler, not still in flight on the wire).
async fn gauge_reaches(gateway: &Service, name: &str, at_least: f64) {
    gauge_until(gateway, name, &format!("≥ {at_least}"), |value| {
        value >= at_least
    })
    .await;
}

/// Waits until the gateway's gauge `name` satisfies `holds` (described by `what`).
async fn gauge_until(gateway: &Service, name: &str, what: &str, holds: impl Fn(f64) -> bool) {
    let url = format!("{}/metrics", gateway.ops_url());
    eventually(
        &format!("{name} {what}"),
        Duration::from_secs(30),
        || async {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            // `name{labels} value`
            let value: f64 = text.lines().find_map(|line| {
                let rest = line.strip_prefix(name)?;
                if !rest.starts_with(['{', ' ']) {
                    return None;
                }
                rest.split_whitespace().last()?.parse().ok()
            })?;
            holds(value).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_of_empty_events_are_counted_not_built() {
    let (ns, _indexer, gateway, client, key) = pipeline("hostile-amplification", &[]).await;
    let pid = gateway.pid().unwrap();
    // `[{},{},…]` up to the 1 MiB body limit: ~350,000 events, 350 times the count limit.
    let mut body = String::from("[{}");
    while body.len() < 1024 * 1024 - 8 {
        body.push_str(",{}");
    }
    body.push(']');
    let before_rss = proc::rss_kb(pid).unwrap();
    let before_peak = proc::peak_rss_kb(pid).unwrap();
    let sends = (0..16).map(|_| {
        let client = client.clone();
        let (key, body) = (key.clone(), body.clone().into_bytes());
        tokio::spawn(async move {
            client
                .post_raw(Some(&key), Some("application/json"), body)
                .await
        })
    });
    for send in futures::future::join_all(sends).await {
        let (status, answer, _) = send.unwrap();
        assert_eq!(status, 413, "{answer}");
        assert_eq!(answer["error"]["code"], "payload_too_large");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("events in one request; at most 1000"),
            "{message}"
        );
    }
    let after_peak = proc::peak_rss_kb(pid).unwrap();
    println!(
        "16 × 1 MiB `[{{}},{{}},…]` at once: gateway RSS {} MB before, peak {} MB before and {} MB after (+{} MB)",
        before_rss / 1024,
        before_peak / 1024,
        after_peak / 1024,
        after_peak.saturating_sub(before_peak) / 1024
    );
    // Generous: the 16 bodies themselves are 16 MiB; building their events took 130 MB.
    assert!(
        after_peak.saturating_sub(before_peak) < 64 * 1024,
        "the gateway's peak RSS grew by {} MB",
        after_peak.saturating_sub(before_peak) / 1024
    );
    still_indexing(&ns, &client, &key, "org_other").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dripping_body_gets_a_408_and_closes() {
    let (ns, _indexer, gateway, client, key) = pipeline(
        "hostile-drip",
        &[("GATEWAY__INGEST__BODY_TIMEOUT_SECS", "2")],
    )
    .await;
    let payload = event("org_slow", "resource.created").to_string();
    let stream = start_request(&gateway.url(), &key, Some(payload.len())).await;
    // One byte every 500 ms: the body would take minutes.
    let started = Instant::now();
    let ((status, body, text), _) =
        drip(stream, payload.as_bytes(), Duration::from_millis(500)).await;
    println!(
        "dripping body answered {status} after {:.1?}",
        started.elapsed()
    );
    assert_eq!(status, 408, "{text}");
    assert_eq!(body["error"]["code"], "request_timeout", "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    still_indexing(&ns, &client, &key, "org_other").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_senders_hold_neither_the_ingest_permits_nor_more_than_their_own_slots() {
    let (ns, _indexer, gateway, client, slow_key) = pipeline(
        "hostile-slow-senders",
        &[
            ("GATEWAY__INGEST__MAX_CONCURRENT_REQUESTS", "4"),
            ("GATEWAY__INGEST__MAX_CONCURRENT_REQUESTS_PER_PRODUCER", "6"),
            ("GATEWAY__INGEST__BODY_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let other_key = client.producer_key("other-svc", &["*"], None).await;
    // Six bodies that never finish: more than the four ingest permits.
    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut stream = start_request(&gateway.url(), &slow_key, Some(2000)).await;
        stream.write_all(b"[").await.unwrap();
        slow.push(stream);
    }
    gauge_reaches(&gateway, "gateway_ingest_requests_in_flight", 6.0).await;
    // The slow producer's seventh request is refused at once, with a clear answer.
    let (status, body, retry_after) = client
        .post_raw(
            Some(&slow_key),
            Some("application/json"),
            event("org_slow", "resource.created")
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(retry_after.is_some(), "429 carries Retry-After");
    // Another producer is served: the slow bodies hold no ingest permit.
    for _ in 0..8 {
        let (status, body) = client
            .post_events(&other_key, &event("org_other", "resource.created"))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    still_indexing(&ns, &client, &other_key, "org_other").await;
    drop(slow);
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_beyond_the_memory_budget_get_a_503() {
    let (ns, _indexer, gateway, client, key) = pipeline(
        "hostile-body-budget",
        &[
            // Room for two 1 MiB bodies being read at once.
            ("GATEWAY__INGEST__MAX_BUFFERED_BODY_BYTES", "2097152"),
            ("GATEWAY__INGEST__BODY_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = start_request(&gateway.url(), &key, Some(1024 * 1024)).await;
        stream.write_all(b"[").await.unwrap();
        held.push(stream);
    }
    gauge_reaches(&gateway, "gateway_ingest_body_bytes_reserved", 2097152.0).await;
    // A third large body does not fit: refused before its bytes are read. (Its headers only:
    // a client still sending a refused body may see the connection reset, not the answer.)
    let third = start_request(&gateway.url(), &key, Some(512 * 1024)).await;
    let ((status, body, text), _) = drip(third, b"", Duration::ZERO).await;
    assert_eq!(status, 503, "{text}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request bodies")
    );
    assert!(text.to_ascii_lowercase().contains("retry-after:"), "{text}");
    drop(held);
    // The held bodies' room is given back once the gateway sees their connections close.
    gauge_until(
        &gateway,
        "gateway_ingest_body_bytes_reserved",
        "= 0",
        |value| value == 0.0,
    )
    .await;
    still_indexing(&ns, &client, &key, "org_other").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let (ns, _indexer, gateway, client, key) = pipeline(
        "hostile-slow-headers",
        &[("GATEWAY__HTTP__HEADER_READ_TIMEOUT_SECS", "2")],
    )
    .await;
    let address = gateway.url().trim_start_matches("http://").to_string();
    let stream = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {address}\r\nx-padding: {}\r\n",
        "a".repeat(400)
    );
    let started = Instant::now();
    let ((status, _, text), cut) = drip(stream, head.as_bytes(), Duration::from_millis(200)).await;
    println!(
        "headers dripped for {:.1?}; write refused: {cut}; answer: {:?}",
        started.elapsed(),
        text.lines().next()
    );
    // Cut off before the headers were complete: nothing was served.
    assert!(!(200..300).contains(&status), "{text}");
    assert!(
        cut || text.is_empty() || status == 408,
        "the connection was closed on the slow sender: {text}"
    );
    still_indexing(&ns, &client, &key, "org_other").await;
}
