//! What an operator would run instead of the indexer, and the engine's own ceiling, measured in
//! the same run on the same pre-filled topic (`bench indexer`):
//!
//! * **the Kafka engine peer** — what ClickHouse's `Kafka` table engine and a materialized view
//!   do: consume the topic and parse the JSON in SQL into a table identical to `events`
//!   (`CREATE TABLE … AS events`: same columns, codecs, sorting key, skip indexes and TTL). It
//!   neither validates, nor deduplicates, nor dead-letters, nor looks up retention (a constant
//!   stands in). The engine itself cannot run here (see [`kafka_engine`]), so bare consumers
//!   feed the same SQL. Run with 1 and 2 consumers; the best counts.
//! * **the insert ceiling** — the same events as rows built before the clock starts, streamed
//!   through the store's own INSERT (same settings as the indexer's) in the indexer's largest
//!   batch: the most any indexer could do on this ClickHouse.
//!
//! Every rate here, ours included, is *steady*: rows that became visible after the first ones
//! were seen, over the time from then to the last row. Counting from the first visible row
//! flatters whoever writes big blocks (the Kafka engine flushes up to a million rows at once).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loadgen::clickhouse;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use serde_json::json;

use crate::{Bench, Namespace};

/// How fast rows became visible in a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Steady {
    /// Rows per second after the first visible ones.
    pub(crate) per_s: f64,
    /// From the first visible row to the last.
    pub(crate) first_to_last: Duration,
    /// From `started` (the watch's, or the writer's start) to the last row.
    pub(crate) total: Duration,
}

impl std::fmt::Display for Steady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.0} rows/s", self.per_s)
    }
}

/// Polls `SELECT count() FROM table` until it reaches `rows`; the steady rate of its growth.
/// `started` is when the writer started (times in the result count from it).
pub(crate) async fn watch(
    bench: &Bench,
    ns: &Namespace,
    table: &str,
    rows: u64,
    started: Instant,
) -> anyhow::Result<Steady> {
    let sql = format!("SELECT count() FROM {table}");
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let seen: u64 = clickhouse(&bench.http, &ns.clickhouse, &ns.database(), &sql)
            .await
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let now = Instant::now();
        if seen > 0 && first.is_none() {
            first = Some((now, seen));
        }
        if seen >= rows {
            let (at, base) = first.unwrap_or((started, 0));
            // All rows in the first block: no growth to time, the whole watch is the time.
            let (grown, took) = if seen > base {
                (seen - base, now - at)
            } else {
                (seen, now - started)
            };
            return Ok(Steady {
                per_s: grown as f64 / took.as_secs_f64().max(1e-3),
                first_to_last: now - at,
                total: now - started,
            });
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("{table}: only {seen} of {rows} rows in 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The columns the indexer fills, from the JSON (`raw`) parsed once in SQL into a typed tuple,
/// as an operator's materialized view would; `received_at` falls back to the insert time for
/// events without. Followed by `FROM input('raw String')`.
const FROM_JSON: &str = "SELECT \
       e.org_id AS org_id, \
       parseDateTime64BestEffort(e.occurred_at, 3, 'UTC') AS occurred_at, \
       toUUID(e.id) AS id, \
       ifNull(parseDateTime64BestEffortOrNull(e.received_at, 3, 'UTC'), now64(3)) AS received_at, \
       e.category AS category, e.action AS action, e.outcome AS outcome, \
       e.actor.type AS actor_type, e.actor.id AS actor_id, e.actor.name AS actor_name, \
       e.actor.email AS actor_email, \
       arrayMap(t -> t.type, e.targets) AS target_types, \
       arrayMap(t -> t.id, e.targets) AS target_ids, \
       arrayMap(t -> t.name, e.targets) AS target_names, \
       e.context.ip AS ip, e.context.user_agent AS user_agent, e.context.location AS location, \
       e.context.request_id AS request_id, e.metadata AS metadata, e.source AS source, \
       toUInt8(1) AS schema_version, toUInt16(365) AS retention_days, raw \
     FROM (SELECT raw, JSONExtract(raw, 'Tuple(id String, org_id String, occurred_at String, \
         received_at String, category String, action String, outcome String, \
         actor Tuple(type String, id String, name String, email String), \
         targets Array(Tuple(type String, id String, name String)), \
         context Tuple(ip String, user_agent String, location String, request_id String), \
         metadata Map(String, String), source String)') AS e";

/// The columns [`FROM_JSON`] fills, in its order (`indexed_at` takes its default).
const COLUMNS: &str = "org_id, occurred_at, id, received_at, category, action, outcome, \
    actor_type, actor_id, actor_name, actor_email, target_types, target_ids, target_names, ip, \
    user_agent, location, request_id, metadata, source, schema_version, retention_days, raw";

/// Rows per INSERT of the peer (the Kafka engine's `kafka_max_block_size` is of this order).
const PEER_BLOCK_ROWS: usize = 100_000;

/// The Kafka engine's work without the engine (this ClickHouse, chdb-core, refuses
/// `ENGINE = Kafka` with Code 49 "Shutdown was called"): `consumers` bare rdkafka consumers
/// read `ns`'s events topic from its start and stream the messages unchanged into
/// `INSERT … SELECT <FROM_JSON> FROM input('raw String') FORMAT JSONAsString`, i.e. the JSON
/// is parsed by ClickHouse in SQL into `peer<consumers>_events`, a table identical to `events`.
/// Offsets are committed after each INSERT, as the engine does.
pub(crate) async fn kafka_engine(
    bench: &Bench,
    ns: &Namespace,
    events: u64,
    consumers: u8,
) -> anyhow::Result<Steady> {
    let db = ns.database();
    let table = format!("peer{consumers}_events");
    clickhouse(
        &bench.http,
        &ns.clickhouse,
        &db,
        &format!("CREATE TABLE {db}.{table} AS {db}.events"),
    )
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let group = format!("{}-peer{consumers}", ns.id);
    let insert = format!(
        "INSERT INTO {db}.{table} ({COLUMNS}) {FROM_JSON} FROM input('raw String')) FORMAT JSONAsString"
    );
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &ns.kafka)
            .set("group.id", &group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        consumer.subscribe(&[&ns.events_topic()])?;
        let (http, url, insert, stop) = (
            bench.http.clone(),
            format!("{}/?database={db}", ns.clickhouse),
            insert.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            consume_into(&consumer, &http, &url, &insert, &stop).await
        }));
    }
    // A consumer ends early only on an error: that ends the measurement too.
    let consumers =
        futures::future::try_join_all(tasks.into_iter().map(|task| async move { task.await? }));
    tokio::pin!(consumers);
    let measured = tokio::select! {
        measured = watch(bench, ns, &table, events, Instant::now()) => measured,
        ended = &mut consumers => {
            ended?;
            bail!("the peer's consumers stopped before the last row");
        }
    };
    stop.store(true, Ordering::Relaxed);
    consumers.await?;
    clickhouse(
        &bench.http,
        &ns.clickhouse,
        &db,
        &format!("DROP TABLE IF EXISTS {db}.{table}"),
    )
    .await?;
    measured
}

