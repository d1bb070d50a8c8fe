//! The indexer's configuration (`config/indexer.toml`, overridable by `INDEXER__…` variables).

use std::path::PathBuf;

use audit_core::Limits;
use audit_kafka::{ConsumerTuning, KafkaConfig, TopicsConfig};
use audit_runtime::config::{require_existing, require_positive};
use audit_runtime::{ConfigError, HttpConfig, TelemetryConfig};
use audit_settings::PlansConfig;
use audit_store::ClickHouseConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexerConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` listen.
    pub http: HttpConfig,
    /// Log format and level.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Topic names and layout.
    #[serde(default)]
    pub topics: TopicsConfig,
    /// ClickHouse connection.
    pub clickhouse: ClickHouseConfig,
    /// Consumer group and tuning.
    #[serde(default)]
    pub consumer: ConsumerConfig,
    /// Batch bounds.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Backoff of ClickHouse and dead-letter retries.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Plans and their retention bounds (shared with the gateway and forwarder).
    #[serde(default)]
    pub plans: PlansConfig,
    /// Event limits (shared with the gateway).
    #[serde(default)]
    pub limits: Limits,
    /// Path of the category/action catalogue.
    #[serde(default = "default_catalogue_path")]
    pub catalogue_path: PathBuf,
    /// Apply schema migrations at start (otherwise run `indexer migrate` first).
    #[serde(default)]
    pub migrate_on_start: bool,
    /// Retention reconciliation.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// When a lack of progress is reported.
    #[serde(default)]
    pub health: HealthConfig,
    /// Tamper evidence: signed window digests (docs/integrity.md).
    #[serde(default)]
    pub integrity: IntegrityConfig,
}

pub fn default_catalogue_path() -> PathBuf {
    PathBuf::from("config/catalogue.toml")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Consumer group; every indexer instance of one deployment uses the same.
    pub group_id: String,
    /// Consumer tuning.
    #[serde(default)]
    pub tuning: ConsumerTuning,
    /// How long a rebalance or shutdown waits for in-flight batches before abandoning them
    /// (abandoned batches may be inserted twice; the table deduplicates).
    #[serde(default = "default_drain_secs")]
    pub drain_timeout_secs: u64,
}

fn default_drain_secs() -> u64 {
    15
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: "indexer".into(),
            tuning: ConsumerTuning::default(),
            drain_timeout_secs: default_drain_secs(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most rows per insert (one ClickHouse part). Rows stream to ClickHouse as they are read,
    /// so this costs the indexer no memory; bigger parts mean less merging for ClickHouse.
    pub max_rows: usize,
    /// Most bytes (approximate) per insert: bounds what ClickHouse holds while building a part.
    pub max_bytes: usize,
    /// Longest time a row waits for its batch to fill while the indexer keeps up (ms): the
    /// freshness bound.
    pub max_wait_ms: u64,
    /// Longest batch while the indexer is behind, i.e. reading messages already older than
    /// `max_wait_ms` (ms): a backlog drains in larger parts, which ClickHouse writes faster.
    pub max_wait_behind_ms: u64,
    /// Chunks of up to 1,024 decoded rows queued for the writer before consumption pauses:
    /// with librdkafka's prefetch, the indexer's memory.
    pub queue_chunks: usize,
    /// Most table partitions (months of `occurred_at`) one INSERT may touch; a batch spanning
    /// more is written as several INSERTs. Must stay below ClickHouse's
    /// `max_partitions_per_insert_block` (100 by default), which refuses the whole INSERT.
    pub max_partitions_per_insert: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_rows: 200_000,
            max_bytes: 256 * 1024 * 1024,
            max_wait_ms: 250,
            max_wait_behind_ms: 2_000,
            queue_chunks: 16,
            max_partitions_per_insert: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff delay (ms).
    pub initial_backoff_ms: u64,
    /// Largest backoff delay (ms).
    pub max_backoff_ms: u64,
    /// Most rows ClickHouse refuses for their content (a constraint, a value it cannot store)
    /// that are dead-lettered per minute. More looks like a schema problem rather than bad
    /// events: the indexer stops dead-lettering and retries with backoff (a reported stall).
    pub max_refused_rows_per_minute: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 100,
            max_backoff_ms: 10_000,
            max_refused_rows_per_minute: 60,
        }
    }
}

impl RetryConfig {
    /// The shared backoff engine: exponential, jittered, capped, never giving up.
    pub fn backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_millis(self.initial_backoff_ms))
            .with_max_delay(std::time::Duration::from_millis(self.max_backoff_ms))
            .with_jitter()
            .without_max_times()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Seconds between full reconciliations of stored retention with the settings.
    pub reconcile_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            reconcile_interval_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Seconds without any batch written while messages wait before the indexer reports a
    /// stall (`/readyz` not ready, `indexer_stalled` 1, a warning every 30 s).
    pub stall_after_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            stall_after_secs: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// Seal every organization's log into signed window digests.
    pub enabled: bool,
    /// Seconds between two seals of a partition: how soon a change to stored events becomes
    /// detectable, and the most a crash re-reads (offsets commit only up to a sealed window).
    pub window_secs: u64,
    /// A window also closes as soon as this many written rows wait for it (all partitions
    /// together). The writer goes on while a window is sealed and waits for the seal only
    /// when twice as many wait: bounds the memory leaves take while a backlog is indexed
    /// (about 100 bytes each).
    pub max_open_leaves: usize,
    /// Ed25519 signing keys, `"<key_id>:<base64 of a 32-byte seed>"`, newest (signing) first;
    /// keep the old ones listed so their public keys stay published. Never give them to
    /// ClickHouse or the gateway (which gets the public keys: `indexer integrity-keys`).
    pub signing_keys: Vec<audit_runtime::Secret>,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            window_secs: 300,
            max_open_leaves: 200_000,
            signing_keys: Vec::new(),
        }
    }
}

impl IntegrityConfig {
    /// The signing keys, checked (errors name the key).
    pub fn keys(&self) -> Result<audit_integrity::SigningKeys, ConfigError> {
        let entries: Vec<&str> = self
            .signing_keys
            .iter()
            .map(|key| key.expose().as_str())
            .collect();
        audit_integrity::SigningKeys::parse(&entries)
            .map_err(|error| ConfigError::invalid("integrity.signing_keys", error.to_string()))
    }
}

impl IndexerConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        self.consumer.tuning.validate("consumer.tuning")?;
        audit_settings::SettingsAuth::check_topics(&self.topics, "topics")?;
        self.clickhouse.validate("clickhouse")?;
        self.plans.validate("plans")?;
        self.limits.validate().map_err(|error| {
            ConfigError::invalid(format!("limits.{}", error.field), error.reason)
        })?;
        if self.consumer.group_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "consumer.group_id",
                "must not be empty",
            ));
        }
        require_positive("batch.max_rows", self.batch.max_rows as u64)?;
        if self.batch.max_bytes < 64 * 1024 {
            return Err(ConfigError::invalid(
                "batch.max_bytes",
                "must be at least 65536",
            ));
        }
        require_positive(
            "batch.max_partitions_per_insert",
            self.batch.max_partitions_per_insert as u64,
        )?;
        if self.integrity.enabled {
            self.integrity.keys()?;
            require_positive("integrity.window_secs", self.integrity.window_secs)?;
        }
        require_positive("health.stall_after_secs", self.health.stall_after_secs)?;
        require_positive("batch.queue_chunks", self.batch.queue_chunks as u64)?;
        if self.batch.max_wait_behind_ms < self.batch.max_wait_ms {
            return Err(ConfigError::invalid(
                "batch.max_wait_behind_ms",
                "must be at least batch.max_wait_ms",
            ));
        }
        if self.retry.initial_backoff_ms == 0
            || self.retry.max_backoff_ms < self.retry.initial_backoff_ms
        {
            return Err(ConfigError::invalid(
                "retry.max_backoff_ms",
                "must be at least retry.initial_backoff_ms (> 0)",
            ));
        }
        require_existing("catalogue_path", &self.catalogue_path)?;
        Ok(())
    }
}
