//! The shared engines of a test run, and per-test isolation on them.

use std::path::PathBuf;

/// Where the test run's Kafka and ClickHouse listen.
#[derive(Debug, Clone)]
pub struct Infra {
    pub kafka: String,
    pub clickhouse: String,
}

impl Infra {
    /// The engines started by `make test`. Panics (never skips) when they are not announced.
    pub fn from_env() -> Self {
        let kafka = std::env::var("AUDIT_TEST_KAFKA");
        let clickhouse = std::env::var("AUDIT_TEST_CLICKHOUSE");
        match (kafka, clickhouse) {
            (Ok(kafka), Ok(clickhouse)) => Self { kafka, clickhouse },
            _ => panic!(
                "AUDIT_TEST_KAFKA / AUDIT_TEST_CLICKHOUSE are not set: run the suite with `make test`, \
                 which starts the real Kafka broker and ClickHouse engine for it"
            ),
        }
    }
}

/// The repository root (services run there so `config/` paths resolve).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// One test's private slice of the shared engines.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub infra: Infra,
    /// Short unique id, e.g. `t3f9c1a`.
    pub id: String,
    pub events_topic: String,
    pub dead_letter_topic: String,
    pub settings_topic: String,
    pub retry_topic: String,
    pub database: String,
    /// Folder for this test's service logs (kept on failure for reading).
    pub dir: PathBuf,
}

impl Namespace {
    pub fn new(name: &str) -> Self {
        Self::with_infra(name, Infra::from_env())
    }

    pub fn with_infra(name: &str, infra: Infra) -> Self {
        let id = format!("t{:08x}", rand::random::<u32>());
        let dir = repo_root()
            .join(".local/test/runs")
            .join(format!("{name}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            events_topic: format!("{id}.audit.events.v1"),
            dead_letter_topic: format!("{id}.audit.events.dlq.v1"),
            settings_topic: format!("{id}.audit.settings.v1"),
            retry_topic: format!("{id}.audit.forwarder.retry.v1"),
            database: format!("audit_{id}"),
            infra,
            id,
            dir,
        }
    }

    /// Environment overrides pointing a service at this namespace.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        let var = |key: &str| format!("{prefix}__{key}");
        vec![
            (var("KAFKA__BROKERS"), self.infra.kafka.clone()),
            (var("TOPICS__EVENTS"), self.events_topic.clone()),
            (var("TOPICS__DEAD_LETTER"), self.dead_letter_topic.clone()),
            (var("TOPICS__SETTINGS"), self.settings_topic.clone()),
            (var("TOPICS__FORWARDER_RETRY"), self.retry_topic.clone()),
            (var("CLICKHOUSE__URL"), self.infra.clickhouse.clone()),
            (var("CLICKHOUSE__DATABASE"), self.database.clone()),
            (var("TELEMETRY__LOG_FORMAT"), "text".into()),
        ]
    }

    /// Runs SQL on ClickHouse (in this namespace's database) and returns the TSV output.
    pub async fn sql(&self, query: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/?database={}",
                self.infra.clickhouse, self.database
            ))
            .body(query.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "ClickHouse refused `{query}`: {text}");
        text
    }

    /// A single number from ClickHouse.
    pub async fn sql_u64(&self, query: &str) -> u64 {
        let text = self.sql(query).await;
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("`{query}` returned {text:?}"))
    }

    /// Like `sql_u64` but `None` while the table does not exist yet.
    pub async fn try_sql_u64(&self, query: &str) -> Option<u64> {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/?database={}",
                self.infra.clickhouse, self.database
            ))
            .body(query.to_string())
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()?.trim().parse().ok()
    }
}
