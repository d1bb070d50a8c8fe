//! The gateway's configuration (`config/gateway.toml`, overridable by `GATEWAY__…` variables).

use std::path::PathBuf;

use audit_core::Limits;
use audit_kafka::{KafkaConfig, ProducerTuning, TopicsConfig};
use audit_runtime::{ConfigError, HttpConfig, Secret, TelemetryConfig};
use audit_settings::{OutboundPolicy, PlansConfig, SealKeys};
use audit_store::ClickHouseConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The public HTTP listener (API, dashboard, /healthz, /readyz, /metrics).
    pub http: HttpConfig,
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
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            public_keys: Vec::new(),
            window_secs: 300,
            max_verify_events: 2_000_000,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Most events in one request.
    pub max_events_per_request: usize,
    /// Most ingest requests handled at once; beyond it requests get 503 (bounded memory).
    pub max_concurrent_requests: usize,
    /// Seconds clients are told to wait (`Retry-After`) when the gateway sheds load.
    pub retry_after_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_events_per_request: 1000,
            max_concurrent_requests: 2048,
            retry_after_secs: 1,
        }
    }
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
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud`, when set.
    pub audience: Option<String>,
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
            org_claim: "org_id".into(),
            role_claim: "role".into(),
            leeway_secs: 30,
        }
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
}

impl Default for ReadConfig {
    fn default() -> Self {
        Self {
            default_limit: 100,
            max_limit: 1000,
            cursor_secret: None,
            feed_settle_secs: 5,
        }
    }
}

impl GatewayConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        self.topics.validate("topics")?;
        self.clickhouse.validate("clickhouse")?;
        self.plans.validate("plans")?;
        self.integrity.public_keys()?;
        self.outbound.validate("outbound")?;
        self.limits.validate().map_err(|message| {
            let (key, reason) = message.split_once(": ").unwrap_or(("", message.as_str()));
            ConfigError::invalid(format!("limits.{key}"), reason)
        })?;
        if self.ingest.max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "ingest.max_body_bytes",
                "must be at least 1024",
            ));
        }
        if self.ingest.max_events_per_request == 0 {
            return Err(ConfigError::invalid(
                "ingest.max_events_per_request",
                "must be positive",
            ));
        }
        if self.ingest.max_concurrent_requests == 0 {
            return Err(ConfigError::invalid(
                "ingest.max_concurrent_requests",
                "must be positive",
            ));
        }
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
        if self.read.max_limit == 0 || self.read.default_limit > self.read.max_limit {
            return Err(ConfigError::invalid(
                "read.default_limit",
                "must be between 1 and read.max_limit",
            ));
        }
        let has_user_auth = self.auth.hs256_secret.is_some()
            || self.auth.jwks_file.is_some()
            || self.auth.jwks_url.is_some();
        if !has_user_auth {
            tracing::warn!(
                "no auth.hs256_secret, auth.jwks_file or auth.jwks_url: the read API accepts only API tokens"
            );
        }
        if let Some(path) = &self.auth.jwks_file
            && !path.exists()
        {
            return Err(ConfigError::invalid(
                "auth.jwks_file",
                format!("{} does not exist", path.display()),
            ));
        }
        audit_settings::SecretBox::from_config(&self.encryption, "encryption")?;
        if !self.catalogue_path.exists() {
            return Err(ConfigError::invalid(
                "catalogue_path",
                format!("{} does not exist", self.catalogue_path.display()),
            ));
        }
        Ok(())
    }
}
