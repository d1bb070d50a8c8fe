//! Test harness for the end-to-end suites in `tests/tests/`.
//!
//! The suites run against the real Kafka broker and ClickHouse engine that `make test`
//! starts once per run (`tests/run.sh`) and announces through `AUDIT_TEST_KAFKA` and
//! `AUDIT_TEST_CLICKHOUSE`. A suite started some other way fails loudly instead of skipping.
//! Every test works in its own [`Namespace`] — topics, consumer groups and ClickHouse
//! database of its own — so tests run in parallel without seeing each other's data. Services
//! are the real binaries (`target/debug/{gateway,indexer,forwarder}`), started as processes
//! so tests can SIGKILL them.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

pub mod cluster;
pub mod events;
pub mod fakes;
pub mod hostile;
pub mod infra;
pub mod kafka;
pub mod proc;
pub mod service;
pub mod synthetic;

pub use infra::{DedicatedEngine, EngineKind, Infra, Namespace};
pub use service::{Service, ServiceKind};

/// The operator token of `config/gateway.toml` (dev only).
pub const OPERATOR_TOKEN: &str = "dev-operator-token";
/// The HS256 secret of `config/gateway.toml` (dev only).
pub const HS256_SECRET: &str = "dev-only-hs256-secret-change-me-0123456789";
/// The `auth.issuer` of `config/gateway.toml`.
pub const JWT_ISSUER: &str = "https://identity.solarius.local";
/// The `auth.audience` of `config/gateway.toml`.
pub const JWT_AUDIENCE: &str = "audit-logs";
/// The `topics.integrity_key` of `config/*.toml` (dev only).
pub const INTEGRITY_KEY: &str = "dev-only-integrity-key-change-me-0123456789";
/// The `topics.settings_keys` of `config/*.toml` (dev only).
pub const SETTINGS_KEY: &str = "dev1:dev-only-settings-key-change-me-0123456789";

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Mints a user token signed with the dev HS256 secret, for the dev issuer and audience
/// (`ttl_secs` may be negative: expired).
pub fn user_token(org: &str, role: &str, subject: &str, ttl_secs: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    signed_token(&serde_json::json!({
        "sub": subject, "org_id": org, "role": role, "iat": now, "exp": now + ttl_secs,
        "iss": JWT_ISSUER, "aud": JWT_AUDIENCE,
    }))
}

/// Any claims, signed with the dev HS256 secret.
pub fn signed_token(claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes()),
    )
    .unwrap()
}
