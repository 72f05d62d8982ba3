//! The HTTP client trickle subscribers read segments with: HTTP/1.1 GETs whose read buffer is
//! bounded.
//!
//! Why not reqwest here: hyper's read buffer adapts to the traffic and, behind a reader that
//! lags (a consumer slower than the channel), grows to hundreds of KiB per connection, and a
//! subscriber holds two connections (the segment being read and the next one preconnected).
//! reqwest does not expose hyper's `max_buf_size`, so [`SegmentGetClient::bounded`] builds the
//! hyper client itself, capping each connection's buffer at [`SEGMENT_READ_BUFFER_MAX`]; TLS is
//! checked by the same [`OrchestratorTrust`] policy as every other orchestrator connection.
//! A reqwest client still converts into a [`SegmentGetClient`] (`From`), for callers that
//! already hold one and for side-by-side measurements.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::TrickleConnector;
use super::{describe, innermost_cause};
use crate::tls::OrchestratorTrust;

/// Most bytes one connection of a [`SegmentGetClient::bounded`] buffers from the network ahead
/// of the reader (hyper's default lets it grow to about 400 KiB).
pub const SEGMENT_READ_BUFFER_MAX: usize = 64 * 1024;

/// Idle connections kept per host: a subscriber needs two (reading one segment, the next
/// preconnected); a few subscribers of one orchestrator share the pool.
const IDLE_PER_HOST: usize = 8;

/// Issues a subscriber's segment GETs. Cheap to clone.
#[derive(Clone)]
pub struct SegmentGetClient(Stack);

#[derive(Clone)]
enum Stack {
    Bounded(Arc<Client<TrickleConnector, Empty<Bytes>>>),
    Reqwest(reqwest::Client),
}

impl std::fmt::Debug for SegmentGetClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.0 {
            Stack::Bounded(_) => "bounded",
            Stack::Reqwest(_) => "reqwest",
        };
        f.debug_tuple("SegmentGetClient").field(&kind).finish()
    }
}

impl From<reqwest::Client> for SegmentGetClient {
    fn from(client: reqwest::Client) -> SegmentGetClient {
        SegmentGetClient(Stack::Reqwest(client))
    }
}

impl From<&reqwest::Client> for SegmentGetClient {
    fn from(client: &reqwest::Client) -> SegmentGetClient {
        SegmentGetClient(Stack::Reqwest(client.clone()))
    }
}

impl SegmentGetClient {
    /// A client whose connections buffer at most [`SEGMENT_READ_BUFFER_MAX`] bytes each,
    /// for `http` and `https` URLs; orchestrator certificates are checked by `trust`.
    pub fn bounded(trust: &OrchestratorTrust) -> SegmentGetClient {
        let connector = TrickleConnector::new(trust);
        let client = Client::builder(TokioExecutor::new())
            .http1_max_buf_size(SEGMENT_READ_BUFFER_MAX)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            // Without a timer idle connections are only dropped when next checked out.
            .pool_timer(TokioTimer::new())
            .build(connector);
        SegmentGetClient(Stack::Bounded(Arc::new(client)))
    }

    /// Sends `GET url` and waits for the response headers.
    pub(crate) async fn get(&self, url: &str) -> Result<SegmentResponse, String> {
        match &self.0 {
            Stack::Reqwest(client) => {
                client.get(url).send().await.map(SegmentResponse::Reqwest).map_err(|e| describe(&e))
            }
            Stack::Bounded(client) => {
                let uri: Uri = url.parse().map_err(|_| "invalid segment URL".to_owned())?;
                client.get(uri).await.map(SegmentResponse::Bounded).map_err(|e| innermost_cause(&e))
            }
        }
    }
}

/// A GET's answer: status and headers at once, the body chunk by chunk.
pub(crate) enum SegmentResponse {
    Bounded(http::Response<Incoming>),
    Reqwest(reqwest::Response),
}

impl SegmentResponse {
    pub(crate) fn status(&self) -> u16 {
        match self {
            SegmentResponse::Bounded(r) => r.status().as_u16(),
            SegmentResponse::Reqwest(r) => r.status().as_u16(),
        }
    }

    /// A header's value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let headers = match self {
            SegmentResponse::Bounded(r) => r.headers(),
            SegmentResponse::Reqwest(r) => r.headers(),
        };
        headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next body chunk, `Ok(None)` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        match self {
            SegmentResponse::Reqwest(r) => r.chunk().await.map_err(|e| describe(&e)),
            SegmentResponse::Bounded(r) => loop {
                match r.body_mut().frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(innermost_cause(&e)),
                    // Trailers carry nothing a trickle reader needs.
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => return Ok(Some(data)),
                        Err(_) => continue,
                    },
                }
            },
        }
    }

    /// The whole body, refusing more than `max` bytes.
    pub(crate) async fn read_capped(mut self, max: usize) -> Result<Bytes, String> {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if buf.len() + chunk.len() > max {
                return Err(format!("response body larger than {max} bytes"));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}
