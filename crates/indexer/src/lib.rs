//! The indexer: consumes the audit events topic into ClickHouse.
//!
//! Guarantee: every event on the topic ends up **exactly once in query results**. Offsets are
//! committed only after ClickHouse (and, for invalid messages, the dead-letter topic)
//! acknowledged; anything re-read after a crash, rebalance or failed insert is deduplicated by
//! the ReplacingMergeTree table that every read queries with FINAL.
//! See [`consumer`] for the batching, backpressure and rebalance protocol.

pub mod cli;
pub mod config;
pub mod consumer;
pub mod decode;
pub mod progress;
pub mod retention;
pub mod sealer;
pub mod shared;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use audit_core::{Catalogue, EventValidator};
use audit_kafka::consumer::GroupContext;
use audit_kafka::{DeadLetterWriter, ProducerTuning, ensure_topics, spawn_kafka_probe};
use audit_runtime::telemetry::PrometheusHandle;
use audit_runtime::{Readiness, ops_router};
use audit_settings::SettingsStore;
use audit_store::Store;
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::IndexerConfig;

/// Applies the schema migrations and returns.
pub async fn migrate(config: &IndexerConfig) -> anyhow::Result<()> {
    let store = Store::new(&config.clickhouse);
    let report = store.migrate().await.context("applying migrations")?;
    tracing::info!(applied = ?report.applied, already_applied = ?report.already_applied, "schema is up to date");
    Ok(())
}

/// Runs the indexer until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: IndexerConfig,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalogue = Arc::new(Catalogue::load(&config.catalogue_path)?);
    let validator = Arc::new(EventValidator::new(catalogue, config.limits)?);
    let readiness = Readiness::new(&["kafka", "clickhouse", "settings", "indexing"]);

    let ops = tokio::spawn(audit_runtime::serve_with(
        config.http.listen,
        ops_router(readiness.clone(), metrics),
        shutdown.clone(),
        Duration::from_secs(2),
        config.http.connection_limits(),
    ));

    ensure_topics(&config.kafka, &config.topics)
        .await
        .context("ensuring Kafka topics")?;
    let store = Store::new(&config.clickhouse);
    if config.migrate_on_start {
        store.migrate().await.context("applying migrations")?;
    }
    store
        .check_schema()
        .await
        .context("checking the ClickHouse schema")?;
    readiness.set("clickhouse", true, "schema checked");

    let settings = SettingsStore::start_for(&config.kafka, &config.topics, "indexer")?;
    tokio::select! {
        result = settings.wait_caught_up(Duration::from_secs(3600)) => result?,
        _ = shutdown.cancelled() => return Ok(()),
    }
    readiness.set("settings", true, "caught up");
    spawn_kafka_probe(
        &config.kafka,
        &config.topics.events,
        readiness.clone(),
        "kafka",
        shutdown.clone(),
    )?;
    spawn_clickhouse_probe(store.clone(), readiness.clone(), shutdown.clone());

    let drain_timeout = Duration::from_secs(config.consumer.drain_timeout_secs);
    let (queue, pieces) = mpsc::channel(config.batch.queue_chunks);
    let shared = shared::Shared::new(&config.topics.events, drain_timeout, queue);
    let mut consumer_config = config.kafka.client_config("indexer");
    config
        .consumer
        .tuning
        .apply(&mut consumer_config, &config.consumer.group_id);
    audit_kafka::enable_statistics(&mut consumer_config);
    let kafka_consumer: Arc<consumer::IndexerConsumer> =
        Arc::new(consumer_config.create_with_context(GroupContext::new(
            "indexer",
            "indexer",
            &config.topics.events,
            consumer::IndexerPartitions::new(shared.clone()),
        ))?);
    kafka_consumer.subscribe(&[&config.topics.events])?;

    let mut producer_config = config.kafka.client_config("indexer-dead-letters");
    ProducerTuning::default().apply(&mut producer_config);
    let producer: FutureProducer = producer_config.create()?;
    let dead_letters = DeadLetterWriter::new(producer.clone(), &config.topics.dead_letter);
    let sealer = if config.integrity.enabled {
        shared.enable_sealing();
        let io = sealer::SealIo {
            store: store.clone(),
            producer,
            anchors: Arc::new(sealer::Anchors {
                digests_topic: config.topics.digests.clone(),
                events_topic: config.topics.events.clone(),
                tag_key: config.topics.integrity("topics")?,
            }),
            settings: settings.clone(),
        };
        Some(Arc::new(tokio::sync::Mutex::new(sealer::Sealer::new(
            io,
            config.integrity.keys()?,
            config.plans.clone(),
            shared.clone(),
        ))))
    } else {
        None
    };

    let consumer_loop = consumer::ConsumerLoop {
        consumer: kafka_consumer.clone(),
        shared: shared.clone(),
        validator,
        integrity: config.topics.integrity("topics")?,
        settings: settings.clone(),
        plans: config.plans.clone(),
        batch: config.batch.clone(),
        shutdown: shutdown.clone(),
    };
    let consumer_thread = std::thread::Builder::new()
        .name("indexer-consumer".into())
        .spawn(move || consumer_loop.run())?;

    let writer = writer::Writer {
        store: store.clone(),
        dead_letters,
        consumer: kafka_consumer.clone(),
        shared: shared.clone(),
        backoff: config.retry.backoff(),
        readiness: readiness.clone(),
        max_partitions_per_insert: config.batch.max_partitions_per_insert,
        refused: std::sync::Mutex::new(writer::RefusedRows::new(
            config.retry.max_refused_rows_per_minute,
        )),
        sealer,
        seal_every: Duration::from_secs(config.integrity.window_secs.max(1)),
        max_open_leaves: config.integrity.max_open_leaves.max(1),
        seal_due: Default::default(),
        seal_behind: Default::default(),
    };
    let mut writer_task = tokio::spawn(writer.run(pieces));

    tokio::spawn(progress::report(
        shared.clone(),
        readiness.clone(),
        Duration::from_secs(config.health.stall_after_secs),
        shutdown.clone(),
    ));

    let reconciler = retention::RetentionReconciler {
        store,
        settings: settings.clone(),
        plans: config.plans.clone(),
        shared,
        interval: Duration::from_secs(config.retention.reconcile_interval_secs),
    };
    tokio::spawn(reconciler.run(shutdown.clone()));
    tracing::info!(topic = %config.topics.events, group = %config.consumer.group_id, "indexer consuming");

    shutdown.cancelled().await;
    tracing::info!("draining: finishing in-flight batches");
    // The consumer thread hands over its last batch and waits for the writer (bounded).
    let joined = tokio::task::spawn_blocking(move || consumer_thread.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        tracing::error!("consumer thread ended abnormally");
    }
    // The writer finishes when the queue closes; if a dependency is down it would retry
    // forever, so give up after the drain timeout (uncommitted batches are re-read later).
    if tokio::time::timeout(drain_timeout, &mut writer_task)
        .await
        .is_err()
    {
        tracing::warn!("writer did not drain in time; its batches will be re-read on restart");
        writer_task.abort();
    }
    kafka_consumer.context().set_closing();
    kafka_consumer.unsubscribe();
    audit_kafka::consumer::close(kafka_consumer, "indexer").await;
    settings.stop();
    let _ = ops.await;
    tracing::info!("indexer stopped");
    Ok(())
}

fn spawn_clickhouse_probe(store: Store, readiness: Readiness, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            match store.ping().await {
                Ok(()) => readiness.set("clickhouse", true, "answers"),
                Err(error) => readiness.set("clickhouse", false, error.to_string()),
            }
        }
    });
}
