//! What the hostile cases share: the "other organizations keep flowing" check and metrics.

use std::time::Duration;

use audit_tests::events::{Gateway, event};
use audit_tests::{Namespace, eventually, kafka};

/// A bystander's event, produced straight to Kafka after the hostile input, must become
/// queryable: the pipeline did not stop for everyone else.
pub async fn bystander_is_indexed(ns: &Namespace, org: &str) {
    let producer = kafka::producer(&ns.infra.kafka);
    let sent = event(org, "resource.created");
    let id = sent["id"].as_str().unwrap().to_string();
    kafka::produce(
        &producer,
        &ns.events_topic,
        Some(org),
        sent.to_string().as_bytes(),
    )
    .await;
    let query = format!("SELECT count() FROM events FINAL WHERE id = '{id}'");
    eventually(
        &format!("{org}'s event indexed after the hostile input"),
        Duration::from_secs(60),
        || async { (ns.try_sql_u64(&query).await == Some(1)).then_some(()) },
    )
    .await;
}

/// The same through the gateway, as a product team would.
pub async fn bystander_is_indexed_via_gateway(
    ns: &Namespace,
    gateway: &Gateway,
    key: &str,
    org: &str,
) {
    let sent = event(org, "resource.created");
    let (status, body) = gateway.post_events(key, &sent).await;
    assert_eq!(status, 202, "{body}");
    let query = format!(
        "SELECT count() FROM events FINAL WHERE id = '{}'",
        sent["id"].as_str().unwrap()
    );
    eventually(
        &format!("{org}'s event indexed after the hostile input"),
        Duration::from_secs(60),
        || async { (ns.try_sql_u64(&query).await == Some(1)).then_some(()) },
    )
    .await;
}

/// The value of one Prometheus sample of a service (0 when absent), summed over its labels.
pub async fn metric(service_url: &str, name: &str) -> f64 {
    metric_where(service_url, name, "").await
}

/// Like [`metric`], summed over the series whose labels contain `labels` (e.g.
/// `reason="unauthenticated"`).
pub async fn metric_where(service_url: &str, name: &str, labels: &str) -> f64 {
    let text = reqwest::get(format!("{service_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter(|line| line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An RFC 3339 time `months` whole months before now (day of month clamped to 28).
pub fn months_ago(months: i64) -> String {
    let now = time::OffsetDateTime::now_utc();
    let total = i64::from(now.year()) * 12 + i64::from(u8::from(now.month())) - 1 - months;
    let year = i32::try_from(total.div_euclid(12)).unwrap();
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).unwrap()).unwrap();
    let day = now.day().min(28);
    // The time of day of now, a minute earlier: month 0 is just now, never in the future.
    let at = time::Date::from_calendar_date(year, month, day)
        .unwrap()
        .with_time(now.time())
        .assume_utc()
        - time::Duration::MINUTE;
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Every dead letter on the namespace's dead-letter topic with its reason.
pub fn dead_letters(ns: &Namespace) -> Vec<(serde_json::Value, String)> {
    kafka::read_all(&ns.infra.kafka, &ns.dead_letter_topic)
        .iter()
        .map(|message| {
            let payload = rdkafka::Message::payload(message)
                .and_then(|bytes| serde_json::from_slice(bytes).ok())
                .unwrap_or(serde_json::Value::Null);
            (
                payload,
                kafka::header(message, "dlq-reason").unwrap_or_default(),
            )
        })
        .collect()
}
