//! A tiny HTTP server for the fakes that can really go down: `stop` closes the listener and
//! drops every open connection (clients see connection refused/reset, not a polite 503), and
//! `restart` listens again on the same port.

use std::net::SocketAddr;
use std::sync::Mutex;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    router: Router,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl HttpServer {
    /// Serves `router` on 127.0.0.1:`port` (0 = any free port).
    pub async fn start(router: Router, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let server = Self {
            addr,
            router,
            task: Mutex::new(None),
        };
        server.spawn(listener);
        Ok(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn spawn(&self, listener: TcpListener) {
        let router = self.router.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let service = TowerToHyperService::new(router.clone());
                connections.spawn(async move {
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Goes down: no listener, every connection dropped.
    pub async fn stop(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Comes back on the same port.
    pub async fn restart(&self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.spawn(listener);
        Ok(())
    }

    pub fn is_running(&self) -> bool {
        self.task.lock().unwrap().is_some()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}
