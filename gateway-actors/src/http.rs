//! The one HTTP client stack of the gateway: reqwest (hyper 1, rustls with ring).
//!
//! The segment writer reaches the network only through the small [`StreamingPost`] trait (a POST
//! whose body streams chunk by chunk), so the stack can be swapped where it matters. Two
//! byte-heavy paths use hyper directly on the same connector and trust policy: segment reads
//! ([`segment_get`], bounded read buffers) and relayed trickle requests ([`trickle_relay`], no
//! body conversion per chunk). Everything else uses reqwest.
//!
//! Why not awc, actix's own client: measured side by side with reqwest on a 2-core machine, awc
//! holds HTTP/1.1 body chunks until 8 KiB accumulate (1 KB chunks arrived 1.4 s late), times a streamed POST
//! out after 5 s by default, and moved 1 MB segments about 2.5x slower than reqwest. A trickle
//! segment must reach the network chunk by chunk and never time out while healthy, so every
//! call here goes through [`HttpClients`], which makes the choice in one place.
//!
//! Orchestrator clients (certificates checked by the [`crate::tls::OrchestratorTrust`] policy;
//! under pinning, an HTTP connection never accepts a certificate a `GetOrchestrator` answer has
//! not confirmed) are made per orchestrator origin and cached; one client serves signers and
//! discovery (system roots). A policy refusal stays typed inside the reqwest error: find it with
//! [`crate::tls::trust_error`]. None has an overall request timeout: long-lived trickle requests
//! are bounded by the stall timeout of the code that uses them; JSON calls set their own
//! per-request timeouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use gateway_core::error::SegmentFailure;

use crate::tls::{orchestrator_client_config, provider, OrchestratorTrust};
use segment_get::SegmentGetClient;
use trickle_relay::TrickleRelayClient;

mod connector;
pub mod segment_get;
pub mod trickle_relay;

/// Connect timeout for every request (go-livepeer: 3 s for gRPC).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
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
    segment_reader: Arc<std::sync::OnceLock<SegmentGetClient>>,
    trickle_relay: Arc<std::sync::OnceLock<TrickleRelayClient>>,
}

/// A client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientBuildError(pub(crate) String);

impl HttpClients {
    /// Clients with the given orchestrator trust policy; signers and discovery are checked
    /// against the system roots.
    pub fn new(trust: OrchestratorTrust) -> Result<HttpClients, ClientBuildError> {
        Self::with_signer_roots(trust, &[])
    }

    /// Like [`HttpClients::new`], also trusting these PEM certificates for signers and discovery
    /// (a private CA in front of a hosted signer).
    pub(crate) fn with_signer_roots(
        trust: OrchestratorTrust,
        extra_roots_pem: &[Vec<u8>],
    ) -> Result<HttpClients, ClientBuildError> {
        let _ = provider();
        let mut builder = reqwest::Client::builder();
        for pem in extra_roots_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| ClientBuildError(format!("invalid CA certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let signer = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(HttpClients {
            signer,
            trust,
            orchestrators: Arc::default(),
            segment_reader: Arc::default(),
            trickle_relay: Arc::default(),
        })
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

    /// The client trickle subscribers read segments with: one for every orchestrator, each
    /// connection's read buffer bounded (see [`SegmentGetClient`]).
    pub fn segment_reader(&self) -> SegmentGetClient {
        self.segment_reader.get_or_init(|| SegmentGetClient::bounded(&self.trust)).clone()
    }

    /// The client a program relays trickle requests to orchestrators with, bodies streamed
    /// both ways (see [`TrickleRelayClient`]).
    pub fn trickle_relay(&self) -> TrickleRelayClient {
        self.trickle_relay.get_or_init(|| TrickleRelayClient::new(&self.trust)).clone()
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
    let detail = std::error::Error::source(e).map(innermost_cause).unwrap_or_default();
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Why a transport call failed, from the error's kinds (reqwest's flags, then the
/// `io::ErrorKind` or hyper flags of its causes), never from its text.
pub(crate) fn classify(e: &reqwest::Error) -> SegmentFailure {
    if e.is_connect() {
        return SegmentFailure::Connect;
    }
    if e.is_timeout() {
        return SegmentFailure::Stalled;
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused
                | K::HostUnreachable
                | K::NetworkUnreachable
                | K::AddrNotAvailable
                | K::NotConnected => return SegmentFailure::Connect,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                    return SegmentFailure::Reset
                }
                K::TimedOut => return SegmentFailure::Stalled,
                _ => {}
            }
        }
        if let Some(h) = cause.downcast_ref::<hyper::Error>() {
            // The server went away mid-exchange (closed, or answered nothing before closing).
            if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                return SegmentFailure::Reset;
            }
        }
        source = cause.source();
    }
    SegmentFailure::Other
}

/// The innermost cause of an error: the outer layers of hyper, reqwest and tonic say only
/// "client error" or "transport error".
pub(crate) fn innermost_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// A streamed request body: chunks handed to the network as they come.
pub type BodyStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// The answer to a streamed POST, read in full (trickle POST answers are small).
#[derive(Debug, Clone, Default)]
pub struct PostAnswer {
    /// HTTP status.
    pub status: u16,
    /// Response headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Start of the body (at most 4 KiB).
    pub body: Bytes,
}

impl PostAnswer {
    /// A header value by name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A streamed POST that failed in transport (no HTTP answer): why, typed, and a URL-free
/// description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFailure {
    /// The class of the failure (connect, reset, ...).
    pub kind: SegmentFailure,
    /// What happened, without the URL's query.
    pub reason: String,
}

/// A streamed POST's outcome, boxed so the trait stays object safe.
pub type PostFuture<E> = Pin<Box<dyn Future<Output = Result<PostAnswer, E>> + Send + 'static>>;

/// The HTTP operation whose behaviour decides trickle latency and throughput: a POST whose body
/// streams chunk by chunk with no overall timeout. The segment writer depends only on this
/// trait, so another client stack plugs in here (the benches compare awc through it); the
/// gateway's own is reqwest, for the reasons in the module docs.
pub trait StreamingPost: Send + Sync + 'static {
    /// POSTs `body` to `url` with `headers`; `Err` is a transport failure (described, URL-free).
    fn post_stream(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: BodyStream,
    ) -> Pin<Box<dyn Future<Output = Result<PostAnswer, String>> + Send + 'static>>;

    /// Like [`post_stream`](Self::post_stream), with the transport failure classified; the
    /// publisher calls this one. A stack that cannot tell why it failed keeps this default,
    /// which says [`SegmentFailure::Other`].
    fn post_stream_classified(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: BodyStream,
    ) -> PostFuture<PostFailure> {
        let post = self.post_stream(url, headers, body);
        Box::pin(
            async move { post.await.map_err(|reason| PostFailure { kind: SegmentFailure::Other, reason }) },
        )
    }
}

impl StreamingPost for reqwest::Client {
    fn post_stream(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: BodyStream,
    ) -> Pin<Box<dyn Future<Output = Result<PostAnswer, String>> + Send + 'static>> {
        let post = self.post_stream_classified(url, headers, body);
        Box::pin(async move { post.await.map_err(|f| f.reason) })
    }

    fn post_stream_classified(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: BodyStream,
    ) -> PostFuture<PostFailure> {
        let mut req = self.post(url).body(reqwest::Body::wrap_stream(body));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Box::pin(async move {
            let resp =
                req.send().await.map_err(|e| PostFailure { kind: classify(&e), reason: describe(&e) })?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
                .collect();
            let body = read_body_capped(resp, 4096).await.unwrap_or_default();
            Ok(PostAnswer { status, headers, body })
        })
    }
}
