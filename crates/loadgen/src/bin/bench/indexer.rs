//! `bench indexer`: the indexer's throughput from a pre-filled topic (events as the gateway
//! writes them, then as a product team produces them straight to Kafka), and freshness —
//! gateway acknowledgement to queryable — at a steady 5,000 events/s. The warm-up and the
//! freshness target are shared with the read benchmark's freshness under hammering.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loadgen::{
    BenchRow, RssSampler, clickhouse, cpu_seconds, cpu_seconds_since, freshness, generated_event,
    now_rfc3339,
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::{Bench, Namespace, crash, peers};

/// Throughput, tagged then untagged, then freshness.
pub(crate) async fn indexer(bench: &mut Bench, events: u64, peers: bool) -> anyhow::Result<()> {
    let key = audit_core::integrity::IntegrityKey::new(&bench.cli.integrity_key)
        .map_err(|e| anyhow::anyhow!(e))?;
    for (label, integrity) in [
        ("as written by the gateway (tagged)", Some(&key)),
        ("produced straight to Kafka (fully validated)", None),
    ] {
        indexer_throughput(bench, events, label, integrity, peers).await?;
    }
    indexer_freshness(bench).await?;
    if peers {
        crash::crash_freshness(bench, false).await?;
        crash::crash_freshness(bench, true).await?;
    }
    Ok(())
}

/// The events topic of a scenario: 6 partitions, broker timestamps.
async fn create_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = NewTopic::new(topic, 6, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime");
    for result in admin.create_topics([&topic], &AdminOptions::new()).await? {
        result.map_err(|(name, code)| anyhow::anyhow!("creating {name}: {code}"))?;
    }
    Ok(())
}

/// Fills the topic with `count` events as fast as the producer goes.
/// With `integrity`, messages carry the gateway's tag (as the gateway writes them); without,
/// they are what a product team produces straight to Kafka.
async fn prefill(
    brokers: &str,
    topic: &str,
    count: u64,
    integrity: Option<&audit_core::integrity::IntegrityKey>,
) -> anyhow::Result<Duration> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("partitioner", "murmur2_random")
        .create()?;
    let started = Instant::now();
    let at = now_rfc3339();
    for n in 0..count {
        let org = format!("org_{:04}", n % 1000);
        let mut event = generated_event(&org, n, &at);
        if integrity.is_some() {
            // What the gateway writes: its tag proves this provenance.
            event["received_at"] = serde_json::json!(at);
            event["provenance"] = serde_json::json!("gateway");
        }
        let payload = event.to_string();
        let tag = integrity
            .map(|key| key.tag(audit_core::integrity::Signer::Gateway, payload.as_bytes()));
        loop {
            let mut record = FutureRecord::to(topic).key(&org).payload(&payload);
            if let Some(tag) = &tag {
                record = record.headers(rdkafka::message::OwnedHeaders::new().insert(
                    rdkafka::message::Header {
                        key: audit_core::integrity::HEADER,
                        value: Some(tag.as_str()),
                    },
                ));
            }
            match producer.send_result(record) {
                Ok(_) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    _,
                )) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((error, _)) => bail!("producing: {error}"),
            }
        }
        if n > 0 && n % 500_000 == 0 {
            eprintln!("bench: pre-filled {n} events");
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(started.elapsed())
}

/// Indexer throughput from a pre-filled topic.
async fn indexer_throughput(
    bench: &mut Bench,
    events: u64,
    label: &str,
    integrity: Option<&audit_core::integrity::IntegrityKey>,
    peers: bool,
) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "indexer");
    create_topic(&ns.kafka, &ns.events_topic()).await?;
    eprintln!(
        "bench: pre-filling {} with {events} events…",
        ns.events_topic()
    );
    let filled = prefill(&ns.kafka, &ns.events_topic(), events, integrity).await?;
    eprintln!("bench: pre-filled in {filled:.1?}");
    let started = Instant::now();
    let indexer = bench.start(&ns, "indexer", &[]).await?;
    let rss = RssSampler::start(indexer.pid());
    // CPU per event of the indexer and of the engine: steadier than events/s on a shared
    // machine (an A/B of sealing, say, compares the work each side does per event).
    let engine = engine_pid(&bench.cli.instance.clickhouse);
    let cpu_before = (cpu_seconds(indexer.pid()), engine.and_then(cpu_seconds));
    let watched = peers::watch(bench, &ns, "events", events, started).await?;
    let per_event = |pid: Option<u32>, before: Option<f64>| {
        pid.and_then(|pid| cpu_seconds_since(pid, before))
            .map_or_else(
                || "?".to_string(),
                |s| format!("{:.1}", s * 1e6 / events as f64),
            )
    };
    let cpu = format!(
        "CPU per event: indexer {} µs, engine {} µs",
        per_event(Some(indexer.pid()), cpu_before.0),
        per_event(engine, cpu_before.1)
    );
    eprintln!("bench: {label}: {cpu}");
    // The table's usual figure (first row → last row) and the steady rate the peers compare.
    let indexing = watched.first_to_last;
    let ours = watched.per_s;
    bench.rows.push(BenchRow {
        name: format!("indexer, {events} events pre-filled, {label}"),
        throughput: format!("{:.0} events/s", events as f64 / indexing.as_secs_f64()),
        p50_ms: None,
        p99_ms: None,
        peak_rss_mb: Some(rss.peak_mb()),
        notes: format!(
            "first row → last row {indexing:.1?}; from process start {:.1?}; steady {ours:.0} events/s; {cpu}",
            watched.total
        ),
    });
    drop(indexer);
    rss.stop();
    if peers {
        compare_with_peers(bench, &ns, events, label, integrity.is_some(), ours).await?;
    }
    ns.drop_database(&bench.http).await?;
    Ok(())
}

