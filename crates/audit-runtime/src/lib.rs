//! What every service of the audit-log pipeline shares at run time: configuration loading
//! (file + environment, validated with errors that name the key), a redacting secret type,
//! structured logs, Prometheus metrics, `/healthz` `/readyz` `/metrics`, and shutdown.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod ops;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod telemetry;

pub use config::{ConfigError, HttpConfig};
pub use ops::{Readiness, ops_router};
pub use secret::Secret;
pub use server::{ConnectionLimits, serve, serve_on, serve_with};
pub use shutdown::shutdown_token;
pub use telemetry::TelemetryConfig;
