//! The cluster topology of a test run: a 3-node KRaft Kafka and a 2-shard ClickHouse, started
//! once per run by `make test` (tests/run.sh, `KAFKA_NODES=3 CH_SHARDS=2` of the project's own
//! scripts) and announced through `AUDIT_TEST_CLUSTER_*`. Tests stop and kill its nodes on
//! purpose, so they take [`Cluster::exclusive`] first: one cluster test at a time.

use std::path::PathBuf;
use std::process::Command;

use crate::infra::{Infra, Namespace, repo_root, sql_at};

/// Serialises the tests that use the cluster (they break it on purpose).
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The running cluster: where it listens, and how to stop and start its nodes.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Kafka bootstrap list, every node.
    pub kafka: String,
    /// HTTP URL of every ClickHouse shard (one node each), in shard order.
    pub shard_urls: Vec<String>,
    /// The `remote_servers` cluster the shards form.
    pub name: String,
    /// What the scripts need to address this cluster's nodes.
    script_env: Vec<(String, String)>,
}

impl Cluster {
    /// The cluster started by `make test`. Panics (never skips) when it is not announced.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(format!("AUDIT_TEST_CLUSTER_{name}")).unwrap_or_else(|_| {
                panic!(
                    "AUDIT_TEST_CLUSTER_{name} is not set: run the cluster suite with `make test`, \
                     which starts a 3-node Kafka and a 2-shard ClickHouse for it"
                )
            })
        };
        let cache = std::env::var("CACHE_DIR")
            .unwrap_or_else(|_| repo_root().join(".local/cache").display().to_string());
        let name = var("CH_CLUSTER");
        let script_env = vec![
            ("STATE_DIR".to_string(), var("STATE_DIR")),
            ("CACHE_DIR".to_string(), cache),
            ("KAFKA_NODES".to_string(), "3".to_string()),
            ("KAFKA_PORT".to_string(), var("KAFKA_PORT")),
            (
                "KAFKA_CONTROLLER_PORT".to_string(),
                var("KAFKA_CONTROLLER_PORT"),
            ),
            ("CH_SHARDS".to_string(), "2".to_string()),
            ("CH_HTTP_PORT".to_string(), var("CH_HTTP_PORT")),
            ("CH_TCP_PORT".to_string(), var("CH_TCP_PORT")),
            ("CH_CLUSTER".to_string(), name.clone()),
        ];
        let mut cluster = Self {
            kafka: String::new(),
            shard_urls: Vec::new(),
            name,
            script_env,
        };
        cluster.kafka = cluster.kafka_script(&["bootstrap"]).trim().to_string();
        cluster.shard_urls = cluster
            .clickhouse_script(&["urls"])
            .trim()
            .split(',')
            .map(str::to_string)
            .collect();
        cluster
    }

    /// Waits for the other cluster tests, then for every node to be up (a failed test may
    /// have left one stopped).
    pub async fn exclusive() -> (Self, tokio::sync::MutexGuard<'static, ()>) {
        let guard = EXCLUSIVE.lock().await;
        let cluster = Self::from_env();
        cluster.kafka_script(&["start"]);
        cluster.clickhouse_script(&["start"]);
        (cluster, guard)
    }

    /// A namespace of one test on the cluster: its services talk to every broker and to
    /// shard 1 (any node serves the Distributed table).
    pub fn namespace(&self, name: &str) -> Namespace {
        Namespace::with_infra(
            name,
            Infra {
                kafka: self.kafka.clone(),
                clickhouse: self.shard_urls[0].clone(),
            },
        )
    }

    /// Configuration overrides for a service on the cluster (on top of the namespace's):
    /// topics at replication factor 3 (min.insync.replicas 2), the sharded ClickHouse layout.
    pub fn service_env(&self, prefix: &str) -> Vec<(String, String)> {
        let var = |key: &str| format!("{prefix}__{key}");
        let mut env = vec![(var("TOPICS__REPLICATION_FACTOR"), "3".to_string())];
        if prefix != "FORWARDER" {
            env.push((var("CLICKHOUSE__LAYOUT"), "sharded".to_string()));
            env.push((var("CLICKHOUSE__CLUSTER"), self.name.clone()));
            env.push((
                var("CLICKHOUSE__SHARD_URLS"),
                format!(
                    "[{}]",
                    self.shard_urls
                        .iter()
                        .map(|url| format!("\"{url}\""))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
        env
    }

    /// SIGKILLs Kafka node `n` (1-based; its node id).
    pub fn kill_broker(&self, n: u32) {
        self.kafka_script(&["kill-node", &n.to_string()]);
    }

    /// Starts Kafka node `n` again and waits until it answers with the whole cluster.
    pub fn start_broker(&self, n: u32) {
        self.kafka_script(&["start-node", &n.to_string()]);
    }

    /// Stops Kafka node `n` cleanly (controlled shutdown: leadership moves first).
    pub fn stop_broker(&self, n: u32) {
        self.kafka_script(&["stop-node", &n.to_string()]);
    }

    /// The node id of the KRaft quorum's leader, the active controller.
    pub fn active_controller(&self) -> u32 {
        let out = self.kafka_script(&["active-controller"]);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("active-controller printed {out:?}"))
    }

    /// Stops ClickHouse shard `n` (1-based) cleanly.
    pub fn stop_shard(&self, n: u32) {
        self.clickhouse_script(&["stop-node", &n.to_string()]);
    }

    /// Starts ClickHouse shard `n` again (with its data) and waits until it answers.
    pub fn start_shard(&self, n: u32) {
        self.clickhouse_script(&["start-node", &n.to_string()]);
    }

    /// Runs SQL on one shard's node (1-based) and returns the TSV output.
    pub async fn shard_sql(&self, n: u32, query: &str) -> String {
        sql_at(&self.shard_urls[usize::try_from(n - 1).unwrap()], query).await
    }

    /// The shard (1-based) that holds `org`'s rows: the sharding key of the Distributed
    /// table, `cityHash64(org_id)`, modulo the shard count (equal weights).
    pub async fn shard_of(&self, org: &str) -> u32 {
        let text = self
            .shard_sql(
                1,
                &format!("SELECT cityHash64('{org}') % {} + 1", self.shard_urls.len()),
            )
            .await;
        text.trim().parse().unwrap()
    }

    /// Organization names `{prefix}_{n}` sorted into shards: `per_shard` for each shard.
    pub async fn orgs_per_shard(&self, prefix: &str, per_shard: usize) -> Vec<Vec<String>> {
        let mut shards = vec![Vec::new(); self.shard_urls.len()];
        let mut n = 0;
        while shards.iter().any(|orgs| orgs.len() < per_shard) {
            let org = format!("{prefix}_{n}");
            let shard = usize::try_from(self.shard_of(&org).await - 1).unwrap();
            if shards[shard].len() < per_shard {
                shards[shard].push(org);
            }
            n += 1;
        }
        shards
    }

    fn kafka_script(&self, args: &[&str]) -> String {
        self.script("deploy/local/kafka.sh", args)
    }

    fn clickhouse_script(&self, args: &[&str]) -> String {
        self.script("deploy/local/clickhouse.sh", args)
    }

    fn script(&self, script: &str, args: &[&str]) -> String {
        let path: PathBuf = repo_root().join(script);
        let output = Command::new(&path)
            .args(args)
            .envs(
                self.script_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .output()
            .unwrap_or_else(|error| panic!("cannot run {script}: {error}"));
        assert!(
            output.status.success(),
            "{script} {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
