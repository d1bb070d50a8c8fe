//! The soak's hostile chaos step (issue 13): a historical backfill spanning 101 months, sent
//! through a gateway and straight to Kafka, and a hostile receiver (a 500 with a gzip body
//! inflating to 2 GiB) added to an Enterprise organization for 30 s. The ledger then expects
//! the backfill's events within retention stored exactly once and delivered like any other,
//! and the ones beyond retention refused (gateway) or dead-lettered with the reason (Kafka).

use std::sync::atomic::Ordering;
use std::time::Duration;

use audit_tests::fakes::hostile::HostileSetup;
use audit_tests::fakes::{HostileReceiver, Hostility, SIGNING_SECRET};
use loadgen::generated_event;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Soak;
use crate::operator::admin;

/// Months the backfill spans: more than ClickHouse's 100 partitions per INSERT.
const MONTHS: u64 = 101;

pub async fn run(
    soak: &Soak,
    gateway_port: u16,
    key: &str,
    org: &str,
    round: usize,
) -> anyhow::Result<String> {
    let now = OffsetDateTime::now_utc();
    let history: Vec<Value> = (0..MONTHS)
        .map(|month| {
            let at = now - time::Duration::days(30 * month as i64 + 1);
            let n = 7_000_000_000 + (round as u64) * 1_000 + month;
            generated_event(org, n, &at.format(&Rfc3339).unwrap_or_default())
        })
        .collect();
    // Through a gateway: every event gets its own answer (207: some are beyond retention).
    let response = soak
        .http
        .post(format!("http://127.0.0.1:{gateway_port}/v1/events"))
        .bearer_auth(key)
        .json(&history)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status != 202 && status != 207 {
        anyhow::bail!("backfill through the gateway: {status} {body}");
    }
    let results = body["results"].as_array().cloned().unwrap_or_default();
    let accepted: Vec<bool> = (0..history.len())
        .map(|index| {
            results
                .iter()
                .find(|r| r["index"].as_u64() == Some(index as u64))
                .is_some_and(|r| r["status"] == "accepted")
        })
        .collect();
    let mut kept = 0;
    for (event, ok) in history.iter().zip(&accepted) {
        if *ok {
            soak.remember(event).await;
            kept += 1;
        }
    }
    // The same months straight to Kafka (new ids): the indexer stores what is within
    // retention and dead-letters the rest with the reason.
    let producer = audit_tests::kafka::producer(&soak.cli.kafka);
    let topic = format!("{}.audit.events.v1", soak.id);
    for (event, ok) in history.iter().zip(&accepted) {
        let mut copy = event.clone();
        copy["id"] = json!(uuid::Uuid::now_v7().to_string());
        let payload = copy.to_string();
        let record = rdkafka::producer::FutureRecord::to(&topic)
            .key(org)
            .payload(&payload);
        if producer
            .send(record, Duration::from_secs(10))
            .await
            .is_err()
        {
            soak.unacknowledged.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if *ok {
            soak.remember(&copy).await;
        } else {
            soak.beyond_retention
                .lock()
                .await
                .push(copy["id"].as_str().unwrap_or_default().to_string());
        }
    }

    // A hostile receiver on the same organization, for 30 s.
    let hostile = HostileReceiver::start(HostileSetup {
        hostility: Hostility::GzipBomb {
            status: 500,
            inflated: 2 << 30,
        },
        benign: Vec::new(),
    })
    .await;
    let created = admin(
        soak,
        gateway_port,
        reqwest::Method::POST,
        &format!("/v1/admin/orgs/{org}/destinations"),
        Some(json!({"name": "hostile", "signing_secret": SIGNING_SECRET,
                    "config": {"type": "webhook", "url": format!("{}/audit", hostile.url())}})),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let id = created["id"].as_str().unwrap_or_default();
    admin(
        soak,
        gateway_port,
        reqwest::Method::DELETE,
        &format!("/v1/admin/orgs/{org}/destinations/{id}"),
        None,
    )
    .await?;
    Ok(format!(
        "backfill of {MONTHS} months into {org}: {kept} accepted by the gateway, {} refused as beyond retention (the same months straight to Kafka); a gzip-bomb receiver answered {} requests in 30 s",
        MONTHS as usize - kept,
        hostile.requests()
    ))
}
