//! The ledger: once the pipeline drained (or 10 minutes passed), every acknowledged event must
//! be exactly once in ClickHouse query results and delivered at least once to each destination
//! it matches, or dead-lettered with a reason; backfilled events beyond retention must be
//! dead-lettered and never stored. The report is a Markdown table; any loss makes it FAILED.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use audit_tests::fakes::{Fake, FakeHec, FakeWebhook};
use loadgen::clickhouse;
use rdkafka::Message;
use serde_json::Value;

use crate::Soak;

/// Waits for the drain, then compares and writes the report.
pub(crate) async fn ledger(
    soak: &Soak,
    webhook: &FakeWebhook,
    hec: &FakeHec,
    enterprise: &[(String, String, String)],
) -> anyhow::Result<String> {
    let ledger = soak.ledger.lock().await.clone();
    let enterprise_orgs: HashSet<&str> =
        enterprise.iter().map(|(org, _, _)| org.as_str()).collect();
    let expected_webhook: HashSet<&str> = ledger
        .iter()
        .filter(|(_, (org, _))| enterprise_orgs.contains(org.as_str()))
        .map(|(id, _)| id.as_str())
        .collect();
    let expected_hec: HashSet<&str> = ledger
        .iter()
        .filter(|(_, (org, category))| {
            enterprise_orgs.contains(org.as_str())
                && (category == "authentication" || category == "security")
        })
        .map(|(id, _)| id.as_str())
        .collect();
    let database = format!("soak_{}", soak.id);
    let dead_lettered = || dead_letters(soak);

    // Drain: everything indexed and every expected delivery made (or dead-lettered).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let indexed: HashSet<String> = clickhouse(
            &soak.http,
            &soak.cli.clickhouse,
            &database,
            "SELECT toString(id) FROM events FINAL FORMAT TSVRaw",
        )
        .await
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default();
        let dead: HashSet<String> = dead_lettered().into_iter().map(|(id, _)| id).collect();
        let webhook_seen = webhook.core().unique_ids();
        let hec_seen = hec.core().unique_ids();
        let index_done = ledger.keys().all(|id| indexed.contains(id));
        let webhook_done = expected_webhook
            .iter()
            .all(|id| webhook_seen.contains(*id) || dead.contains(*id));
        let hec_done = expected_hec
            .iter()
            .all(|id| hec_seen.contains(*id) || dead.contains(*id));
        if (index_done && webhook_done && hec_done) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }

    let rows = clickhouse(
        &soak.http,
        &soak.cli.clickhouse,
        &database,
        "SELECT toString(id), count() FROM events FINAL WHERE category != 'audit_log' GROUP BY id FORMAT TSVRaw",
    )
    .await?;
    let meta_events: u64 = clickhouse(
        &soak.http,
        &soak.cli.clickhouse,
        &database,
        "SELECT count() FROM events FINAL WHERE category = 'audit_log'",
    )
    .await?
    .trim()
    .parse()
    .unwrap_or(0);
    let mut in_results: HashMap<String, u64> = HashMap::new();
    for line in rows.lines() {
        if let Some((id, count)) = line.split_once('\t') {
            in_results.insert(id.to_string(), count.parse().unwrap_or(0));
        }
    }
    let physical: u64 = clickhouse(
        &soak.http,
        &soak.cli.clickhouse,
        &database,
        "SELECT count() FROM events",
    )
    .await?
    .trim()
    .parse()
    .unwrap_or(0);
    let missing = ledger
        .keys()
        .filter(|id| !in_results.contains_key(*id))
        .count();
    let duplicated = in_results.values().filter(|c| **c > 1).count();
    let unacknowledged_but_stored = in_results
        .keys()
        .filter(|id| !ledger.contains_key(*id))
        .count();
    let dead = dead_lettered();
    let dead_ids: HashSet<&str> = dead.iter().map(|(id, _)| id.as_str()).collect();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (_, reason) in &dead {
        *reasons
            .entry(reason.chars().take(80).collect())
            .or_default() += 1;
    }
    let delivery = |name: &str, expected: &HashSet<&str>, received: Vec<String>| {
        let unique: HashSet<&str> = received.iter().map(String::as_str).collect();
        let missing = expected
            .iter()
            .filter(|id| !unique.contains(**id) && !dead_ids.contains(**id))
            .count();
        let dead = expected
            .iter()
            .filter(|id| !unique.contains(**id) && dead_ids.contains(**id))
            .count();
        let duplicates = received.len() - unique.len();
        let verdict = if missing == 0 { "ok" } else { "FAILED" };
        (
            format!(
                "| delivered to {name} | {} expected, {} delivered at least once, {dead} dead-lettered, {missing} missing, {duplicates} duplicate deliveries | {verdict} |",
                expected.len(),
                expected.iter().filter(|id| unique.contains(**id)).count()
            ),
            missing,
        )
    };
    let (webhook_row, webhook_missing) = delivery(
        "webhook destinations",
        &expected_webhook,
        webhook.core().received_ids(),
    );
    let (hec_row, hec_missing) = delivery(
        "Splunk HEC destinations",
        &expected_hec,
        hec.core().received_ids(),
    );
    let gateway_acks = ledger.len();
    let mut out = String::new();
    out.push_str(&format!(
        "Soak {} — {:.0} min, {} organizations ({} Enterprise with 2 destinations each)\n\n",
        soak.id,
        soak.cli.minutes,
        soak.cli.orgs,
        enterprise.len()
    ));
    out.push_str("| ledger | value | verdict |\n|---|---|---|\n");
    out.push_str(&format!(
        "| events acknowledged (gateway 2xx + Kafka acks) | {gateway_acks} | |\n"
    ));
    out.push_str(&format!(
        "| events refused or unanswered (client retries would resend) | {} | |\n",
        soak.unacknowledged.load(Ordering::Relaxed)
    ));
    out.push_str(&format!(
        "| indexed, exactly once in query results | {} | |\n",
        ledger.len() - missing
    ));
    out.push_str(&format!(
        "| acknowledged but missing from ClickHouse | {missing} | {} |\n",
        if missing == 0 { "ok" } else { "FAILED" }
    ));
    out.push_str(&format!(
        "| duplicated in query results | {duplicated} | {} |\n",
        if duplicated == 0 { "ok" } else { "FAILED" }
    ));
    out.push_str(&format!("| stored without an acknowledgement (ambiguous 503/timeouts; clients retry with the same ids) | {unacknowledged_but_stored} | |\n"));
    out.push_str(&format!(
        "| audit events of the log itself (settings changes, views) | {meta_events} | |\n"
    ));
    out.push_str(&format!(
        "| physical rows before merges (copies removed by FINAL) | {physical} | |\n"
    ));
    out.push_str(&format!("{webhook_row}\n{hec_row}\n"));
    out.push_str(&format!(
        "| dead-lettered | {} ({}) | |\n",
        dead.len(),
        if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons
                .iter()
                .map(|(r, n)| format!("{n}× {r}"))
                .collect::<Vec<_>>()
                .join("; ")
        }
    ));
    // Backfilled events beyond retention: dead-lettered with the reason, never stored.
    let beyond = soak.beyond_retention.lock().await.clone();
    let beyond_ok = beyond.iter().all(|id| {
        !in_results.contains_key(id)
            && dead.iter().any(|(dead_id, reason)| {
                dead_id == id && reason.contains("deleted as soon as it was stored")
            })
    });
    out.push_str(&format!(
        "| backfill beyond retention, straight to Kafka | {} dead-lettered with the retention reason, none stored | {} |\n",
        beyond.len(),
        if beyond_ok { "ok" } else { "FAILED" }
    ));
    for (role, lag) in soak.max_lag.lock().await.iter() {
        out.push_str(&format!(
            "| max consumer lag, {role}s | {lag:.0} messages | |\n"
        ));
    }
    for (name, kb) in soak.peak_rss_kb.lock().await.iter() {
        out.push_str(&format!(
            "| peak RSS, {name} | {:.0} MB | |\n",
            *kb as f64 / 1024.0
        ));
    }
    out.push_str("\nChaos performed:\n");
    for (index, action) in soak.chaos_log.lock().await.iter().enumerate() {
        out.push_str(&format!("{}. {action}\n", index + 1));
    }
    if webhook_missing + hec_missing > 0 || missing > 0 || duplicated > 0 || !beyond_ok {
        out.push_str("\nRESULT: FAILED\n");
    } else {
        out.push_str("\nRESULT: no acknowledged event lost, none duplicated in results, every forwarded event delivered or dead-lettered\n");
    }
    Ok(out)
}

/// (event id, reason) of every dead letter.
fn dead_letters(soak: &Soak) -> Vec<(String, String)> {
    let topic = format!("{}.audit.events.dlq.v1", soak.id);
    audit_tests::kafka::read_all(&soak.cli.kafka, &topic)
        .iter()
        .filter_map(|message| {
            let payload: Value = serde_json::from_slice(message.payload()?).ok()?;
            let id = payload["id"].as_str()?.to_string();
            Some((
                id,
                audit_tests::kafka::header(message, "dlq-reason").unwrap_or_default(),
            ))
        })
        .collect()
}
