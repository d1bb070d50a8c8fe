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
    pub digests_topic: String,
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
            digests_topic: format!("{id}.audit.integrity.v1"),
            database: format!("audit_{id}"),
            infra,
            id,
            dir,
        }
    }

    /// Environment overrides pointing a service at this namespace.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        let var = |key: &str| format!("{prefix}__{key}");
        let mut env = vec![
            (var("KAFKA__BROKERS"), self.infra.kafka.clone()),
            (var("TOPICS__EVENTS"), self.events_topic.clone()),
            (var("TOPICS__DEAD_LETTER"), self.dead_letter_topic.clone()),
            (var("TOPICS__SETTINGS"), self.settings_topic.clone()),
            (var("TOPICS__FORWARDER_RETRY"), self.retry_topic.clone()),
            (var("TOPICS__DIGESTS"), self.digests_topic.clone()),
            (var("TELEMETRY__LOG_FORMAT"), "text".into()),
        ];
        // The forwarder has no ClickHouse (and refuses unknown configuration keys).
        if prefix != "FORWARDER" {
            env.push((var("CLICKHOUSE__URL"), self.infra.clickhouse.clone()));
            env.push((var("CLICKHOUSE__DATABASE"), self.database.clone()));
        }
        env
    }

    /// Runs SQL on ClickHouse (in this namespace's database) and returns the TSV output.
    pub async fn sql(&self, query: &str) -> String {
        sql_at(
            &format!("{}/?database={}", self.infra.clickhouse, self.database),
            query,
        )
        .await
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

/// Runs SQL on the ClickHouse HTTP endpoint `url` and returns the TSV output; panics (with
/// the engine's answer) unless it succeeds.
pub async fn sql_at(url: &str, query: &str) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .body(query.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(
        status.is_success(),
        "ClickHouse at {url} refused `{query}`: {text}"
    );
    text
}

/// A Kafka broker or ClickHouse engine of a test's own, for tests that stop it on purpose
/// (the shared ones must stay up for the tests running alongside). Started by the project's
/// own scripts with the run's download cache; stopped when dropped.
#[derive(Debug)]
pub struct DedicatedEngine {
    kind: EngineKind,
    state_dir: PathBuf,
    ports: (u16, u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    Kafka,
    ClickHouse,
}

impl DedicatedEngine {
    pub fn start(kind: EngineKind, ns: &Namespace) -> Self {
        let engine = Self {
            kind,
            state_dir: ns.dir.join(match kind {
                EngineKind::Kafka => "kafka",
                EngineKind::ClickHouse => "clickhouse",
            }),
            ports: {
                let [first, second] = crate::service::free_ports();
                (first, second)
            },
        };
        engine.run("start");
        engine
    }

    /// `127.0.0.1:port` for Kafka, `http://127.0.0.1:port` for ClickHouse.
    pub fn address(&self) -> String {
        match self.kind {
            EngineKind::Kafka => format!("127.0.0.1:{}", self.ports.0),
            EngineKind::ClickHouse => format!("http://127.0.0.1:{}", self.ports.0),
        }
    }

    pub fn stop(&self) {
        self.run("stop");
    }

    pub fn resume(&self) {
        self.run("start");
    }

    fn run(&self, action: &str) {
        let script = match self.kind {
            EngineKind::Kafka => "deploy/local/kafka.sh",
            EngineKind::ClickHouse => "deploy/local/clickhouse.sh",
        };
        let cache = std::env::var("CACHE_DIR")
            .unwrap_or_else(|_| repo_root().join(".local/cache").display().to_string());
        let mut command = std::process::Command::new(repo_root().join(script));
        command
            .arg(action)
            .env("STATE_DIR", &self.state_dir)
            .env("CACHE_DIR", cache);
        match self.kind {
            EngineKind::Kafka => command
                .env("KAFKA_PORT", self.ports.0.to_string())
                .env("KAFKA_CONTROLLER_PORT", self.ports.1.to_string())
                .env("KAFKA_HEAP", "384m"),
            EngineKind::ClickHouse => command
                .env("CH_HTTP_PORT", self.ports.0.to_string())
                .env("CH_TCP_PORT", self.ports.1.to_string()),
        };
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{script} {action} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for DedicatedEngine {
    fn drop(&mut self) {
        let script = match self.kind {
            EngineKind::Kafka => "deploy/local/kafka.sh",
            EngineKind::ClickHouse => "deploy/local/clickhouse.sh",
        };
        let mut command = std::process::Command::new(repo_root().join(script));
        command.arg("stop").env("STATE_DIR", &self.state_dir);
        match self.kind {
            EngineKind::Kafka => command
                .env("KAFKA_PORT", self.ports.0.to_string())
                .env("KAFKA_CONTROLLER_PORT", self.ports.1.to_string()),
            EngineKind::ClickHouse => command
                .env("CH_HTTP_PORT", self.ports.0.to_string())
                .env("CH_TCP_PORT", self.ports.1.to_string()),
        };
        let _ = command.output();
    }
}
