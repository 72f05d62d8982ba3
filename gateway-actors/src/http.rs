//! The one HTTP client stack of the gateway: reqwest (hyper 1, rustls with ring).
//!
//! Why not awc, which the design card names: measured on this machine (see
//! `shared/reference/rust-ecosystem.md` §1.5 and the `http_clients` bench), awc holds HTTP/1.1
//! body chunks until 8 KiB accumulate (1 KB chunks arrived 1.4 s late), times a streamed POST
//! out after 5 s by default, and moved 1 MB segments about 2.5x slower than reqwest. A trickle
//! segment must reach the network chunk by chunk and never time out while healthy, so every
//! call here goes through [`HttpClients`], which makes the choice in one place.
//!
//! Orchestrator clients (self-signed certificates, pinned per `host:port` by
//! [`crate::tls::OrchestratorTrust`]) are made per orchestrator origin and cached; one client
//! serves signers and discovery (system roots). None has an overall request timeout: long-lived trickle requests are bounded by the stall timeout
//! of the code that uses them; JSON calls set their own per-request timeouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::tls::{orchestrator_client_config, provider, OrchestratorTrust};

/// Connect timeout for every request (go-livepeer: 3 s for gRPC).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a JSON call to a signer, discovery endpoint or orchestrator.
pub const JSON_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest JSON or protobuf body accepted from the network.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The HTTP clients of one gateway. Cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct HttpClients {
    /// For signers and discovery.
    pub signer: reqwest::Client,
    /// How orchestrator certificates are checked (shared with gRPC).
    pub trust: OrchestratorTrust,
    orchestrators: Arc<Mutex<HashMap<String, reqwest::Client>>>,
}

/// A client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(pub(crate) String);

impl HttpClients {
    /// Clients with the given orchestrator trust policy.
    pub fn new(trust: OrchestratorTrust) -> Result<HttpClients, ClientBuildError> {
        let _ = provider();
        let signer = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(HttpClients { signer, trust, orchestrators: Arc::default() })
    }

    /// The client for the orchestrator (or trickle URL) at `url`: one per origin, so its
    /// certificate pin and connection pool belong to that orchestrator.
    pub fn orchestrator(&self, url: &str) -> Result<reqwest::Client, ClientBuildError> {
        let parsed =
            url::Url::parse(url).map_err(|e| ClientBuildError(format!("invalid orchestrator URL: {e}")))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let origin = format!("{}://{}:{port}", parsed.scheme(), parsed.host_str().unwrap_or_default());
        let mut cache = self.orchestrators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&origin) {
            return Ok(c.clone());
        }
        let tls = orchestrator_client_config(&self.trust, &[b"h2", b"http/1.1"], port);
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        cache.insert(origin, client.clone());
        Ok(client)
    }
}

/// Reads a whole response body, refusing more than `max` bytes.
pub async fn read_body_capped(mut resp: reqwest::Response, max: usize) -> Result<Bytes, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("response body larger than {max} bytes"));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if buf.len() + chunk.len() > max {
            return Err(format!("response body larger than {max} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A header value as text.
pub fn header_str<'a>(resp: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// A short description of a transport error without the URL's query (which may hold a key).
pub fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() {
        "body error"
    } else if e.is_request() {
        "request failed"
    } else {
        "transport error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}
