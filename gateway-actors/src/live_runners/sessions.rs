//! Reserving a session on a persistent live runner and paying for it while it runs.
//!
//! The flow is go-livepeer master's (`server/ai_http.go` `ReserveLiveRunnerSession`) as the
//! Python SDK drives it (`reserve_session`): the reservation pays the orchestrator's 402
//! challenge (see `paid.rs`); a metered session then gets a payment every
//! [`SESSION_PAYMENT_INTERVAL`] at the challenge's `payment_url` until it is stopped
//! (`POST {control_url}/stop`) or the orchestrator releases it (the payment URL answers 404);
//! a fixed-price session was paid once. An offchain or free runner answers the reservation at
//! once. The session's app is called with [`RunnerSession::call_app`].

use std::time::Duration;

use gateway_core::rejection::{JobError, RejectionReason};
use gateway_core::runners::{SessionReserved, SESSION_PAYMENT_INTERVAL};

use super::answer::{RunnerAnswer, APP_CALL_TIMEOUT};
use super::calls::RunnerCall;
use super::discovery::RunnerCandidate;
use super::paid::PaidAnswer;
use crate::gateway::{Gateway, GatewayError};
use crate::http::{read_body_capped, MAX_RESPONSE_BYTES};
use crate::jobs::{job_error, send_within, Answer, JobPayments, START_TIMEOUT};
use crate::payments::{PaymentStats, PaymentStop};

/// A reserved session on a live runner; paid for (when priced) until [`RunnerSession::stop`].
pub struct RunnerSession {
    /// The session's id (the manifest id it is paid under, when priced).
    pub session_id: String,
    /// Where the runner's app is called for this session.
    pub app_url: String,
    /// The session's control URL.
    pub control_url: String,
    http: reqwest::Client,
    payments: JobPayments,
}

impl std::fmt::Debug for RunnerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerSession").field("session_id", &self.session_id).finish()
    }
}

impl Gateway {
    /// Reserves a session on `candidate` (a persistent runner from
    /// [`Gateway::discover_runners`]), paying when the orchestrator asks (see the module docs).
    pub async fn reserve_runner_session(
        &self,
        candidate: &RunnerCandidate,
    ) -> Result<RunnerSession, GatewayError> {
        self.until_shutdown(self.reserve_runner_session_until_shutdown(candidate)).await
    }

    async fn reserve_runner_session_until_shutdown(
        &self,
        candidate: &RunnerCandidate,
    ) -> Result<RunnerSession, GatewayError> {
        let url = candidate.runner.url.clone();
        let (http, actor_http) = self.orchestrator_clients(&candidate.orchestrator)?;
        let build = || http.post(&url).header("accept", "*/*").json(&serde_json::json!({}));
        let PaidAnswer { response, paid, identity } =
            self.send_paying(candidate, &url, &build, START_TIMEOUT).await?;
        let status = response.status().as_u16();
        let body = read_body_capped(response, MAX_RESPONSE_BYTES)
            .await
            .map_err(|reason| JobError::InvalidResponse { endpoint: url.clone(), reason })?;
        if status != 200 {
            return Err(refused(&url, &Answer { status, headers: Default::default(), body }).into());
        }
        let reserved: SessionReserved = serde_json::from_slice(&body).map_err(|e| {
            JobError::InvalidResponse { endpoint: url.clone(), reason: format!("not a session: {e}") }
        })?;
        let payments =
            self.pay_while_running(candidate, paid, identity, actor_http, SESSION_PAYMENT_INTERVAL)?;
        Ok(RunnerSession {
            session_id: reserved.session_id,
            app_url: reserved.app_url,
            control_url: reserved.control_url,
            http,
            payments,
        })
    }
}

fn refused(url: &str, answer: &Answer) -> JobError {
    job_error(RejectionReason::Http {
        status: answer.status,
        endpoint: url.to_owned(),
        excerpt: gateway_core::error::body_excerpt(&answer.body, 300),
        hint: None,
    })
}

impl RunnerSession {
    /// Sends `call` to the runner's app below the session's app URL; the orchestrator proxies
    /// it with the session's headers. The answer streams (see [`RunnerAnswer`]); the session's
    /// payments run on their own until [`RunnerSession::stop`].
    pub async fn call_app(&self, call: RunnerCall) -> Result<RunnerAnswer, JobError> {
        let url = call.url_below(&self.app_url);
        let response = call.send(&self.http, &url, APP_CALL_TIMEOUT).await?;
        Ok(RunnerAnswer::new(
            response,
            url,
            Some(self.session_id.clone()),
            JobPayments::none(PaymentStop::JobEnded),
        ))
    }

    /// Payments so far.
    pub fn payment_stats(&self) -> PaymentStats {
        self.payments.stats()
    }

    /// Resolves when payments stop for good, with why (at once for a free session). A 404 from
    /// the payment URL means the orchestrator released the session.
    pub async fn payments_stopped(&self) -> PaymentStop {
        self.payments.stopped().await
    }

    /// Stops paying and releases the session (`POST {control_url}/stop`).
    pub async fn stop(self) -> Result<(), JobError> {
        self.payments.stop().await;
        let url = format!("{}/stop", self.control_url.trim_end_matches('/'));
        let answer = send_within(self.http.post(&url), &url, STOP_TIMEOUT).await.map_err(job_error)?;
        if answer.status >= 300 {
            return Err(refused(&url, &answer));
        }
        Ok(())
    }
}

/// Time allowed for a stop (the Python SDK's).
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
