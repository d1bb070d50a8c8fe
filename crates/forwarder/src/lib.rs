//! The forwarder: delivers Enterprise organizations' audit events to their SIEMs.
//!
//! ```text
//! events topic ──group forwarder──▶ consumer thread ──route──▶ main lane (per destination) ──▶ SIEM
//!                                                                  │ failing past the in-memory budget
//!                                                                  ▼
//! retry topic ◀─────────────────── park (key org/destination) ◀────┘
//!      └──group forwarder-retry──▶ retry thread ──when due──▶ retry lane ──▶ SIEM
//!                                                                 └── poison / too old ──▶ dead-letter topic
//! ```
//!
//! Guarantee: **at-least-once** per destination. An event's offset is committed only after
//! every destination it matches has delivered it, parked it durably on the retry topic, or
//! dead-lettered it; a crash re-delivers what was in flight. Every request carries a
//! `webhook-id` derived from the destination and the event ids (the same batch resent has the
//! same id) and every event its own `id`, so receivers can deduplicate. While a destination is
//! healthy its events arrive in order (one request in flight per destination); events that
//! went through the retry path may arrive after newer ones.
//!
//! Modules: [`consumer`] and [`retry`] (the two consumer threads; [`polling`], the run and
//! drain protocol they share),
//! [`router`] and [`lane`] (batching, delivery, retries, parking), [`backoff`], [`health`] and
//! [`health_loop`], [`replay`](mod@replay), [`cli`]. The destination types (one folder each, behind the
//! `Sink` trait), signing and the outbound client are the `audit_sinks` crate, shared with the
//! gateway's test event.

pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod delivery;
pub mod error;
pub mod event;
pub mod health;
pub mod health_loop;
pub mod lane;
pub mod ops;
pub mod parking;
pub mod polling;
pub mod replay;
pub mod retry;
pub mod router;

use std::sync::Arc;
use std::time::Duration;

use audit_core::{Catalogue, EventValidator};
use audit_kafka::consumer::GroupContext;
use audit_kafka::{ensure_topics, spawn_kafka_probe};
use audit_runtime::Readiness;
use audit_runtime::telemetry::PrometheusHandle;
use audit_settings::{SecretBox, SettingsStore};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

pub use clock::now_ms;
pub use config::ForwarderConfig;
pub use error::{Error, Result};
pub use replay::{ReplayReport, ReplayRequest, replay};

use crate::consumer::EventsConsumer;
use crate::event::Decoder;
use crate::health::{HealthRecords, PauseWriter, Registry};
use crate::health_loop::HealthLoop;
use crate::lane::{LaneContext, Role};
use crate::parking::Parker;
use crate::polling::{ConsumerCore, TrackedConsumer, TrackedPartitions};
use crate::retry::RetryConsumer;
use crate::router::Router;
use audit_kafka::offsets::OffsetTracker;
use audit_sinks::SinkContext;
use audit_sinks::outbound::{ClientTimeouts, build_client};

/// What the forwarder reads and sends with, built from its configuration: the events' decoder
/// and the destinations' sinks (the benchmark's bare-client peer builds its requests with the
/// same, so that it posts the very bytes the forwarder would).
pub fn decoder_and_sinks(config: &ForwarderConfig) -> Result<(Decoder, SinkContext)> {
    let catalogue = Arc::new(Catalogue::load(&config.catalogue_path)?);
    let validator = Arc::new(EventValidator::new(catalogue.clone(), config.limits)?);
    let decoder = Decoder::new(validator, config.topics.integrity("topics")?);
    let client = build_client(
        &config.outbound,
        ClientTimeouts {
            connect: Duration::from_millis(config.delivery.connect_timeout_ms),
            request: Duration::from_millis(config.delivery.request_timeout_ms),
        },
    )?;
    let sinks = SinkContext {
        client,
        policy: config.outbound.clone(),
        secrets: SecretBox::from_config(&config.encryption, "encryption")?,
        options: config.sinks.clone(),
        catalogue,
    };
    Ok((decoder, sinks))
}

