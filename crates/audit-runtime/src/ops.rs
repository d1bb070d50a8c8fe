//! `/healthz` (the process is alive), `/readyz` (every dependency answers) and `/metrics`.
//!
//! Readiness is pushed, not pulled: background tasks that already talk to Kafka/ClickHouse
//! record the outcome in [`Readiness`], so a probe never waits on a slow dependency.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
struct ComponentState {
    ready: bool,
    /// Required components gate `/readyz`; the others are reported only.
    required: bool,
    detail: String,
}

/// The readiness of each dependency of a service, by name.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    components: Arc<RwLock<BTreeMap<&'static str, ComponentState>>>,
}

impl Readiness {
    /// A readiness gated on these components, all not ready yet. Components set later
    /// without being listed here are reported but do not gate readiness.
    pub fn new(required: &[&'static str]) -> Self {
        let readiness = Self::default();
        {
            let mut components = readiness
                .components
                .write()
                .unwrap_or_else(|e| e.into_inner());
            for component in required {
                components.insert(
                    component,
                    ComponentState {
                        ready: false,
                        required: true,
                        detail: "starting".into(),
                    },
                );
            }
        }
        readiness
    }

    pub fn set(&self, component: &'static str, ready: bool, detail: impl Into<String>) {
        let mut components = self.components.write().unwrap_or_else(|e| e.into_inner());
        let required = components
            .get(component)
            .is_some_and(|state| state.required);
        let state = ComponentState {
            ready,
            required,
            detail: detail.into(),
        };
        let changed = components
            .get(component)
            .is_none_or(|previous| previous.ready != ready);
        if changed && component != "draining" {
            if ready {
                tracing::info!(component, detail = %state.detail, "dependency ready");
            } else {
                tracing::warn!(component, detail = %state.detail, "dependency not ready");
            }
        }
        metrics::gauge!("ready", "component" => component).set(if ready { 1.0 } else { 0.0 });
        components.insert(component, state);
    }

    pub fn is_ready(&self) -> bool {
        let components = self.components.read().unwrap_or_else(|e| e.into_inner());
        components
            .values()
            .all(|state| state.ready || !state.required)
    }

    fn snapshot(&self) -> BTreeMap<&'static str, ComponentState> {
        self.components
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[derive(Clone)]
struct OpsState {
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// The three operational routes, to serve alone or merge into a service's router.
pub fn ops_router(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(OpsState { readiness, metrics })
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let status = if state.readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(state.readiness.snapshot())).into_response()
}

async fn render_metrics(State(state): State<OpsState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
