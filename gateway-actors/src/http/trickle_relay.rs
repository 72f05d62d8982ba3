//! The HTTP client a program relays trickle requests to orchestrators with (the `serve` node
//! passing its clients' channel requests on): any method, the request body streamed out and
//! the answer's body streamed back frame by frame, both as hyper bodies with no conversion.
//!
//! Why hyper directly and not reqwest: a relay moves every byte of every stream twice, and
//! reqwest adapts each request body into a stream and each answer into its own body type, per
//! request and per chunk (scenario 7 in `BENCHMARKS.md` measures the node both ways). The
//! connections are dialled by the connector subscribers use (`http/connector.rs`), so TLS is
//! checked by the same [`OrchestratorTrust`] policy, and each connection's read buffer is
//! bounded as a subscriber's is.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::{BoxError, TrickleConnector};
use super::innermost_cause;
use super::segment_get::SEGMENT_READ_BUFFER_MAX;
use crate::tls::OrchestratorTrust;

/// The body of a relayed request: any HTTP body, boxed once per request ([`relay_body`]).
pub type RelayBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// `body` as a [`RelayBody`] (a server's request body, passed on as it arrives).
pub fn relay_body<B>(body: B) -> RelayBody
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// How long an idle relay connection is kept for the next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends relayed trickle requests. Cheap to clone.
#[derive(Clone)]
pub struct TrickleRelayClient(Arc<Client<TrickleConnector, RelayBody>>);

impl std::fmt::Debug for TrickleRelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TrickleRelayClient")
    }
}

/// A relayed request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RelayError {
    /// What happened (the innermost cause; never the URL).
    pub reason: String,
}

impl TrickleRelayClient {
    /// A client for `http` and `https` trickle URLs, orchestrator certificates checked by
    /// `trust`.
    pub fn new(trust: &OrchestratorTrust) -> TrickleRelayClient {
        let client = Client::builder(TokioExecutor::new())
            .http1_max_buf_size(SEGMENT_READ_BUFFER_MAX)
            // Every stream keeps a request or two in flight on the orchestrator: connections
            // come back to the pool at every segment's end and are taken again at once, so the
            // pool is not capped below what the streams use (as reqwest's is not).
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(TrickleConnector::new(trust));
        TrickleRelayClient(Arc::new(client))
    }

    /// Sends `request` (its URI absolute) and waits for the answer's head; the answer's body
    /// streams as the orchestrator sends it.
    pub async fn send(
        &self,
        request: http::Request<RelayBody>,
    ) -> Result<http::Response<Incoming>, RelayError> {
        self.0.request(request).await.map_err(|e| RelayError { reason: innermost_cause(&e) })
    }
}
