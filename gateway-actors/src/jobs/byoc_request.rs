//! Single-shot BYOC requests: `POST {orchestrator}/process/request/{path}`, paid up front, the
//! answer streamed back as it arrives.
//!
//! As go's BYOC gateway does it (`byoc/job_gateway.go`, `submitJob` and `sendJobToOrch`): the
//! orchestrator has the job's `timeout_seconds` plus 5 s to answer; a transport failure, a
//! timeout or a 5xx moves on to the next orchestrator (the payment sent to the failed one is
//! spent there, as in go); any other answer, 4xx included, is the caller's. The request's
//! `Content-Type` goes through, and the answer is not buffered: a caller reads it in chunks
//! ([`ByocResponse::chunk`]), writes it to a file ([`ByocResponse::write_to`]), or collects a
//! bounded amount ([`ByocResponse::bytes`]). Server-sent-event answers end at `data: [DONE]`,
//! and are read until the job's timeout plus 10 s at most, as go's gateway does.

use std::time::Duration;

use bytes::Bytes;
use gateway_core::jobs::{self, JobRequest};
use gateway_core::rejection::JobError;
use gateway_core::rejection::RejectionReason;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::byoc::{PreparedByoc, DEFAULT_TIMEOUT_SECONDS};
use super::failover::Failover;
use super::Attempt;
use crate::gateway::{Gateway, GatewayError};
use crate::http::describe;
use crate::payments::PaymentKind;

/// Most bytes [`Gateway::byoc_request`] collects; larger answers need
/// [`Gateway::byoc_request_stream`].
pub const MAX_COLLECTED_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A single-shot BYOC request.
#[derive(Debug, Clone)]
pub struct ByocRequest {
    /// Registered capability name, e.g. `text-reversal`.
    pub capability: String,
    /// Path below `/process/request/` the worker serves.
    pub path: String,
    /// Request body.
    pub body: Bytes,
    /// `Content-Type` of the body, passed to the worker.
    pub content_type: Option<String>,
    /// Seconds the worker may take (the `Livepeer` header's `timeout_seconds`).
    pub timeout_seconds: u32,
    /// Highest acceptable price, wei per second.
    pub max_price_wei_per_unit: Option<f64>,
}

impl ByocRequest {
    /// A request to `capability` at `path` with `body` and the default timeout.
    pub fn new(
        capability: impl Into<String>,
        path: impl Into<String>,
        body: impl Into<Bytes>,
    ) -> ByocRequest {
        ByocRequest {
            capability: capability.into(),
            path: path.into(),
            body: body.into(),
            content_type: None,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            max_price_wei_per_unit: None,
        }
    }
}

/// The answer to a [`ByocRequest`], its body still arriving.
#[derive(Debug)]
pub struct ByocResponse {
    /// HTTP status (go's orchestrator turns any worker success into 200).
    pub status: u16,
    /// `Content-Type` of the answer.
    pub content_type: Option<String>,
    /// The orchestrator that answered.
    pub orchestrator: String,
    /// The sender's balance there after the request (`Livepeer-Balance`, or
    /// `Livepeer-Payment-Balance` on event streams), as sent.
    pub balance: Option<String>,
    response: reqwest::Response,
    deadline: tokio::time::Instant,
    /// Event streams end at `data: [DONE]`, as go's gateway reads them (go's orchestrator keeps
    /// the answer open with blank lines until the job's timeout).
    done: bool,
    /// The last bytes seen, to find `[DONE]` across chunk boundaries.
    tail: Vec<u8>,
}

/// The event that ends a server-sent-event answer.
const EVENT_STREAM_DONE: &[u8] = b"[DONE]";

impl ByocResponse {
    /// Whether the answer is a server-sent-event stream.
    pub fn is_event_stream(&self) -> bool {
        self.content_type.as_deref().is_some_and(|t| t.contains("text/event-stream"))
    }

