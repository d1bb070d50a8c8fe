//! The gateway's configuration (`config/gateway.toml`, overridable by `GATEWAY__…` variables).

use std::path::PathBuf;

use audit_core::Limits;
use audit_kafka::{KafkaConfig, ProducerTuning, TopicsConfig};
use audit_runtime::config::require_existing;
use audit_runtime::{ConfigError, HttpConfig, Secret, TelemetryConfig};
use audit_settings::{OutboundPolicy, PlansConfig, SealKeys};
use audit_store::ClickHouseConfig;
use serde::{Deserialize, Serialize};

mod ingest;

pub use ingest::IngestConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The public HTTP listener (API, dashboard, and `/healthz`).
    pub http: HttpConfig,
    /// The operations listener (`/healthz`, `/readyz`, `/metrics`): keep it off the public
    /// network (loopback, or a port only the orchestrator and Prometheus reach).
    #[serde(default)]
    pub ops: OpsConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub topics: TopicsConfig,
    /// Producer tuning (the delivery timeout bounds how long an ingest request waits).
    #[serde(default = "default_producer")]
    pub producer: ProducerTuning,
    /// ClickHouse, for the read/export API (a read-only user is enough).
    pub clickhouse: ClickHouseConfig,
    /// Ingest limits.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Event limits (shared with the indexer).
    #[serde(default)]
    pub limits: Limits,
    #[serde(default = "default_catalogue_path")]
    pub catalogue_path: PathBuf,
    /// Plans (shared with the indexer and forwarder).
    #[serde(default)]
    pub plans: PlansConfig,
    /// Operator authentication.
    #[serde(default)]
    pub operators: OperatorsConfig,
    /// Customer (Owner/Admin) authentication.
    #[serde(default)]
    pub auth: UserAuthConfig,
    /// Keys sealing destination secrets on the settings topic.
    #[serde(default)]
    pub encryption: SealKeys,
    /// Which destination URLs are acceptable.
    #[serde(default)]
    pub outbound: OutboundPolicy,
    /// Read API settings.
    #[serde(default)]
    pub read: ReadConfig,
    /// Tamper evidence: verification of the indexer's signed digests (docs/integrity.md).
    #[serde(default)]
    pub integrity: IntegrityConfig,
    /// Destination types' limits and defaults: the forwarder's `[sinks]` section, the same
    /// values, so that the operator's test event is built and judged as the forwarder would.
    #[serde(default)]
    pub sinks: audit_sinks::SinksConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// The indexer's public keys, `"<key_id>:<base64 of the 32-byte public key>"` (print them
    /// with `indexer integrity-keys`). Empty: the integrity routes answer 404.
    pub public_keys: Vec<String>,
    /// The indexer's `integrity.window_secs`: a chain without a digest for two windows is
    /// reported as not sealed recently.
    pub window_secs: u64,
    /// Most events one verification reads.
    pub max_verify_events: u64,
    /// How long a written batch may take to reach the indexer's sealer after ClickHouse
    /// stamped its rows' `indexed_at` (at most the indexer's `clickhouse.timeout_secs`): rows
    /// indexed this close to their organization's newest seal may be in the next window and
    /// are reported as not yet sealed, not as inserted.
    pub in_flight_secs: u64,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            public_keys: Vec::new(),
            window_secs: 300,
            max_verify_events: 2_000_000,
            in_flight_secs: 30,
        }
    }
}

