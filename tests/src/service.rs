//! The real service binaries as child processes.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::infra::{Namespace, repo_root};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Gateway,
    Indexer,
    Forwarder,
}

impl ServiceKind {
    pub fn binary(self) -> &'static str {
        match self {
            ServiceKind::Gateway => "gateway",
            ServiceKind::Indexer => "indexer",
            ServiceKind::Forwarder => "forwarder",
        }
    }

    pub fn env_prefix(self) -> &'static str {
        match self {
            ServiceKind::Gateway => "GATEWAY",
            ServiceKind::Indexer => "INDEXER",
            ServiceKind::Forwarder => "FORWARDER",
        }
    }
}

/// Where the binaries are: `AUDIT_BIN_DIR`, else `$CARGO_TARGET_DIR/debug`, else `target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("AUDIT_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug")
}

/// A free TCP port on loopback (bound and released; the service binds it right after).
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct free TCP ports on loopback. All are held until every one is known: ports
/// picked one after another can repeat (a gateway once got the same port for both listeners).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|listener| listener.local_addr().unwrap().port())
}

/// A running service. Killed when dropped.
#[derive(Debug)]
pub struct Service {
    pub kind: ServiceKind,
    pub port: u16,
    /// The operations listener (`/readyz`, `/metrics`): the gateway's own; the same as
    /// `port` for the indexer and forwarder.
    pub ops_port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

impl Service {
    /// Starts a service in `ns` with extra `KEY=value` overrides and waits until it is ready.
    pub async fn start(kind: ServiceKind, ns: &Namespace, extra: &[(&str, &str)]) -> Self {
        let service = Self::spawn(kind, ns, extra);
        service.wait_ready(Duration::from_secs(60)).await;
        service
    }

    /// Starts a service without waiting for readiness.
    pub fn spawn(kind: ServiceKind, ns: &Namespace, extra: &[(&str, &str)]) -> Self {
        let prefix = kind.env_prefix();
        let [port, gateway_ops_port] = free_ports();
        let mut env = ns.env(prefix);
        env.push((
            format!("{prefix}__HTTP__LISTEN"),
            format!("127.0.0.1:{port}"),
        ));
        let ops_port = if kind == ServiceKind::Gateway {
            env.push((
                format!("{prefix}__OPS__LISTEN"),
                format!("127.0.0.1:{gateway_ops_port}"),
            ));
            gateway_ops_port
        } else {
            port
        };
        match kind {
            ServiceKind::Indexer => env.push((
                format!("{prefix}__CONSUMER__GROUP_ID"),
                format!("{}-indexer", ns.id),
            )),
            ServiceKind::Forwarder => env.push((
                format!("{prefix}__CONSUMER__GROUP_ID"),
                format!("{}-forwarder", ns.id),
            )),
            ServiceKind::Gateway => {}
        }
        for (key, value) in extra {
            env.retain(|(existing, _)| existing != key);
            env.push(((*key).to_string(), (*value).to_string()));
        }
        let log = ns.dir.join(format!("{}-{port}.log", kind.binary()));
        let mut service = Self {
            kind,
            port,
            ops_port,
            env,
            child: None,
            log,
            starts: 0,
        };
        service.launch();
        service
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let binary = bin_dir().join(self.kind.binary());
        assert!(
            binary.exists(),
            "{} is missing: build with `cargo build --workspace --bins` (make test does)",
            binary.display()
        );
        let child = Command::new(&binary)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "RUST_LOG",
                std::env::var("AUDIT_TEST_SERVICE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        self.child = Some(child);
        self.starts += 1;
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The operations listener (`/healthz`, `/readyz`, `/metrics`).
    pub fn ops_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ops_port)
    }

    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }

    /// The tail of this service's log (for assertion messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub async fn wait_ready(&self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(response) = client
                .get(format!("{}/readyz", self.ops_url()))
                .send()
                .await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} on port {} not ready within {timeout:?}; log:\n{}",
                self.kind.binary(),
                self.port,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the process started last is still running (not exited, not a zombie).
    pub fn is_running(&self) -> bool {
        let Some(pid) = self.pid() else {
            return false;
        };
        // Field 3 of /proc/PID/stat (after the parenthesised name) is the state.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }

    /// The process id (while running).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (up to 60 s) for a graceful exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the same service again (same port and settings) and waits until ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch();
        self.wait_ready(Duration::from_secs(60)).await;
    }

    /// Starts it again without waiting.
    pub fn relaunch(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
