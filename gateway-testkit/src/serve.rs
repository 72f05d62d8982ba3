//! Serving an axum app on a real socket, over TLS or plaintext, HTTP/1.1 and HTTP/2 on one port.
//!
//! gRPC (`GetOrchestrator`) and the orchestrator's HTTP routes share one port, as on
//! go-livepeer: HTTP/2 (ALPN `h2`, or prior knowledge in plaintext) carries gRPC, and both
//! versions carry the HTTP routes. The server counts open connections so tests can check that
//! clients do not leak them.
//!
//! A handler can answer [`dropped_connection`] to stand in for a go-livepeer handler panic:
//! Go's `net/http` recovers the panic and answers nothing (HTTP/1.1: the connection is closed;
//! HTTP/2: the stream is reset). Here the service fails for that request, and hyper does the
//! same.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Marks a response that must not be sent: the server drops the request instead (see the
/// module docs). Put it in the response's extensions, or use [`dropped_connection`].
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// A response the server never sends: HTTP/1.1 closes the connection, HTTP/2 resets the stream.
pub fn dropped_connection() -> axum::response::Response {
    let mut response = axum::response::Response::default();
    response.extensions_mut().insert(DropConnection);
    response
}

/// The service error that makes hyper drop a request marked with [`DropConnection`].
#[derive(Debug, thiserror::Error)]
#[error("handler asked to drop the connection")]
pub struct ConnectionDropped;

impl From<std::convert::Infallible> for ConnectionDropped {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

fn drop_marked(
    result: Result<axum::response::Response, std::convert::Infallible>,
) -> Result<axum::response::Response, ConnectionDropped> {
    match result {
        Ok(response) if response.extensions().get::<DropConnection>().is_some() => Err(ConnectionDropped),
        Ok(response) => Ok(response),
        Err(never) => match never {},
    }
}

/// A running server; dropping it does not stop it, call [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct ServerHandle {
    /// Bound address.
    pub addr: SocketAddr,
    open_connections: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::SeqCst)
    }

    /// A cheap handle reading [`ServerHandle::open_connections`], for code that does not own
    /// the server handle (an admin route served by the same server, say).
    pub fn connection_gauge(&self) -> ConnectionGauge {
        ConnectionGauge(self.open_connections.clone())
    }

    /// Stops accepting, closes open connections and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // After `stop_and_wait` the handle may have been polled to its end, and a finished
        // handle must not be polled again (tokio panics): a finished task has nothing to wait for.
        if !self.task.is_finished() {
            let _ = self.task.await;
        }
    }

    /// Stops without waiting (for `Drop` paths).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops as a killed process would, and returns once it has: the listener is closed (new
    /// connections are refused), every open connection is cut (requests in flight included),
    /// and no connection task is left. Fails if connections are still open after `within`.
    pub async fn stop_and_wait(&mut self, within: std::time::Duration) -> Result<(), StillRunning> {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + within;
        // Polled once to its end only: a finished handle must not be polled again.
        if !self.task.is_finished() && tokio::time::timeout_at(deadline, &mut self.task).await.is_err() {
            return Err(StillRunning { open_connections: self.open_connections(), accepting: true });
        }
        while self.open_connections() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(StillRunning { open_connections: self.open_connections(), accepting: false });
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// Whether the accept loop runs (the port takes connections).
    pub fn is_accepting(&self) -> bool {
        !self.task.is_finished()
    }

    /// Whether the server has stopped for good: its listener is closed and no connection is
    /// open.
    pub fn is_stopped(&self) -> bool {
        self.task.is_finished() && self.open_connections() == 0
    }
}

/// A server did not stop within the time it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server did not stop in time: {open_connections} connection(s) open, still accepting: {accepting}"
)]
pub struct StillRunning {
    /// Connections still open.
    pub open_connections: usize,
    /// Whether the accept loop was still running.
    pub accepting: bool,
}

/// Serves `app` on `listener`; with `tls` the port speaks TLS only.
pub fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> ServerHandle {
    let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let open_connections = Arc::new(AtomicUsize::new(0));
    let (stop, stop_rx) = watch::channel(false);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let counter = open_connections.clone();
    let task = tokio::spawn(async move {
        let mut stop_accept = stop_rx.clone();
        loop {
            let accepted = tokio::select! {
                _ = stop_accept.changed() => break,
                r = listener.accept() => r,
            };
            let Ok((stream, _peer)) = accepted else {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = app.clone();
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            let mut stop_conn = stop_rx.clone();
            // Counted before the task exists, so a stop never misses a connection just accepted.
            counter.fetch_add(1, Ordering::SeqCst);
            let guard = CountGuard(counter);
            tokio::spawn(async move {
                let _guard = guard;
                let app = ServiceExt::<http::Request<hyper::body::Incoming>>::map_result(app, drop_marked);
                let service = TowerToHyperService::new(app);
                let builder = Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(acceptor) => {
                        let handshake = tokio::select! {
                            r = acceptor.accept(stream) => r,
                            _ = stop_conn.changed() => return,
                        };
                        let Ok(tls_stream) = handshake else { return };
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop_conn.changed() => {}
                        }
                    }
                    None => {
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            _ = conn.as_mut() => {}
                            _ = stop_conn.changed() => {}
                        }
                    }
                }
            });
        }
    });
    ServerHandle { addr, open_connections, stop, task }
}

/// Reads a server's open-connection count; see [`ServerHandle::connection_gauge`].
#[derive(Debug, Clone)]
pub struct ConnectionGauge(Arc<AtomicUsize>);

impl ConnectionGauge {
    /// Connections open right now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct CountGuard(Arc<AtomicUsize>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
