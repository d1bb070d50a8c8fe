//! `bench read`: first-page latency on a large generated dataset (10M events across 1,000
//! organizations, kept in ClickHouse for later runs), CSV and NDJSON export of the 1M-event
//! organization, and the indexer's freshness while that tenant hammers reads.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use loadgen::{BenchRow, BenchService, Latencies, RssSampler, clickhouse, freshness};

use crate::indexer::{freshness_target, warm_up_indexer};
use crate::{Bench, Namespace, count_rows};

/// Generates (or reuses) the dataset, then measures reads, exports and freshness.
pub(crate) async fn read(bench: &mut Bench, events: u64) -> anyhow::Result<()> {
    // A fixed namespace: the generated rows are kept and reused by later runs.
    let ns = Namespace {
        id: format!("read{events}"),
        kafka: bench.cli.instance.kafka.clone(),
        clickhouse: bench.cli.instance.clickhouse.clone(),
    };
    // The gateway needs the schema: let an indexer apply it (it then idles on an empty topic).
    let indexer = bench.start(&ns, "indexer", &[]).await?;
    let database = ns.database();
    let big_org_rows = 1_000_000u64.min(events / 2);
    let existing = count_rows(bench, &ns).await;
    let generated = Instant::now();
    let chunk = 1_000_000u64;
    // Resume (or skip) the generation: rows are generated in fixed chunks.
    let mut offset = existing - existing % chunk;
    if offset < events {
        clickhouse(
            &bench.http,
            &ns.clickhouse,
            &database,
            &format!("DELETE FROM events WHERE toUInt64(substring(request_id, 5)) >= {offset}"),
        )
        .await?;
        eprintln!(
            "bench: generating {} events across 1,000 organizations in ClickHouse (kept for later runs)…",
            events - offset
        );
    }
    while offset < events {
        let rows = chunk.min(events - offset);
        clickhouse(
            &bench.http,
            &ns.clickhouse,
            &database,
            &audit_tests::synthetic::generate_sql(offset, rows, big_org_rows),
        )
        .await?;
        offset += rows;
        eprintln!("bench: {offset} rows");
    }
    eprintln!("bench: generated in {:.1?}", generated.elapsed());
    drop(indexer);
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let rss = RssSampler::start(gateway.pid());

    // First page, newest first, with and without filters, over many organizations.
    let orgs: Vec<String> = (0..40).map(|i| format!("org_{:04}", 1 + i * 24)).collect();
    let mut tokens = HashMap::new();
    for org in orgs.iter().chain(std::iter::once(&"org_0000".to_string())) {
        tokens.insert(org.clone(), mint(&bench.cli.instance.bin_dir, org)?);
    }
    let filters = [
        "",
        "category=authentication",
        "action=user.*",
        "actor=user_7",
        "outcome=failure&category=security",
        "q=resource%2012",
        "since=2026-01-01T00:00:00Z&category=billing",
    ];
    let mut latencies = Latencies::default();
    for (round, org) in orgs
        .iter()
        .chain(std::iter::once(&"org_0000".to_string()))
        .enumerate()
    {
        for (index, filter) in filters.iter().enumerate() {
            let url = format!("{}/v1/orgs/{org}/events?limit=100&{filter}", gateway.url());
            let sent = Instant::now();
            let response = bench
                .http
                .get(&url)
                .bearer_auth(&tokens[org])
                .send()
                .await?;
            let status = response.status();
            let _ = response.bytes().await?;
            if !status.is_success() {
                bail!("{url}: {status}");
            }
            // The first request of each organization also records the view in Kafka: keep it
            // out of the figures (warm-up), like the first round.
            if round > 0 && index > 0 {
                latencies.record(sent.elapsed());
            }
        }
    }
    bench.rows.push(BenchRow {
        name: format!("first page (limit 100), {events} events / 1,000 orgs"),
        throughput: format!("{} requests", latencies.count()),
        p50_ms: Some(latencies.percentile_ms(50.0)),
        p99_ms: Some(latencies.percentile_ms(95.0)),
        peak_rss_mb: Some(rss.peak_mb()),
        notes: "p99 column shows **p95**; 7 filter shapes × 40 organizations + the 1M-row one"
            .into(),
    });

    for format in ["csv", "ndjson"] {
        rss.reset();
        let url = format!(
            "{}/v1/orgs/org_0000/events/export?format={format}",
            gateway.url()
        );
        let started = Instant::now();
        let mut response = bench
            .http
            .get(&url)
            .bearer_auth(&tokens["org_0000"])
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{url}: {}", response.status());
        }
        let mut bytes = 0u64;
        let mut lines = 0u64;
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let elapsed = started.elapsed();
        let rows = if format == "csv" {
            lines.saturating_sub(1)
        } else {
            lines
        };
        let ours = rows as f64 / elapsed.as_secs_f64();
        bench.rows.push(BenchRow {
            name: format!("export {format}, {rows} rows"),
            throughput: format!("{ours:.0} rows/s"),
            p50_ms: None,
            p99_ms: None,
            peak_rss_mb: Some(rss.peak_mb()),
            notes: format!(
                "{:.0} MB in {elapsed:.1?}; RSS of the gateway",
                bytes as f64 / 1e6
            ),
        });
        let (peer_rows, peer_bytes, peer_elapsed) = engine_export(bench, &ns, format).await?;
        let peer = peer_rows as f64 / peer_elapsed.as_secs_f64();
        bench.rows.push(BenchRow {
            name: format!("peer: ClickHouse's own export over HTTP, {format}, {peer_rows} rows"),
            throughput: format!("{peer:.0} rows/s"),
            notes: format!(
                "**export / engine = {:.2}**; the same SELECT (FINAL, newest first) in {}; {:.0} MB in {peer_elapsed:.1?}",
                ours / peer,
                if format == "csv" { "FORMAT CSVWithNames, the CSV export's columns" } else { "FORMAT TSVRaw of `raw`, the NDJSON export's own query" },
                peer_bytes as f64 / 1e6
            ),
            ..BenchRow::default()
        });
    }
    rss.stop();
    freshness_while_hammered(bench, &ns, &gateway, &tokens["org_0000"]).await
}

