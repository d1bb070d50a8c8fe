//! The gateway: the front door of the audit-log pipeline.
//!
//! * `POST /v1/events` — authenticated ingest to Kafka ([`ingest`]); `POST /v1/events/import`
//!   — history imports, streamed and paced ([`ingest::import`]).
//! * `/v1/admin/…` — the operator settings API ([`admin`]).
//! * `/v1/orgs/{org}/…` — the read and export API for Owners/Admins and Enterprise API
//!   tokens ([`read`]), and the dashboard page `/orgs/{org}/security/audit-logs`.
//! * `GET /openapi.json` — this API as an OpenAPI 3.1 document ([`openapi`]).
//! * `/healthz` on the public listener; `/healthz`, `/readyz` and `/metrics` on the
//!   operations listener (`[ops] listen`), kept off the public network.
//!
//! The gateway is stateless: tenant settings come from the shared settings topic, events go
//! to Kafka, reads come from ClickHouse. Run as many as needed behind a load balancer.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod ingest;
pub mod integrity;
pub mod meta;
pub mod openapi;
pub mod publisher;
pub mod read;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use audit_core::{Catalogue, EventValidator};
use audit_kafka::{ensure_topics, spawn_kafka_probe};
use audit_runtime::telemetry::PrometheusHandle;
use audit_runtime::{Readiness, ops_router};
use audit_settings::{SecretBox, SettingsStore};
use audit_store::Store;
use axum::Router;
use axum::http::HeaderName;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::GatewayConfig;

/// Everything a request handler may need.
pub struct App {
    pub config: GatewayConfig,
    pub validator: Arc<EventValidator>,
    pub settings: SettingsStore,
    pub publisher: publisher::Publisher,
    pub store: Store,
    pub user_auth: auth::user::UserAuth,
    pub secrets: SecretBox,
    pub readiness: Readiness,
    /// Ingest requests past their body read (publishing), at most `ingest.max_concurrent_requests`.
    pub ingest_permits: Semaphore,
    /// Ingest requests in flight per producer key.
    pub producer_slots: Arc<admission::KeyedLimiter>,
    /// The bytes all ingest bodies being read may hold.
    pub body_budget: ingest::body::BodyBudget,
    /// History imports running (one per producer key, `ingest.max_concurrent_imports`).
    pub imports: ingest::import::Imports,
    /// Read caps per organization and reader.
    pub reads: admission::ReadAdmission,
    pub http: reqwest::Client,
    /// Signs pagination and feed cursors.
    pub cursors: read::cursor::CursorCodec,
    /// Tamper evidence (None: not enabled).
    pub integrity: Option<integrity::Integrity>,
    /// When each (organization, reader) last had a view of the log recorded.
    pub recent_views:
        std::sync::Mutex<std::collections::HashMap<(String, String), std::time::Instant>>,
}

/// The API routes with their OpenAPI description (see [`openapi`]): every route here is
/// registered from its handler's `#[utoipa::path]`, so it is in the document.
pub fn api_router() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(ingest::ingest))
        .routes(routes!(ingest::import::import))
        .merge(admin::router())
        .merge(read::router())
        .merge(integrity::router())
        .routes(routes!(openapi::healthz))
        .routes(routes!(openapi::serve))
}

/// Builds the public router over a ready `App` (the operations routes are served by
/// [`ops_router`] on their own listener).
pub fn router(app: Arc<App>) -> Router {
    let sensitive = [
        axum::http::header::AUTHORIZATION,
        HeaderName::from_static("x-api-key"),
        axum::http::header::COOKIE,
    ];
    let (api, _) = api_router().split_for_parts();
    api.merge(dashboard::router())
        .with_state(app.clone())
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
}

