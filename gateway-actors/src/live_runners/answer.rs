//! A runner app's answer, read as it streams: raw chunks, server-sent events, or whole. A
//! metered call keeps paying while its answer is open and stops when the answer ends, is
//! closed or dropped (the Python SDK ties a stream's funding to the stream the same way).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::rejection::{JobError, RejectionReason};
use gateway_core::sse::{SseDecoder, SseEvent};

use crate::jobs::{job_error, JobPayments};
use crate::payments::{PaymentStats, PaymentStop};

/// Largest answer [`RunnerAnswer::collect`] reads, and largest single event
/// [`RunnerAnswer::next_event`] holds.
pub const MAX_APP_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Time allowed for an app's answer to start (its status and headers).
pub const APP_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Time allowed between two pieces of a streaming answer before it counts as stalled.
pub const APP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a runner's app answered through the orchestrator, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAnswer {
    /// Status (the app's, or the orchestrator's 404 / 502).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The body (at most [`MAX_APP_ANSWER_BYTES`]).
    pub body: Bytes,
}

/// A runner app's answer, its body still streaming.
pub struct RunnerAnswer {
    /// Status (the app's, or the orchestrator's: 404 unknown session, 502 runner unreachable).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The session the call ran in, when the orchestrator named it (a paid call's manifest id).
    pub session_id: Option<String>,
    endpoint: String,
    response: Option<reqwest::Response>,
    events: Option<(SseDecoder, VecDeque<SseEvent>)>,
    payments: JobPayments,
}

impl std::fmt::Debug for RunnerAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerAnswer")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl RunnerAnswer {
    /// Wraps `response` from `endpoint`, paid for by `payments` while it is read.
    pub(super) fn new(
        response: reqwest::Response,
        endpoint: String,
        session_id: Option<String>,
        payments: JobPayments,
    ) -> RunnerAnswer {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        RunnerAnswer {
            status: response.status().as_u16(),
            content_type,
            session_id,
            endpoint,
            response: Some(response),
            events: None,
            payments,
        }
    }

    /// Whether the app answers with server-sent events (`text/event-stream`).
    pub fn is_event_stream(&self) -> bool {
        self.content_type.as_deref().is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
    }

    /// The next piece of the body as it arrives; `None` once it has ended (payments stop
    /// then). Errors: the connection failed, or nothing came for [`APP_IDLE_TIMEOUT`].
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, JobError> {
        let Some(response) = self.response.as_mut() else { return Ok(None) };
        let next = tokio::time::timeout(APP_IDLE_TIMEOUT, response.chunk()).await;
        let failed = |message: String| {
            job_error(RejectionReason::Transport { endpoint: self.endpoint.clone(), message })
        };
        match next {
            Ok(Ok(Some(chunk))) => Ok(Some(chunk)),
            Ok(Ok(None)) => {
                self.response = None;
                self.payments.stop().await;
                Ok(None)
            }
            Ok(Err(e)) => {
                let err = failed(format!("the answer broke off: {}", crate::http::describe(&e)));
                self.end().await;
                Err(err)
            }
            Err(_) => {
                let err = failed(format!("the answer stalled: nothing for {APP_IDLE_TIMEOUT:?}"));
                self.end().await;
                Err(err)
            }
        }
    }

    /// The next server-sent event; `None` once the stream has ended (an unfinished last event
    /// is dropped). Errors as [`RunnerAnswer::chunk`], and for an event over
    /// [`MAX_APP_ANSWER_BYTES`].
    pub async fn next_event(&mut self) -> Result<Option<SseEvent>, JobError> {
        loop {
            let (_, ready) =
                self.events.get_or_insert_with(|| (SseDecoder::new(MAX_APP_ANSWER_BYTES), VecDeque::new()));
            if let Some(event) = ready.pop_front() {
                return Ok(Some(event));
            }
            let Some(chunk) = self.chunk().await? else { return Ok(None) };
            let Some((decoder, ready)) = self.events.as_mut() else { continue };
            match decoder.push(&chunk) {
                Ok(events) => ready.extend(events),
                Err(e) => {
                    let err =
                        JobError::InvalidResponse { endpoint: self.endpoint.clone(), reason: e.to_string() };
                    self.end().await;
                    return Err(err);
                }
            }
        }
    }

    /// The whole body (at most [`MAX_APP_ANSWER_BYTES`]).
    pub async fn collect(mut self) -> Result<AppAnswer, JobError> {
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            if body.len() + chunk.len() > MAX_APP_ANSWER_BYTES {
                self.end().await;
                return Err(JobError::InvalidResponse {
                    endpoint: self.endpoint.clone(),
                    reason: format!("the answer exceeds {MAX_APP_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(AppAnswer { status: self.status, content_type: self.content_type.clone(), body: body.freeze() })
    }

    /// Payments made for this call so far.
    pub fn payment_stats(&self) -> PaymentStats {
        self.payments.stats()
    }

    /// Resolves when this call's payments stop, with why (at once for a free or fixed-price
    /// call).
    pub async fn payments_stopped(&self) -> PaymentStop {
        self.payments.stopped().await
    }

    /// Stops reading and paying (dropping the answer does the same).
    pub async fn close(mut self) {
        self.end().await;
    }

    async fn end(&mut self) {
        self.response = None;
        self.payments.stop().await;
    }
}

impl Drop for RunnerAnswer {
    fn drop(&mut self) {
        self.payments.stop_soon();
    }
}
