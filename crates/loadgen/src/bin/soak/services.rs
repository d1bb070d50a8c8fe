//! The services and engines the soak runs and breaks: each service's environment (its own
//! topics, database and consumer group; the cluster topology with `--cluster`), start and
//! restart on the same port, SIGKILL and SIGTERM, and the deploy/local scripts that stop
//! and start ClickHouse and Kafka nodes.

use std::time::Duration;

use anyhow::{Context, bail};
use loadgen::BenchService;

use crate::Soak;

impl Soak {
    /// The environment of a service of the soak (`prefix`: its binary in capitals).
    fn env(&self, prefix: &str, port: u16) -> Vec<(String, String)> {
        let var = |k: &str| format!("{prefix}__{k}");
        let id = &self.id;
        let mut env = vec![
            (var("KAFKA__BROKERS"), self.cli.kafka.clone()),
            (var("TOPICS__EVENTS"), format!("{id}.audit.events.v1")),
            (
                var("TOPICS__DEAD_LETTER"),
                format!("{id}.audit.events.dlq.v1"),
            ),
            (var("TOPICS__SETTINGS"), format!("{id}.audit.settings.v1")),
            (
                var("TOPICS__FORWARDER_RETRY"),
                format!("{id}.audit.forwarder.retry.v1"),
            ),
            (var("HTTP__LISTEN"), format!("127.0.0.1:{port}")),
        ];
        // The forwarder has no ClickHouse (and refuses unknown configuration keys).
        if prefix != "FORWARDER" {
            env.push((var("CLICKHOUSE__URL"), self.cli.clickhouse.clone()));
            env.push((var("CLICKHOUSE__DATABASE"), format!("soak_{id}")));
        }
        if self.cli.cluster {
            env.push((var("TOPICS__REPLICATION_FACTOR"), "3".into()));
            if prefix != "FORWARDER" {
                let urls: Vec<String> = self
                    .cli
                    .shard_urls
                    .iter()
                    .map(|u| format!("\"{u}\""))
                    .collect();
                env.push((var("CLICKHOUSE__LAYOUT"), "sharded".into()));
                env.push((var("CLICKHOUSE__CLUSTER"), "audit_shards".into()));
                env.push((
                    var("CLICKHOUSE__SHARD_URLS"),
                    format!("[{}]", urls.join(",")),
                ));
            }
        }
        match prefix {
            "INDEXER" => {
                env.push((var("CONSUMER__GROUP_ID"), format!("{id}-indexer")));
                env.push((var("MIGRATE_ON_START"), "true".into()));
                env.push((var("RETRY__MAX_BACKOFF_MS"), "2000".into()));
            }
            "FORWARDER" => {
                env.push((var("CONSUMER__GROUP_ID"), format!("{id}-forwarder")));
                env.push((var("RETRY__INITIAL_BACKOFF_MS"), "500".into()));
                env.push((var("RETRY__MAX_BACKOFF_MS"), "5000".into()));
                env.push((var("RETRY__IN_MEMORY_BUDGET_MS"), "5000".into()));
                env.push((var("RETRY__PAUSED_RECHECK_SECS"), "10".into()));
            }
            _ => {}
        }
        env
    }

    /// Starts (or restarts, same port) service `name` = `<binary>-<n>`.
    pub(crate) async fn start(&self, name: &str, port: u16) -> anyhow::Result<()> {
        let binary = name.split('-').next().unwrap_or(name);
        let env = self.env(&binary.to_uppercase(), port);
        let log = self.log_dir.join(format!("{name}.log"));
        let mut service =
            BenchService::start(name, &self.cli.bin_dir.join(binary), port, &env, &log)?;
        service
            .wait_ready(Duration::from_secs(120))
            .await
            .with_context(|| format!("{name}: see {}", log.display()))?;
        self.services.lock().await.insert(name.to_string(), service);
        Ok(())
    }

    pub(crate) async fn port_of(&self, name: &str) -> u16 {
        self.services
            .lock()
            .await
            .get(name)
            .map(|s| s.port)
            .unwrap_or(0)
    }

    pub(crate) async fn kill(&self, name: &str) {
        if let Some(mut service) = self.services.lock().await.remove(name) {
            let _ = std::process::Command::new("kill")
                .arg("-KILL")
                .arg(service.pid().to_string())
                .status();
            service.stop();
        }
    }

    pub(crate) async fn terminate(&self, name: &str) {
        if let Some(mut service) = self.services.lock().await.remove(name) {
            service.stop();
        }
    }
    /// Runs deploy/local/kafka.sh (its ports and node count come from soak.sh's environment).
    pub(crate) fn kafka_script(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = std::process::Command::new("deploy/local/kafka.sh")
            .args(args)
            .env("STATE_DIR", &self.cli.state_dir)
            .output()?;
        if !output.status.success() {
            bail!(
                "kafka.sh {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub(crate) fn clickhouse_script(&self, action: &str) -> anyhow::Result<()> {
        let port = self
            .cli
            .clickhouse
            .rsplit(':')
            .next()
            .unwrap_or("58223")
            .to_string();
        let status = std::process::Command::new("deploy/local/clickhouse.sh")
            .args(action.split_whitespace())
            .env("STATE_DIR", &self.cli.state_dir)
            .env("CH_HTTP_PORT", &port)
            .env(
                "CH_TCP_PORT",
                std::env::var("CH_TCP_PORT").unwrap_or_else(|_| "59200".into()),
            )
            .status()?;
        if !status.success() {
            bail!("clickhouse.sh {action} failed");
        }
        Ok(())
    }
}
