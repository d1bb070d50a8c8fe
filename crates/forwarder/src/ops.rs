//! The forwarder's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`, and this instance's view
//! of its destinations (`GET /v1/destinations`, `GET /v1/destinations/{id}`). The fleet-wide
//! view is the gateway's operator API, which aggregates the health records of every instance.

use std::sync::Arc;

use audit_runtime::telemetry::PrometheusHandle;
use audit_runtime::{Readiness, ops_router};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::health::Registry;

pub fn router(readiness: Readiness, metrics: PrometheusHandle, registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v1/destinations", get(list))
        .route("/v1/destinations/{destination}", get(one))
        .with_state(registry)
        .merge(ops_router(readiness, metrics))
}

async fn list(State(registry): State<Arc<Registry>>) -> Response {
    Json(serde_json::json!({ "destinations": registry.snapshots() })).into_response()
}

async fn one(State(registry): State<Arc<Registry>>, Path(destination): Path<String>) -> Response {
    match registry.find(&destination) {
        Some(shared) => Json(shared.snapshot()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": {"code": "not_found", "message": "this instance has not delivered to that destination"}})),
        )
            .into_response(),
    }
}
