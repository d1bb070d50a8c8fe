//! The HTTP server of every service, bounded against slow and idle clients.
//!
//! `axum::serve` gives hyper no timer, and without one hyper applies no header-read timeout:
//! a client that sends its request headers one byte at a time (slow loris), or opens
//! connections and sends nothing, keeps them forever. This server runs the same router on
//! hyper-util's connection builder with a timer, so that:
//!
//! * a connection must deliver each request's headers within `header_read_timeout`
//!   (measured from when the server starts waiting for them, idle keep-alive time included);
//!   otherwise hyper closes it;
//! * at most `max_connections` connections are open at once; beyond that new connections
//!   wait in the kernel's accept queue, so file descriptors and per-connection memory are
//!   bounded.
//!
//! It speaks HTTP/1.1 only. (HTTP/2 over cleartext needs hyper's protocol detection, which
//! waits for a client's first bytes without any deadline, and HTTP/2 has no header deadline
//! in hyper; terminate HTTP/2 at the load balancer.)
//!
//! Body deadlines are the handlers' business (the gateway's ingest reads bodies with its own
//! deadline). Shutdown: stop accepting, let in-flight requests finish for up to `grace`, then
//! close what is left.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Bounds on the connections of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest time a connection may take to send a request's headers (idle time included).
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(15),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` on `addr` with the default [`ConnectionLimits`] until `shutdown` is
/// cancelled, then lets in-flight requests finish for up to `grace`.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
) -> std::io::Result<()> {
    serve_with(addr, router, shutdown, grace, ConnectionLimits::default()).await
}

/// Like [`serve`], with these limits.
pub async fn serve_with(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener, router, shutdown, grace, limits).await
}

/// Like [`serve_with`] on an already bound listener (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(%local, max_connections = limits.max_connections, header_read_timeout = ?limits.header_read_timeout, "http listening");
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();

    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = open.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: axum::http::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request.map(Body::new)
                });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %remote, "connection ended with an error");
            }
            drop(slot);
        });
    }

    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => Ok(()),
        _ = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "http drain timed out; closing remaining connections");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(limits: ConnectionLimits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve_on(
            listener,
            router,
            shutdown.clone(),
            Duration::from_secs(1),
            limits,
        ));
        (addr, shutdown)
    }

    #[tokio::test]
    async fn a_request_is_served() {
        let (addr, shutdown) = start(ConnectionLimits::default()).await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"));
        shutdown.cancel();
    }

    /// Reads until the server closes; the outer timeout only keeps a broken build from
    /// hanging the suite.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> String {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
            .await
            .expect("the server never closed the connection")
            .unwrap_or_default();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn headers_that_never_finish_close_the_connection() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        };
        let (addr, shutdown) = start(limits).await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let answer = until_closed(&mut slow).await;
        assert!(!answer.contains("200 OK"), "{answer}");
        let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(!until_closed(&mut idle).await.contains("200 OK"));
        shutdown.cancel();
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_one() {
        let limits = ConnectionLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(600),
        };
        let (addr, shutdown) = start(limits).await;
        let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut first_byte = [0u8; 1];
        let waiting =
            tokio::time::timeout(Duration::from_millis(300), second.read(&mut first_byte)).await;
        assert!(waiting.is_err(), "served while the only slot was taken");
        drop(idle);
        let answer = until_closed(&mut second).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.cancel();
    }
}
