//! Reserving a session on a persistent live runner and paying for it while it runs.
//!
//! The flow is go-livepeer master's (`server/ai_http.go` `ReserveLiveRunnerSession`) as the
//! Python SDK drives it (`call_runner`, `reserve_session`): the reservation is sent with the
//! payer's address (`Livepeer-Payer-Address`, the signer's); a priced runner answers 402 with a
//! challenge, paid through the remote signer (`type: live`, the challenge's manifest id) and
//! sent again with the payment; the session then gets a payment every
//! [`SESSION_PAYMENT_INTERVAL`] at the challenge's `payment_url` until it is stopped
//! (`POST {control_url}/stop`). An offchain or free runner answers the reservation at once.

use std::time::Duration;

use gateway_core::lp_rpc::{self, OrchestratorInfo};
use gateway_core::rejection::{JobError, RejectionReason};
use gateway_core::runners::{
    PaymentChallenge, SessionReserved, HEADER_PAYER_ADDRESS, SESSION_PAYMENT_INTERVAL,
};
use gateway_core::signer::SignerIdentity;

use super::discovery::RunnerCandidate;
use crate::gateway::{Gateway, GatewayError};
use crate::jobs::{job_error, send_within, Answer, JobPayments, START_TIMEOUT};
use crate::payments::{PaymentKind, PaymentSession, PaymentStats, PaymentStop, PaymentTarget};

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
        let identity = self.identity().await?;
        let first = send_within(reserve_request(&http, &url, identity.as_ref(), None), &url, START_TIMEOUT)
            .await
            .map_err(job_error)?;
        let (answer, payments) = if first.status == 402 {
            let challenge = payment_challenge(&url, &first.body, identity.is_some())?;
            let info: OrchestratorInfo = lp_rpc::from_base64("payment_params", &challenge.payment_params)
                .map_err(|e| JobError::InvalidResponse { endpoint: url.clone(), reason: e.to_string() })?;
            let mut session =
                PaymentSession::new(self.signer_addr(), info, PaymentKind::Live, &Default::default(), None);
            if !session.is_paying() {
                return Err(JobError::PaymentRequired {
                    message: "the runner asks for payment and this gateway has no signer to pay with".into(),
                }
                .into());
            }
            session.set_manifest_id(challenge.manifest_id.clone());
            let creds = session.next_payment().await?;
            let paid =
                reserve_request(&http, &url, identity.as_ref(), Some((&creds.payment, &creds.segment)));
            let answer = send_within(paid, &url, START_TIMEOUT).await.map_err(job_error)?;
            if answer.status != 200 {
                return Err(refused(&url, &answer).into());
            }
            let target = PaymentTarget::RunnerSession { payment_url: challenge.payment_url };
            (answer, self.start_payments(session, target, actor_http, SESSION_PAYMENT_INTERVAL))
        } else if first.status == 200 {
            (first, JobPayments::none(PaymentStop::FreeOrchestrator))
        } else {
            return Err(refused(&url, &first).into());
        };
        let reserved: SessionReserved = serde_json::from_slice(&answer.body).map_err(|e| {
            JobError::InvalidResponse { endpoint: url.clone(), reason: format!("not a session: {e}") }
        })?;
        Ok(RunnerSession {
            session_id: reserved.session_id,
            app_url: reserved.app_url,
            control_url: reserved.control_url,
            http,
            payments,
        })
    }
}

/// A 402's challenge; go's JSON error instead (no payer address, say) is a typed refusal that
/// says what the orchestrator said.
fn payment_challenge(url: &str, body: &[u8], has_signer: bool) -> Result<PaymentChallenge, JobError> {
    if let Ok(challenge) = serde_json::from_slice::<PaymentChallenge>(body) {
        return Ok(challenge);
    }
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned));
    match said {
        Some(message) if has_signer => Err(JobError::PaymentRequired { message }),
        Some(message) => Err(JobError::PaymentRequired {
            message: format!(
                "the runner asks for payment and this gateway has no signer to pay with ({message})"
            ),
        }),
        None => Err(JobError::InvalidResponse {
            endpoint: url.to_owned(),
            reason: format!(
                "a 402 without a payment challenge: {}",
                gateway_core::error::body_excerpt(body, 200)
            ),
        }),
    }
}

/// The reservation call, with the payer's address and, when paying, the payment.
fn reserve_request(
    http: &reqwest::Client,
    url: &str,
    identity: Option<&SignerIdentity>,
    payment: Option<(&str, &str)>,
) -> reqwest::RequestBuilder {
    let mut req = http.post(url).header("accept", "*/*").json(&serde_json::json!({}));
    if let Some(id) = identity {
        req = req.header(HEADER_PAYER_ADDRESS, format!("0x{}", hex::encode(id.address_bytes)));
    }
    if let Some((payment, segment)) = payment {
        req = req
            .header(gateway_core::jobs::HEADER_PAYMENT, payment)
            .header(gateway_core::jobs::HEADER_SEGMENT, segment);
    }
    req
}

fn refused(url: &str, answer: &Answer) -> JobError {
    job_error(RejectionReason::Http {
        status: answer.status,
        endpoint: url.to_owned(),
        excerpt: gateway_core::error::body_excerpt(&answer.body, 300),
        hint: None,
    })
}

/// What a runner's app answered through the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppAnswer {
    /// Status (the app's, or the orchestrator's 404 / 502).
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// The body (at most [`MAX_APP_ANSWER_BYTES`]).
    pub body: bytes::Bytes,
}

/// Largest app answer [`RunnerSession::call_app`] reads.
pub const MAX_APP_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// Time allowed for an app call.
pub const APP_CALL_TIMEOUT: Duration = Duration::from_secs(60);

impl RunnerSession {
    /// POSTs `body` (of `content_type`) to the runner's app at `path` below the session's app
    /// URL; the orchestrator proxies it with the session's headers.
    pub async fn call_app(
        &self,
        path: &str,
        body: bytes::Bytes,
        content_type: &str,
    ) -> Result<AppAnswer, JobError> {
        let url = format!("{}/{}", self.app_url.trim_end_matches('/'), path.trim_start_matches('/'));
        let resp = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .timeout(APP_CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                job_error(RejectionReason::Transport {
                    endpoint: url.clone(),
                    message: crate::http::describe(&e),
                })
            })?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = crate::http::read_body_capped(resp, MAX_APP_ANSWER_BYTES)
            .await
            .map_err(|reason| JobError::InvalidResponse { endpoint: url.clone(), reason })?;
        Ok(AppAnswer { status, content_type, body })
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