/// Runs the forwarder until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: ForwarderConfig,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) -> Result<()> {
    let (decoder, sinks) = decoder_and_sinks(&config)?;
    let integrity = config.topics.integrity("topics")?;
    let readiness = Readiness::new(&["kafka", "settings"]);
    let registry = Arc::new(Registry::default());
    let instance = config.delivery.instance();

    let ops = tokio::spawn(audit_runtime::serve_with(
        config.http.listen,
        ops::router(readiness.clone(), metrics, registry.clone()),
        shutdown.clone(),
        Duration::from_secs(2),
        config.http.connection_limits(),
    ));

    ensure_topics(&config.kafka, &config.topics).await?;
    let settings = SettingsStore::start_for(&config.kafka, &config.topics, "forwarder")?;
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

    let mut producer_config = config.kafka.client_config(&format!("forwarder-{instance}"));
    config.producer.apply(&mut producer_config);
    let producer: FutureProducer = producer_config.create()?;
    // Lanes stop retrying at shutdown and park instead; parking itself stops when the drain
    // ends (`lanes_stop`), so a broker outage cannot hold the process forever.
    let lanes_stop = CancellationToken::new();
    let parker = Parker::new(
        producer.clone(),
        &config.topics.forwarder_retry,
        &config.topics.dead_letter,
        lanes_stop.clone(),
    );
    let context = Arc::new(LaneContext {
        sinks: Arc::new(sinks),
        parker: Arc::new(parker.clone()),
        backoff: config.retry.engine(),
        retry: config.retry.clone(),
        linger: config.delivery.linger(),
        max_event_age: Duration::from_secs(config.delivery.max_event_age_secs),
        shutdown: shutdown.clone(),
    });
    let runtime = tokio::runtime::Handle::current();
    let drain_timeout = Duration::from_secs(config.consumer.drain_timeout_secs);
    let commit_interval = Duration::from_millis(config.consumer.commit_interval_ms);

    // The core of a consumer thread: its group consumer subscribed to `topic`, its offset
    // tracker and its router (lanes of `lane_role`).
    let core = |role: &'static str,
                client_id: String,
                group: &str,
                topic: &str,
                lane_role: Role|
     -> Result<ConsumerCore> {
        let tracker = OffsetTracker::new(topic);
        let mut client = config.kafka.client_config(&client_id);
        config.consumer.tuning.apply(&mut client, group);
        audit_kafka::enable_statistics(&mut client);
        let name = if lane_role == Role::Main {
            "forwarder"
        } else {
            "forwarder-retry"
        };
        let consumer: Arc<TrackedConsumer> =
            Arc::new(client.create_with_context(GroupContext::new(
                "forwarder",
                name,
                topic,
                TrackedPartitions::new(tracker.clone(), drain_timeout),
            ))?);
        consumer.subscribe(&[topic])?;
        Ok(ConsumerCore {
            role,
            consumer,
            tracker,
            router: Router::new(
                lane_role,
                context.clone(),
                registry.clone(),
                runtime.clone(),
                config.delivery.lane_queue_events,
                config.delivery.overflow_rules(),
            ),
            settings: settings.clone(),
            plans: config.plans.clone(),
            commit_interval,
            max_buffered_events: config.consumer.max_buffered_events,
            drain_timeout,
            shutdown: shutdown.clone(),
        })
    };

    let events = EventsConsumer {
        core: core(
            "events",
            format!("forwarder-{instance}"),
            &config.consumer.group_id,
            &config.topics.events,
            Role::Main,
        )?,
        decoder,
    };
    let events_consumer = events.core.consumer.clone();
    let events_thread = {
        let runtime = runtime.clone();
        std::thread::Builder::new()
            .name("forwarder-events".into())
            .spawn(move || polling::run(events, runtime))?
    };

    let retry = RetryConsumer {
        core: core(
            "retry",
            format!("forwarder-retry-{instance}"),
            &config.consumer.retry_group(),
            &config.topics.forwarder_retry,
            Role::Retry,
        )?,
        registry: registry.clone(),
        parker: parker.clone(),
        max_event_age: Duration::from_secs(config.delivery.max_event_age_secs),
        paused_recheck: Duration::from_secs(config.retry.paused_recheck_secs),
        held: Default::default(),
    };
    let retry_consumer = retry.core.consumer.clone();
    let retry_thread = {
        let runtime = runtime.clone();
        std::thread::Builder::new()
            .name("forwarder-retry".into())
            .spawn(move || polling::run(retry, runtime))?
    };

    let health = HealthLoop {
        registry: registry.clone(),
        settings: settings.clone(),
        pauses: PauseWriter {
            settings: settings.clone(),
            parker,
            integrity,
            events_topic: config.topics.events.clone(),
        },
        records: HealthRecords {
            settings: settings.clone(),
            instance: instance.clone(),
            record_lifetime: config.health.record_lifetime(),
        },
        publish_interval: Duration::from_secs(config.health.publish_interval_secs),
        refresh: Duration::from_secs(config.health.refresh_secs),
        pause_after: Duration::from_secs(config.retry.pause_after_secs),
    };
    let health_stop = CancellationToken::new();
    let health_task = tokio::spawn(health.run(health_stop.clone()));
    tracing::info!(
        %instance,
        topic = %config.topics.events,
        group = %config.consumer.group_id,
        retry_topic = %config.topics.forwarder_retry,
        "forwarder consuming"
    );

    shutdown.cancelled().await;
    tracing::info!("draining: delivering or parking what is in flight");
    let joined = tokio::task::spawn_blocking(move || {
        let events = events_thread.join().is_ok();
        let retry = retry_thread.join().is_ok();
        events && retry
    })
    .await;
    if !matches!(joined, Ok(true)) {
        tracing::error!("a consumer thread ended abnormally");
    }
    lanes_stop.cancel();
    health_stop.cancel();
    let _ = health_task.await;
    tracing::debug!("health loop stopped");
    // Bounded, like the indexer's: librdkafka's close can wait forever on a rebalance that
    // does not complete (seen in the rebalance test when the stop came while another member
    // joined: the rebalance callback, run by the close, waited on the closing client).
    audit_kafka::consumer::close(events_consumer, "forwarder").await;
    audit_kafka::consumer::close(retry_consumer, "forwarder-retry").await;
    tracing::debug!("consumers closed");
    settings.stop();
    tracing::debug!("settings follower stopped");
    let _ = ops.await;
    tracing::info!("forwarder stopped");
    Ok(())
}