impl IntegrityConfig {
    /// The public keys, checked (errors name the key); `None` when none are configured.
    pub fn public_keys(&self) -> Result<Option<audit_integrity::PublicKeys>, ConfigError> {
        if self.public_keys.is_empty() {
            return Ok(None);
        }
        audit_integrity::PublicKeys::parse(&self.public_keys)
            .map(Some)
            .map_err(|error| ConfigError::invalid("integrity.public_keys", error.to_string()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Address of the operations listener, e.g. `127.0.0.1:9100`.
    pub listen: std::net::SocketAddr,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

fn default_producer() -> ProducerTuning {
    ProducerTuning {
        linger_ms: 2,
        delivery_timeout_ms: 5_000,
        ..ProducerTuning::default()
    }
}

fn default_catalogue_path() -> PathBuf {
    PathBuf::from("config/catalogue.toml")
}

/// One operator token: its name (shown in audit events) and the SHA-256 of the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorToken {
    pub name: String,
    /// Hex SHA-256 of the bearer token (`gateway operator-token hash` prints it).
    pub sha256: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorsConfig {
    pub tokens: Vec<OperatorToken>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserAuthConfig {
    /// Shared secret for HS256 tokens (dev and simple setups).
    pub hs256_secret: Option<Secret>,
    /// JWKS file with RS256/ES256 public keys.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL with RS256/ES256 public keys (fetched at start and every `jwks_refresh_secs`).
    pub jwks_url: Option<String>,
    pub jwks_refresh_secs: u64,
    /// The identity provider's `iss`: tokens with another issuer are refused. Required with
    /// `hs256_secret`, `jwks_file` or `jwks_url` (unless `local_development`).
    pub issuer: Option<String>,
    /// This application's `aud`: tokens issued for another application are refused.
    /// Required like `issuer`.
    pub audience: Option<String>,
    /// Local development only: allows `issuer`/`audience` to be left unset, so tokens of
    /// any issuer and audience signed with the configured key are accepted. Never in production.
    pub local_development: bool,
    /// Claim holding the organization id.
    pub org_claim: String,
    /// Claim holding the role (`owner`, `admin`, `member`).
    pub role_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
}

impl Default for UserAuthConfig {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            issuer: None,
            audience: None,
            local_development: false,
            org_claim: "org_id".into(),
            role_claim: "role".into(),
            leeway_secs: 30,
        }
    }
}

/// Shortest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

impl UserAuthConfig {
    /// The trust settings: a JWT key needs the issuer and audience it is trusted for.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if let Some(secret) = &self.hs256_secret
            && secret.expose().len() < MIN_HS256_SECRET_BYTES
        {
            return Err(ConfigError::invalid(
                format!("{section}.hs256_secret"),
                format!(
                    "must be at least {MIN_HS256_SECRET_BYTES} bytes (it is {}): a short shared secret can be guessed offline from any token",
                    secret.expose().len()
                ),
            ));
        }
        let accepts_jwts =
            self.hs256_secret.is_some() || self.jwks_file.is_some() || self.jwks_url.is_some();
        if !accepts_jwts {
            tracing::warn!(
                "no {section}.hs256_secret, {section}.jwks_file or {section}.jwks_url: the read API accepts only API tokens"
            );
            return Ok(());
        }
        for (key, value) in [("issuer", &self.issuer), ("audience", &self.audience)] {
            let missing = value.as_deref().is_none_or(|v| v.trim().is_empty());
            if missing && !self.local_development {
                return Err(ConfigError::invalid(
                    format!("{section}.{key}"),
                    format!(
                        "is required with a JWT key: without it, a token the identity provider issued for another application (with `{}` and `{}` claims) would be accepted; set {section}.local_development = true only for local use",
                        self.org_claim, self.role_claim
                    ),
                ));
            }
        }
        if self.local_development && (self.issuer.is_none() || self.audience.is_none()) {
            tracing::warn!(
                "{section}.local_development: tokens of any issuer or audience are accepted — never in production"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadConfig {
    /// Default page size of the list API.
    pub default_limit: u32,
    /// Largest page size.
    pub max_limit: u32,
    /// Key signing pagination cursors (tamper detection). Random per process when unset,
    /// which invalidates cursors across restarts and instances: set it in production.
    pub cursor_secret: Option<Secret>,
    /// Seconds the arrival-ordered feed stays behind "now", so that batches still being
    /// inserted are never skipped.
    pub feed_settle_secs: u64,
    /// ClickHouse `max_execution_time` of a page, single event, feed page or operator view.
    pub query_timeout_secs: u64,
    /// ClickHouse `max_memory_usage` of those queries, in bytes.
    pub query_max_memory_bytes: u64,
    /// ClickHouse `max_result_bytes` of those queries (a page is at most `max_limit` events).
    pub query_max_result_bytes: u64,
    /// ClickHouse `max_execution_time` of an export (exports have no row cap: they are
    /// bounded by time and memory). It includes the time the client takes to download.
    pub export_timeout_secs: u64,
    /// ClickHouse `max_memory_usage` of an export, in bytes.
    pub export_max_memory_bytes: u64,
    /// ClickHouse `max_threads` of every read (0: the server's default).
    pub max_threads_per_read: u64,
    /// Pages, events and feed pages one organization may have in flight at once (429 beyond).
    pub max_concurrent_queries_per_org: usize,
    /// The same per reader (user or API token).
    pub max_concurrent_queries_per_reader: usize,
    /// Exports one organization may have streaming at once (429 beyond).
    pub max_concurrent_exports_per_org: usize,
    /// The same per reader.
    pub max_concurrent_exports_per_reader: usize,
    /// Seconds readers are told to wait (`Retry-After`) on a 429.
    pub retry_after_secs: u64,
}

impl Default for ReadConfig {
    fn default() -> Self {
        let queries = audit_store::ReadBounds::DEFAULT_QUERIES;
        let exports = audit_store::ReadBounds::DEFAULT_EXPORTS;
        Self {
            default_limit: 100,
            max_limit: 1000,
            cursor_secret: None,
            feed_settle_secs: 5,
            query_timeout_secs: queries.max_execution_secs,
            query_max_memory_bytes: queries.max_memory_bytes,
            query_max_result_bytes: queries.max_result_bytes.unwrap_or(64 * 1024 * 1024),
            export_timeout_secs: exports.max_execution_secs,
            export_max_memory_bytes: exports.max_memory_bytes,
            max_threads_per_read: queries.max_threads,
            max_concurrent_queries_per_org: 8,
            max_concurrent_queries_per_reader: 4,
            max_concurrent_exports_per_org: 4,
            max_concurrent_exports_per_reader: 2,
            retry_after_secs: 1,
        }
    }
}

impl ReadConfig {
    /// The ClickHouse bounds of pages, single events, feed pages and operator views.
    pub fn query_bounds(&self) -> audit_store::ReadBounds {
        audit_store::ReadBounds {
            max_execution_secs: self.query_timeout_secs,
            max_memory_bytes: self.query_max_memory_bytes,
            max_result_bytes: Some(self.query_max_result_bytes),
            max_threads: self.max_threads_per_read,
        }
    }

    /// The ClickHouse bounds of exports: time and memory, no result cap.
    pub fn export_bounds(&self) -> audit_store::ReadBounds {
        audit_store::ReadBounds {
            max_execution_secs: self.export_timeout_secs,
            max_memory_bytes: self.export_max_memory_bytes,
            max_result_bytes: None,
            max_threads: self.max_threads_per_read,
        }
    }

    /// The concurrency caps.
    pub fn caps(&self) -> crate::admission::ReadCaps {
        crate::admission::ReadCaps {
            queries_per_org: self.max_concurrent_queries_per_org,
            queries_per_reader: self.max_concurrent_queries_per_reader,
            exports_per_org: self.max_concurrent_exports_per_org,
            exports_per_reader: self.max_concurrent_exports_per_reader,
            retry_after_secs: self.retry_after_secs,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_limit == 0 || self.default_limit > self.max_limit {
            return Err(ConfigError::invalid(
                "read.default_limit",
                "must be between 1 and read.max_limit",
            ));
        }
        let positive = [
            ("read.query_timeout_secs", self.query_timeout_secs),
            ("read.query_max_memory_bytes", self.query_max_memory_bytes),
            ("read.query_max_result_bytes", self.query_max_result_bytes),
            ("read.export_timeout_secs", self.export_timeout_secs),
            ("read.export_max_memory_bytes", self.export_max_memory_bytes),
            (
                "read.max_concurrent_queries_per_org",
                self.max_concurrent_queries_per_org as u64,
            ),
            (
                "read.max_concurrent_queries_per_reader",
                self.max_concurrent_queries_per_reader as u64,
            ),
            (
                "read.max_concurrent_exports_per_org",
                self.max_concurrent_exports_per_org as u64,
            ),
            (
                "read.max_concurrent_exports_per_reader",
                self.max_concurrent_exports_per_reader as u64,
            ),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::invalid(*key, "must be positive"));
        }
        Ok(())
    }
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        if self.ops.listen == self.http.listen {
            return Err(ConfigError::invalid(
                "ops.listen",
                "must differ from http.listen: operations endpoints stay off the public listener",
            ));
        }
        audit_settings::SettingsAuth::check_topics(&self.topics, "topics")?;
        self.clickhouse.validate("clickhouse")?;
        self.plans.validate("plans")?;
        self.integrity.public_keys()?;
        self.outbound.validate("outbound")?;
        self.sinks.validate("sinks")?;
        self.limits.validate().map_err(|error| {
            ConfigError::invalid(format!("limits.{}", error.field), error.reason)
        })?;
        self.ingest.validate()?;
        for (index, token) in self.operators.tokens.iter().enumerate() {
            let valid =
                token.sha256.len() == 64 && token.sha256.chars().all(|c| c.is_ascii_hexdigit());
            if !valid {
                return Err(ConfigError::invalid(
                    format!("operators.tokens[{index}].sha256"),
                    "must be the 64-hex-digit SHA-256 of the token",
                ));
            }
        }
        self.read.validate()?;
        if self.read.query_timeout_secs >= self.clickhouse.timeout_secs {
            // Otherwise the gateway gives up first and the reader gets "store unavailable"
            // instead of the bound that stopped the query.
            return Err(ConfigError::invalid(
                "read.query_timeout_secs",
                "must be below clickhouse.timeout_secs",
            ));
        }
        self.auth.validate("auth")?;
        if let Some(path) = &self.auth.jwks_file
            && !path.exists()
        {
            return Err(ConfigError::invalid(
                "auth.jwks_file",
                format!("{} does not exist", path.display()),
            ));
        }
        audit_settings::SecretBox::from_config(&self.encryption, "encryption")?;
        require_existing("catalogue_path", &self.catalogue_path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hs256(secret: &str) -> UserAuthConfig {
        UserAuthConfig {
            hs256_secret: Some(Secret::new(secret.to_string())),
            issuer: Some("https://id.example.com".into()),
            audience: Some("audit-logs".into()),
            ..UserAuthConfig::default()
        }
    }

    /// The shipped configurations give the gateway's test event the forwarder's `[sinks]`.
    #[test]
    fn the_shipped_sinks_section_is_the_forwarders() {
        let sinks = |text: &str| -> toml::Value {
            let table: toml::Table = toml::from_str(text).unwrap();
            table["sinks"].clone()
        };
        let gateway = sinks(include_str!("../../../config/gateway.toml"));
        let forwarder = sinks(include_str!("../../../config/forwarder.toml"));
        assert_eq!(gateway, forwarder);
        let parsed: audit_sinks::SinksConfig = gateway.try_into().unwrap();
        parsed.validate("sinks").unwrap();
    }

    #[test]
    fn jwt_keys_need_an_issuer_and_an_audience() {
        let secret = "0123456789abcdef0123456789abcdef";
        assert!(hs256(secret).validate("auth").is_ok());
        for (field, config) in [
            (
                "auth.issuer",
                UserAuthConfig {
                    issuer: None,
                    ..hs256(secret)
                },
            ),
            (
                "auth.audience",
                UserAuthConfig {
                    audience: None,
                    ..hs256(secret)
                },
            ),
            (
                "auth.issuer",
                UserAuthConfig {
                    hs256_secret: None,
                    jwks_url: Some("https://id.example.com/jwks".into()),
                    issuer: Some(" ".into()),
                    ..hs256(secret)
                },
            ),
        ] {
            let error = config.validate("auth").unwrap_err().to_string();
            assert!(error.contains(field), "{field}: {error}");
        }
        let local = UserAuthConfig {
            issuer: None,
            audience: None,
            local_development: true,
            ..hs256(secret)
        };
        assert!(local.validate("auth").is_ok());
        assert!(
            UserAuthConfig::default().validate("auth").is_ok(),
            "API tokens only"
        );
    }

    #[test]
    fn short_hs256_secrets_are_refused_naming_the_key() {
        let error = hs256("dev-only-hs256-secret-change-me")
            .validate("auth")
            .unwrap_err()
            .to_string();
        assert!(error.contains("auth.hs256_secret"), "{error}");
        assert!(error.contains("32 bytes"), "{error}");
    }
}
