//! The chaos schedule: every 25 s, the next of nine steps — SIGKILL an indexer, a forwarder,
//! both; stop ClickHouse (a shard with `--cluster`) or a receiver; SIGTERM a gateway; a
//! receiver answering 429; settings changes (secret rotation, retention); the hostile step;
//! with `--cluster`, SIGKILL the Kafka controller. Each step is noted for the report.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use audit_tests::fakes::{Fake, FakeHec, FakeWebhook, Injected};
use serde_json::json;

use crate::operator::admin;
use crate::{ROTATED_SECRET, Soak, hostile_step};

/// Runs the schedule until `stop`, or until 40 s before the end of the load.
pub(crate) async fn chaos(
    soak: Arc<Soak>,
    webhook: Arc<FakeWebhook>,
    hec: Arc<FakeHec>,
    (gateway_port, key): (u16, String),
    enterprise: Vec<(String, String, String)>,
    stop: Arc<AtomicBool>,
    duration: Duration,
) {
    let started = Instant::now();
    let step = Duration::from_secs(25);
    let mut round = 0usize;
    tokio::time::sleep(Duration::from_secs(15)).await;
    while started.elapsed() + Duration::from_secs(40) < duration && !stop.load(Ordering::Relaxed) {
        let result: anyhow::Result<()> = async {
            match round % 9 {
                0 => {
                    let port = soak.port_of("indexer-1").await;
                    soak.note("SIGKILL indexer-1, restart after 10 s".into())
                        .await;
                    soak.kill("indexer-1").await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.start("indexer-1", port).await?;
                }
                1 => {
                    let port = soak.port_of("forwarder-1").await;
                    soak.note("SIGKILL forwarder-1, restart after 10 s".into())
                        .await;
                    soak.kill("forwarder-1").await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.start("forwarder-1", port).await?;
                }
                2 if soak.cli.cluster => {
                    soak.note("ClickHouse shard 2 of 2 stopped for 20 s".into()).await;
                    soak.clickhouse_script("stop-node 2")?;
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    soak.clickhouse_script("start-node 2")?;
                }
                2 => {
                    soak.note("ClickHouse engine stopped for 20 s".into()).await;
                    soak.clickhouse_script("stop")?;
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    soak.clickhouse_script("start")?;
                }
                4 if soak.cli.cluster && round % 16 == 4 => {
                    let node = soak.kafka_script(&["active-controller"])?.trim().to_string();
                    soak.note(format!(
                        "SIGKILL Kafka node {node} (active controller, partition leader), restart after 10 s"
                    ))
                    .await;
                    soak.kafka_script(&["kill-node", &node])?;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.kafka_script(&["start-node", &node])?;
                }
                3 => {
                    soak.note("webhook receiver down (connection refused) for 30 s".into())
                        .await;
                    webhook.server().stop().await;
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    webhook.server().restart().await?;
                }
                4 => {
                    let port = soak.port_of("gateway-2").await;
                    soak.note("SIGTERM gateway-2 (graceful), restart after 5 s".into())
                        .await;
                    soak.terminate("gateway-2").await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    soak.start("gateway-2", port).await?;
                }
                5 => {
                    soak.note("HEC receiver answers 429 Retry-After: 2 for 20 s".into())
                        .await;
                    hec.core().faults().always = Some(
                        Injected::new(429, r#"{"text":"Server is busy","code":9}"#).retry_after(2),
                    );
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    hec.core().faults().always = None;
                }
                6 => {
                    let (org, webhook_id, _) = &enterprise[round % enterprise.len()];
                    soak.note(format!(
                        "settings: rotate {org}'s webhook secret; change retention of org_150"
                    ))
                    .await;
                    admin(
                        &soak,
                        gateway_port,
                        reqwest::Method::POST,
                        &format!("/v1/admin/orgs/{org}/destinations/{webhook_id}/rotate-secret"),
                        Some(json!({"signing_secret": ROTATED_SECRET, "overlap_secs": 60})),
                    )
                    .await?;
                    admin(
                        &soak,
                        gateway_port,
                        reqwest::Method::PATCH,
                        "/v1/admin/orgs/org_150",
                        Some(json!({"retention_days": 30 + (round as u64 % 50)})),
                    )
                    .await?;
                }
                7 => {
                    let (org, _, _) = &enterprise[0];
                    soak.note(format!("backfill over 101 months and a gzip-bomb receiver on {org}"))
                        .await;
                    let what = hostile_step::run(&soak, gateway_port, &key, org, round).await?;
                    soak.note(what).await;
                }
                _ => {
                    let (indexer, forwarder) = (
                        soak.port_of("indexer-2").await,
                        soak.port_of("forwarder-2").await,
                    );
                    soak.note(
                        "SIGKILL indexer-2 and forwarder-2 together, restart after 10 s".into(),
                    )
                    .await;
                    soak.kill("indexer-2").await;
                    soak.kill("forwarder-2").await;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    soak.start("indexer-2", indexer).await?;
                    soak.start("forwarder-2", forwarder).await?;
                }
            }
            Ok(())
        }
        .await;
        if let Err(error) = result {
            soak.note(format!("chaos step failed: {error:#}")).await;
        }
        round += 1;
        tokio::time::sleep(step).await;
    }
}