/// The engine's process: the one listening on the HTTP port of `url`.
fn engine_pid(url: &str) -> Option<u32> {
    let port = url.rsplit(':').next()?.trim_end_matches('/').parse().ok()?;
    loadgen::pid_listening_on(port)
}

/// The peer and ceiling rows beside one indexer run: the Kafka engine reads the same topic
/// (now alone on the machine); the ceiling runs once, beside the tagged run.
async fn compare_with_peers(
    bench: &mut Bench,
    ns: &Namespace,
    events: u64,
    label: &str,
    tagged: bool,
    ours: f64,
) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for consumers in [1, 2] {
        let peer = peers::kafka_engine(bench, ns, events, consumers).await?;
        eprintln!("bench: Kafka engine's work, {consumers} consumer(s): {peer}");
        runs.push((consumers, peer));
    }
    let (best_consumers, best) = runs
        .iter()
        .copied()
        .max_by(|a, b| a.1.per_s.total_cmp(&b.1.per_s))
        .context("no peer run")?;
    bench.rows.push(BenchRow {
        name: format!("peer: the Kafka engine's work (consumer → JSON parsed in SQL), {label}"),
        throughput: format!("{best} (best: {best_consumers} consumer(s))"),
        p50_ms: None,
        p99_ms: None,
        peak_rss_mb: None,
        notes: format!(
            "**indexer / peer = {:.2}** (steady rates; indexer {ours:.0}/s); {}; bare consumers stream messages into INSERT … SELECT … FROM input() FORMAT JSONAsString (the Kafka engine refuses to start in chdb-core), a table identical to events; no validation, deduplication, dead-lettering or retention lookup",
            ours / best.per_s,
            runs.iter()
                .map(|(n, r)| format!("{n} consumer(s) {r} in {:.1?}", r.total))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    });
    if tagged {
        let ceiling = peers::insert_ceiling(bench, events).await?;
        bench.rows.push(BenchRow {
            name: "ceiling: the same rows pre-built, streamed through the store's INSERT".into(),
            throughput: format!("{ceiling}"),
            p50_ms: None,
            p99_ms: None,
            peak_rss_mb: None,
            notes: format!(
                "**indexer (tagged) / ceiling = {:.2}**; batches of 200,000 rows, the indexer's insert settings, {:.1?}",
                ours / ceiling.per_s,
                ceiling.total
            ),
        });
    }
    Ok(())
}

/// The indexer reports ready before its consumer group has assigned it the partitions: one
/// event goes through first, so the freshness run measures steady state, not the group join.
pub(crate) async fn warm_up_indexer(
    bench: &Bench,
    ns: &Namespace,
    url: &str,
    key: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let event = generated_event("org_000", 0, &now_rfc3339());
    let id = event["id"].as_str().unwrap_or_default().to_string();
    let response = bench
        .http
        .post(url)
        .bearer_auth(key)
        .json(&event)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "freshness: the warm-up event was refused: {}",
            response.status()
        );
    }
    let sql = format!("SELECT count() FROM events WHERE id = '{id}'");
    while clickhouse(&bench.http, &ns.clickhouse, &ns.database(), &sql)
        .await
        .ok()
        .and_then(|count| count.trim().parse::<u64>().ok())
        != Some(1)
    {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("freshness: the warm-up event was not queryable within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

/// Where a freshness run publishes (the gateway at `url`) and looks (`ns`'s database).
pub(crate) fn freshness_target(
    bench: &Bench,
    ns: &Namespace,
    url: String,
    key: String,
) -> freshness::Target {
    freshness::Target {
        http: bench.http.clone(),
        ingest_url: url,
        key,
        clickhouse: ns.clickhouse.clone(),
        database: ns.database(),
    }
}

/// Freshness: gateway acknowledgement → queryable in ClickHouse, at a steady 5,000 events/s.
async fn indexer_freshness(bench: &mut Bench) -> anyhow::Result<()> {
    let ns = Namespace::new(&bench.cli, "fresh");
    let gateway = bench.start(&ns, "gateway", &[]).await?;
    let indexer = bench.start(&ns, "indexer", &[]).await?;
    let key = bench.producer_key(&gateway).await?;
    let rss = RssSampler::start(indexer.pid());
    let url = format!("{}/v1/events", gateway.url());
    let warm_up = warm_up_indexer(bench, &ns, &url, &key).await?;
    let duration = Duration::from_secs(bench.cli.seconds.max(30));
    let target = freshness_target(bench, &ns, url, key);
    let measured = freshness::measure(&target, duration).await;
    let (latencies, n, unseen) = (measured.latencies, measured.offered, measured.unseen);
    let probe_errors = measured.probe_errors.describe();
    bench.rows.push(BenchRow {
        name: "freshness: gateway ack → queryable, steady 5,000 events/s".into(),
        throughput: format!("{:.0} events/s offered", n as f64 / duration.as_secs_f64()),
        p50_ms: Some(latencies.percentile_ms(50.0)),
        p99_ms: Some(latencies.percentile_ms(99.0)),
        peak_rss_mb: Some(rss.peak_mb()),
        notes: format!(
            "{} sampled events (every 10th), {unseen} not seen; 50 ms polling; RSS of the indexer; after one warm-up event ({warm_up:.0?}: consumer group join){probe_errors}",
            latencies.count()
        ),
    });
    rss.stop();
    drop(gateway);
    Ok(())
}
