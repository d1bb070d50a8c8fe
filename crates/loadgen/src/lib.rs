//! Shared pieces of the benchmark binaries: latency recording, process RSS sampling,
//! event generation and the result table printed by `make bench`.

#![allow(clippy::print_stdout)]

pub mod freshness;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds.
#[derive(Debug)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            // 1 µs .. 10 min, 3 significant digits.
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self.histogram.record(micros.min(600_000_000));
    }

    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentile in milliseconds.
    pub fn percentile_ms(&self, percentile: f64) -> f64 {
        self.histogram.value_at_quantile(percentile / 100.0) as f64 / 1000.0
    }
}

/// Samples the peak resident set size of a process (from /proc) until stopped.
#[derive(Debug, Clone)]
pub struct RssSampler {
    peak_kb: Arc<AtomicU64>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let sampler = Self {
            peak_kb: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        };
        let peak = sampler.peak_kb.clone();
        let stop = sampler.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        sampler
    }

    pub fn peak_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }

    pub fn reset(&self) {
        self.peak_kb.store(0, Ordering::Relaxed);
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub use audit_tests::proc::{cpu_seconds, cpu_seconds_since, rss_kb};

/// The pid of the process listening on a TCP port (from /proc/net/tcp + /proc/*/fd).
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let hex_port = format!(":{port:04X}");
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields.get(1)?.ends_with(&hex_port) && fields.get(3) == Some(&"0A"))
                    .then(|| fields.get(9).map(|s| s.to_string()))?
            })
        })?;
    let needle = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == needle)
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Now, in RFC 3339 (the `occurred_at` of generated events).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Realistic actions per category, for generated events.
pub const ACTIONS: &[(&str, &str)] = &[
    ("authentication", "user.login.succeeded"),
    ("authentication", "user.login.failed"),
    ("authentication", "user.mfa.enrolled"),
    ("user_management", "member.role.changed"),
    ("user_management", "member.invite.sent"),
    ("billing", "billing.invoice.generated"),
    ("service", "resource.created"),
    ("service", "resource.config.edited"),
    ("security", "api_key.generated"),
    ("data_access", "data.export.requested"),
];

/// A realistic event (≈ 500 bytes) of organization `org`, `n`-th of its run.
pub fn generated_event(org: &str, n: u64, occurred_at: &str) -> Value {
    let (category, action) = ACTIONS[(n % ACTIONS.len() as u64) as usize];
    json!({
        "id": uuid::Uuid::now_v7().to_string(),
        "org_id": org,
        "occurred_at": occurred_at,
        "category": category,
        "action": action,
        "outcome": if n.is_multiple_of(7) { "failure" } else { "success" },
        "actor": {"type": "user", "id": format!("user_{}", n % 500), "name": format!("User {}", n % 500), "email": format!("user{}@example.com", n % 500)},
        "targets": [{"type": "resource", "id": format!("res_{}", n % 1000), "name": format!("Resource {}", n % 1000)}],
        "context": {"ip": format!("198.51.100.{}", n % 250), "user_agent": "Mozilla/5.0 (bench)", "location": "Paris, FR", "request_id": format!("req_{n}")},
        "metadata": {"plan": "enterprise", "attempt": n % 3, "region": "eu-west-1"},
        "source": "loadgen",
    })
}

/// One row of the benchmark table.
#[derive(Debug, Clone, Default)]
pub struct BenchRow {
    pub name: String,
    pub throughput: String,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub notes: String,
}

/// Prints rows as a Markdown table (pasted into BENCHMARKS.md).
pub fn print_table(rows: &[BenchRow]) {
    println!("| benchmark | throughput | p50 | p99 | peak RSS | notes |");
    println!("|---|---|---|---|---|---|");
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1} ms"));
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.name,
            row.throughput,
            ms(row.p50_ms),
            ms(row.p99_ms),
            row.peak_rss_mb
                .map_or("–".to_string(), |v| format!("{v:.0} MB")),
            row.notes
        );
    }
}