/// Runs the gateway until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: GatewayConfig,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let catalogue = Arc::new(Catalogue::load(&config.catalogue_path)?);
    let validator = Arc::new(EventValidator::new(catalogue, config.limits)?);
    // `http`: ready only once the public listener is bound, so that a probe never sends
    // traffic to a gateway that cannot take it yet.
    let readiness = Readiness::new(&["kafka", "settings", "http"]);
    let secrets = SecretBox::from_config(&config.encryption, "encryption")?;
    // The operations listener first, as the other services do: probes see the start-up.
    let ops_listener = tokio::net::TcpListener::bind(config.ops.listen)
        .await
        .with_context(|| format!("binding ops.listen {}", config.ops.listen))?;
    let ops = tokio::spawn(audit_runtime::serve_on(
        ops_listener,
        ops_router(readiness.clone(), metrics),
        shutdown.clone(),
        Duration::from_secs(2),
        audit_runtime::ConnectionLimits::default(),
    ));

    ensure_topics(&config.kafka, &config.topics)
        .await
        .context("ensuring Kafka topics")?;
    let settings = SettingsStore::start_for(&config.kafka, &config.topics, "gateway")?;
    let publisher = publisher::Publisher::new(
        &config.kafka,
        &config.producer,
        &config.topics.events,
        config.topics.integrity("topics")?,
    )?;
    let store = Store::new(&config.clickhouse)
        .with_read_bounds(config.read.query_bounds(), config.read.export_bounds())
        .with_read_label("gw");
    let user_auth = auth::user::UserAuth::new(&config.auth)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    spawn_kafka_probe(
        &config.kafka,
        &config.topics.events,
        readiness.clone(),
        "kafka",
        shutdown.clone(),
    )?;
    spawn_settings_readiness(settings.clone(), readiness.clone());
    // A refused record (forged, or a concurrent write that lost) left last for its key would
    // survive compaction instead of the valid one: write the valid one again.
    let repairs = settings.spawn_repairs({
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    });
    spawn_clickhouse_probe(store.clone(), readiness.clone(), shutdown.clone());

    let cursor_key = match &config.read.cursor_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => {
            tracing::warn!(
                "read.cursor_secret is not set: cursors are valid only on this instance until it restarts"
            );
            audit_settings::random_token(32).into_bytes()
        }
    };
    let integrity = match config.integrity.public_keys()? {
        Some(keys) => Some(integrity::Integrity {
            keys,
            heads: integrity::heads::PublishedHeads::start(
                &config.kafka,
                &config.topics.digests,
                Duration::from_secs(config.integrity.window_secs * 3),
            )?,
            window: Duration::from_secs(config.integrity.window_secs),
            max_events: config.integrity.max_verify_events,
            in_flight: time::Duration::seconds(
                i64::try_from(config.integrity.in_flight_secs).unwrap_or(i64::MAX),
            ),
        }),
        None => None,
    };
    let app = Arc::new(App {
        integrity,
        cursors: read::cursor::CursorCodec::new(&cursor_key),
        recent_views: std::sync::Mutex::new(std::collections::HashMap::new()),
        ingest_permits: Semaphore::new(config.ingest.max_concurrent_requests),
        producer_slots: admission::KeyedLimiter::new(
            "ingest requests per producer key",
            config.ingest.max_concurrent_requests_per_producer,
        ),
        body_budget: ingest::body::BodyBudget::new(config.ingest.max_buffered_body_bytes),
        imports: ingest::import::Imports::new(config.ingest.max_concurrent_imports),
        reads: admission::ReadAdmission::new(config.read.caps()),
        config,
        validator,
        settings: settings.clone(),
        publisher,
        store,
        user_auth,
        secrets,
        readiness,
        http,
    });
    spawn_jwks_refresh(app.clone(), shutdown.clone());
    let listen = app.config.http.listen;
    let grace = Duration::from_secs(app.config.http.shutdown_grace_secs);
    let limits = app.config.http.connection_limits();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding http.listen {listen}"))?;
    app.readiness.set("http", true, "listening");
    audit_runtime::serve_on(listener, router(app.clone()), shutdown, grace, limits).await?;
    match ops.await {
        Ok(Err(error)) => tracing::warn!(%error, "operations listener failed"),
        Err(error) => tracing::warn!(%error, "operations listener task failed"),
        Ok(Ok(())) => {}
    }

    // In-flight requests are done; make sure everything they handed to Kafka is acknowledged.
    app.publisher.flush(Duration::from_secs(10));
    let _ = repairs.await;
    settings.stop();
    tracing::info!("gateway stopped");
    Ok(())
}

fn spawn_settings_readiness(settings: SettingsStore, readiness: Readiness) {
    tokio::spawn(async move {
        match settings
            .wait_caught_up(Duration::from_secs(24 * 3600))
            .await
        {
            Ok(()) => readiness.set("settings", true, "caught up"),
            Err(error) => readiness.set("settings", false, error.to_string()),
        }
    });
}

fn spawn_clickhouse_probe(store: Store, readiness: Readiness, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match store.ping().await {
                Ok(()) => readiness.set("clickhouse", true, "answers"),
                Err(error) => readiness.set("clickhouse", false, error.to_string()),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    });
}

fn spawn_jwks_refresh(app: Arc<App>, shutdown: CancellationToken) {
    let Some(every) = app.user_auth.jwks_refresh_secs() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            if let Err(error) = app.user_auth.refresh_jwks(&app.http).await {
                tracing::warn!(%error, "JWKS refresh failed; keeping the previous keys");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(every)) => {}
            }
        }
    });
}