/// Freshness of other organizations' new events, first undisturbed, then while one tenant
/// (the 1M-event organization, one credential) hammers reads: 16 connections looping `q=a`
/// and 12 slow exports. The indexer and the reads share the one ClickHouse.
async fn freshness_while_hammered(
    bench: &mut Bench,
    ns: &Namespace,
    gateway: &BenchService,
    token: &str,
) -> anyhow::Result<()> {
    let indexer = bench.start(ns, "indexer", &[]).await?;
    let key = bench.producer_key(gateway).await?;
    let url = format!("{}/v1/events", gateway.url());
    warm_up_indexer(bench, ns, &url, &key).await?;
    let target = freshness_target(bench, ns, url, key);
    let duration = Duration::from_secs(bench.cli.seconds.max(30));
    let quiet = freshness::measure(&target, duration).await;
    let hammer = audit_tests::hostile::ReadHammer::start(&gateway.url(), "org_0000", token, 16, 12);
    let hammered = freshness::measure(&target, duration).await;
    let (searches, exports) = hammer.stop();
    for (name, measured, notes) in [
        (
            "freshness: gateway ack → queryable, 5,000 events/s, reads idle",
            quiet,
            String::new(),
        ),
        (
            "freshness while a tenant hammers reads (16 × `q=a`, 12 slow exports)",
            hammered,
            format!(
                "the hammering tenant's answers: searches {:?}, exports {:?}; ",
                searches.counts, exports.counts
            ),
        ),
    ] {
        bench.rows.push(BenchRow {
            name: name.into(),
            throughput: format!(
                "{:.0} events/s offered",
                measured.offered as f64 / duration.as_secs_f64()
            ),
            p50_ms: Some(measured.latencies.percentile_ms(50.0)),
            p99_ms: Some(measured.latencies.percentile_ms(99.0)),
            peak_rss_mb: None,
            notes: format!(
                "{notes}{} sampled events, {} not seen{}",
                measured.latencies.count(),
                measured.unseen,
                measured.probe_errors.describe()
            ),
        });
    }
    drop(indexer);
    // Keep the generated dataset as it was for later runs.
    clickhouse(
        &bench.http,
        &ns.clickhouse,
        &ns.database(),
        "DELETE FROM events WHERE source = 'loadgen'",
    )
    .await?;
    Ok(())
}

/// A dashboard token of `org` (admin role), minted by the gateway binary.
fn mint(bin_dir: &Path, org: &str) -> anyhow::Result<String> {
    let output = std::process::Command::new(bin_dir.join("gateway"))
        .args([
            "mint-token",
            "--org",
            org,
            "--role",
            "admin",
            "--subject",
            "bench",
        ])
        .output()?;
    if !output.status.success() {
        bail!("mint-token: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// The export's peer: ClickHouse answering the export's own query for `org_0000` over HTTP in
/// its own output format, read to the end. Rows, bytes and time.
async fn engine_export(
    bench: &Bench,
    ns: &Namespace,
    format: &str,
) -> anyhow::Result<(u64, u64, std::time::Duration)> {
    let (columns, output) = if format == "csv" {
        (audit_store::export::EXPORT_ROW_COLUMNS, "CSVWithNames")
    } else {
        ("raw", "TSVRaw")
    };
    let sql = format!(
        "SELECT {columns} FROM events FINAL WHERE org_id = 'org_0000' \
         ORDER BY occurred_at DESC, id DESC FORMAT {output}"
    );
    let started = Instant::now();
    let mut response = bench
        .http
        .post(format!("{}/?database={}", ns.clickhouse, ns.database()))
        .body(sql)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("the engine's export: {}", response.status());
    }
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let rows = if format == "csv" {
        lines.saturating_sub(1)
    } else {
        lines
    };
    Ok((rows, bytes, started.elapsed()))
}