/// The bench instance of Kafka and ClickHouse (started by `deploy/local/bench.sh`) and where
/// the release binaries and their logs are: the arguments of every `make bench` binary.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchInstance {
    /// Kafka of the bench instance.
    #[arg(long, default_value = "127.0.0.1:59092")]
    pub kafka: String,
    /// ClickHouse HTTP of the bench instance.
    #[arg(long, default_value = "http://127.0.0.1:58123")]
    pub clickhouse: String,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    pub bin_dir: PathBuf,
    /// Logs of the services started by the benchmark.
    #[arg(long, default_value = ".local/bench/logs")]
    pub log_dir: PathBuf,
}

impl BenchInstance {
    /// Starts the release `binary` on `port` with `env` overrides, its output in
    /// `<log_dir>/<log_name>`, and waits up to `ready_within` for its `/readyz`.
    pub async fn start_service(
        &self,
        binary: &str,
        port: u16,
        env: &[(String, String)],
        log_name: &str,
        ready_within: Duration,
    ) -> anyhow::Result<BenchService> {
        std::fs::create_dir_all(&self.log_dir)?;
        let log = self.log_dir.join(log_name);
        let mut service = BenchService::start(binary, &self.bin_dir.join(binary), port, env, &log)?;
        service
            .wait_ready(ready_within)
            .await
            .with_context(|| format!("{binary}: see {}", log.display()))?;
        Ok(service)
    }
}

/// A release service started by a benchmark, killed when dropped.
#[derive(Debug)]
pub struct BenchService {
    pub name: String,
    pub port: u16,
    /// Where `/readyz` answers: the gateway's operations listener, else `port`.
    ops_port: u16,
    child: std::process::Child,
}

impl BenchService {
    /// Starts `binary` from the repository root with `env` overrides; logs to `log`. A
    /// gateway gets its operations listener (`/readyz`, `/metrics`) on a free port of its own.
    pub fn start(
        name: &str,
        binary: &std::path::Path,
        port: u16,
        env: &[(String, String)],
        log: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let mut env = env.to_vec();
        let is_gateway = env.iter().any(|(key, _)| key.starts_with("GATEWAY__"));
        let ops_port = if is_gateway {
            // `port` was released by the caller: make sure the second listener differs.
            let ops_port = loop {
                match free_port() {
                    candidate if candidate != port => break candidate,
                    _ => continue,
                }
            };
            env.push((
                "GATEWAY__OPS__LISTEN".to_string(),
                format!("127.0.0.1:{ops_port}"),
            ));
            ops_port
        } else {
            port
        };
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = std::process::Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // Quiet by default (logging costs the measured services CPU); `BENCH_SERVICE_LOG`
            // (a `RUST_LOG` filter) for looking into a run.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdin(std::process::Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", binary.display()))?;
        Ok(Self {
            name: name.to_string(),
            port,
            ops_port,
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let readyz = format!("http://127.0.0.1:{}/readyz", self.ops_port);
            if let Ok(response) = client.get(readyz).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("{} exited during start: {status}", self.name);
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("{} not ready within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn stop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BenchService {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A free TCP port on loopback (bound and released; the service binds it right after).
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct free TCP ports on loopback. All are held until every one is known: ports
/// picked one after another can repeat.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [std::net::TcpListener; N] = std::array::from_fn(|_| {
        std::net::TcpListener::bind("127.0.0.1:0").expect("no free port on loopback")
    });
    listeners.map(|listener| listener.local_addr().expect("a bound listener").port())
}

/// Runs SQL against ClickHouse over HTTP and returns the body.
pub async fn clickhouse(
    http: &reqwest::Client,
    url: &str,
    database: &str,
    sql: &str,
) -> anyhow::Result<String> {
    let response = http
        .post(format!("{url}/?database={database}"))
        .body(sql.to_string())
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        anyhow::bail!(
            "ClickHouse refused `{}`: {text}",
            sql.chars().take(200).collect::<String>()
        );
    }
    Ok(text)
}