/// One peer consumer: blocks of up to [`PEER_BLOCK_ROWS`] messages (or what 200 ms brought),
/// each one INSERT, then its offsets committed; until `stop`.
async fn consume_into(
    consumer: &StreamConsumer,
    http: &reqwest::Client,
    url: &str,
    insert: &str,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let mut body = Vec::with_capacity(PEER_BLOCK_ROWS * 600);
        let mut rows = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while rows < PEER_BLOCK_ROWS {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(Ok(message)) => {
                    if let Some(payload) = message.payload() {
                        body.extend_from_slice(payload);
                        body.push(b'\n');
                        rows += 1;
                    }
                }
                Ok(Err(error)) => bail!("peer consumer: {error}"),
                Err(_) => break,
            }
        }
        if rows == 0 {
            continue;
        }
        let response = http
            .post(url)
            .query(&[("query", insert)])
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("peer insert: {}", response.text().await.unwrap_or_default());
        }
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    Ok(())
}

/// The events as rows built before the clock starts, streamed through the store's own INSERT
/// into a fresh database's `events` in batches of the indexer's largest (200,000 rows).
pub(crate) async fn insert_ceiling(bench: &Bench, events: u64) -> anyhow::Result<Steady> {
    let ns = Namespace::new(&bench.cli, "ceiling");
    let config: audit_store::ClickHouseConfig = serde_json::from_value(json!({
        "url": ns.clickhouse,
        "database": ns.database(),
        // As config/indexer.toml: same host, no compression on the wire.
        "compression": "none",
    }))?;
    let store = audit_store::Store::new(&config);
    store
        .migrate()
        .await
        .context("migrating the ceiling database")?;
    let at = loadgen::now_rfc3339();
    let received = time::OffsetDateTime::now_utc();
    let rows = (0..events)
        .map(|n| {
            let org = format!("org_{:04}", n % 1000);
            let mut event = loadgen::generated_event(&org, n, &at);
            event["received_at"] = json!(at);
            event["provenance"] = json!("gateway");
            let raw = serde_json::to_vec(&event)?;
            let parsed: audit_core::AuditEvent = serde_json::from_slice(&raw)?;
            Ok(audit_store::EventRow::from_event(
                &parsed, &raw, 365, received,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for batch in rows.chunks(200_000) {
        let mut insert = store.begin_insert().await?;
        for row in batch {
            insert.write_row(row).await?;
        }
        insert.end().await?;
    }
    let took = started.elapsed();
    ns.drop_database(&bench.http).await?;
    Ok(Steady {
        per_s: events as f64 / took.as_secs_f64(),
        first_to_last: took,
        total: took,
    })
}