    /// The next piece of the body as it arrives; `None` at its end (for an event stream, after
    /// the piece that holds `[DONE]`).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, JobError> {
        if self.done {
            return Ok(None);
        }
        match tokio::time::timeout_at(self.deadline, self.response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                if self.is_event_stream() {
                    self.tail.extend_from_slice(&chunk);
                    self.done = self.tail.windows(EVENT_STREAM_DONE.len()).any(|w| w == EVENT_STREAM_DONE);
                    let keep = self.tail.len().saturating_sub(EVENT_STREAM_DONE.len() - 1);
                    self.tail.drain(..keep);
                }
                Ok(Some(chunk))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => Err(body_error(&describe(&e))),
            Err(_) => Err(body_error("the answer did not end within the job's timeout")),
        }
    }

    /// The whole body, refusing more than `max` bytes.
    pub async fn bytes(mut self, max: usize) -> Result<Bytes, JobError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if out.len() + chunk.len() > max {
                return Err(body_error(&format!("the answer is larger than {max} bytes; stream it instead")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Copies the body into `out` as it arrives; the number of bytes written.
    pub async fn write_to<W: AsyncWrite + Unpin>(mut self, out: &mut W) -> Result<u64, JobError> {
        let mut written = 0u64;
        while let Some(chunk) = self.chunk().await? {
            out.write_all(&chunk).await.map_err(|e| body_error(&format!("cannot write the answer: {e}")))?;
            written += chunk.len() as u64;
        }
        out.flush().await.map_err(|e| body_error(&format!("cannot write the answer: {e}")))?;
        Ok(written)
    }
}

fn body_error(reason: &str) -> JobError {
    JobError::InvalidResponse { endpoint: jobs::PROCESS_REQUEST_PREFIX.to_owned(), reason: reason.to_owned() }
}

impl Gateway {
    /// A single-shot BYOC request: `POST /process/request/{path}` with `body`, paid up front.
    /// Returns the status and the whole body (at most [`MAX_COLLECTED_RESPONSE_BYTES`]);
    /// [`GatewayError::Stopped`] if the gateway shuts down meanwhile.
    pub async fn byoc_request(
        &self,
        capability: &str,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Bytes), GatewayError> {
        let response = self.byoc_request_stream(ByocRequest::new(capability, path, body)).await?;
        let status = response.status;
        let body =
            self.until_shutdown(async { Ok(response.bytes(MAX_COLLECTED_RESPONSE_BYTES).await?) }).await?;
        Ok((status, body))
    }

    /// Sends a single-shot BYOC request (see the module docs) and answers as soon as the
    /// orchestrator's status and headers arrive; the body is read from the [`ByocResponse`].
    pub async fn byoc_request_stream(&self, request: ByocRequest) -> Result<ByocResponse, GatewayError> {
        self.until_shutdown(self.byoc_request_until_shutdown(request)).await
    }

    async fn byoc_request_until_shutdown(&self, request: ByocRequest) -> Result<ByocResponse, GatewayError> {
        let id = format!("req-{}", hex::encode(rand::random::<[u8; 6]>()));
        let job = JobRequest::without_parameters(
            id.clone(),
            &serde_json::json!({ "request_id": id }),
            request.capability.clone(),
            request.timeout_seconds,
        );
        let PreparedByoc { queries, job, identity, selection } =
            self.prepare_byoc(job, request.max_price_wei_per_unit, Vec::new()).await?;
        let job = job.to_header();
        let path = request.path.trim_start_matches('/');
        let endpoint = format!("{}{path}", jobs::PROCESS_REQUEST_PREFIX);
        let answer_within =
            Duration::from_secs(u64::from(request.timeout_seconds) + jobs::BYOC_START_GRACE_SECONDS);
        let failover = Failover {
            selection: &selection,
            queries: &queries,
            identity,
            kind: PaymentKind::Byoc { preload_seconds: gateway_core::signer::BYOC_MIN_PRELOAD_SECONDS },
            manifest_id: Some(id),
        };
        let (request, job, endpoint) = (&request, &job, &endpoint);
        let response = self
            .first_success(failover, |_, attempt, creds| async move {
                let Attempt { origin, http, .. } = attempt;
                let mut req = http
                    .post(format!("{origin}{endpoint}"))
                    .header(jobs::HEADER_JOB, job)
                    .body(request.body.clone());
                req = creds.attach(req);
                if let Some(t) = &request.content_type {
                    req = req.header(reqwest::header::CONTENT_TYPE, t);
                }
                let response = match tokio::time::timeout(answer_within, req.send()).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => {
                        return Err(RejectionReason::Transport {
                            endpoint: jobs::PROCESS_REQUEST_PREFIX.to_owned(),
                            message: describe(&e),
                        })
                    }
                    Err(_) => {
                        return Err(RejectionReason::NoAnswer {
                            endpoint: jobs::PROCESS_REQUEST_PREFIX.to_owned(),
                            within: answer_within,
                            abandoned_start_stopped: false,
                        })
                    }
                };
                let status = response.status().as_u16();
                // A 5xx moves on to the next orchestrator; any other answer is the caller's.
                if status >= 500 {
                    let body = crate::http::read_body_capped(response, 4096).await.unwrap_or_default();
                    return Err(RejectionReason::Http {
                        status,
                        endpoint: endpoint.clone(),
                        excerpt: gateway_core::error::body_excerpt(&body, 300),
                        hint: None,
                    });
                }
                Ok(ByocResponse::new(response, origin, request.timeout_seconds))
            })
            .await?;
        Ok(response)
    }
}

impl ByocResponse {
    /// The answer `response` from `orchestrator`, read until the job's `timeout_seconds` plus
    /// go's grace for its kind of answer.
    fn new(response: reqwest::Response, orchestrator: String, timeout_seconds: u32) -> ByocResponse {
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let content_type = header(reqwest::header::CONTENT_TYPE.as_str());
        let balance = header(jobs::HEADER_BALANCE).or_else(|| header(jobs::HEADER_PAYMENT_BALANCE));
        let stream = content_type.as_deref().is_some_and(|t| t.contains("text/event-stream"));
        let grace = if stream { jobs::BYOC_STREAM_GRACE_SECONDS } else { jobs::BYOC_START_GRACE_SECONDS };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(timeout_seconds) + grace);
        ByocResponse {
            status: response.status().as_u16(),
            content_type,
            orchestrator,
            balance,
            response,
            deadline,
            done: false,
            tail: Vec::new(),
        }
    }
}
