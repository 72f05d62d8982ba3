//! The job APIs users call: live video-to-video ([`lv2v`]) and BYOC streams and requests
//! ([`byoc`]). Each selects an orchestrator, pays up front, starts the job, fails over to the
//! next candidate when a start fails, and keeps paying on a timer until the job is stopped.

pub mod byoc;
pub mod byoc_request;
pub mod lv2v;

use std::time::Duration;

use actix::prelude::*;
use gateway_core::capabilities::{build_capabilities, CapabilityQuery};
use gateway_core::error::{body_excerpt, JobError, OrchestratorRejection};
use gateway_core::signer::SignerIdentity;

use crate::gateway::Gateway;
use crate::http::{describe, read_body_capped, ClientBuildError, MAX_RESPONSE_BYTES};
use crate::payments::{
    self, PaymentKind, PaymentScheduler, PaymentSession, PaymentStatsReceiver, PaymentTarget,
};
use crate::selector::Candidate;

/// Time allowed for a job start call.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A POST's answer reduced to what job code needs.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends `req` and reads the answer (capped) within [`START_TIMEOUT`], mapping transport
/// failures to `JobError`.
pub(crate) async fn send(req: reqwest::RequestBuilder, endpoint: &str) -> Result<Answer, JobError> {
    send_within(req, endpoint, START_TIMEOUT).await
}

/// [`send`] with its own time limit.
pub(crate) async fn send_within(
    req: reqwest::RequestBuilder,
    endpoint: &str,
    timeout: Duration,
) -> Result<Answer, JobError> {
    let resp = req.timeout(timeout).send().await.map_err(|e| JobError::Http {
        status: 0,
        endpoint: endpoint.to_owned(),
        message: describe(&e),
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_body_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|reason| JobError::InvalidResponse { endpoint: endpoint.to_owned(), reason })?;
    Ok(Answer { status, headers, body })
}

impl Answer {
    pub(crate) fn error(&self, endpoint: &str) -> JobError {
        let message = body_excerpt(&self.body, 300);
        if self.status == gateway_core::jobs::STATUS_PAYMENT_REQUIRED {
            JobError::PaymentRequired { message }
        } else {
            JobError::Http { status: self.status, endpoint: endpoint.to_owned(), message }
        }
    }
}

pub(crate) fn rejection(orchestrator: &str, reason: impl ToString) -> OrchestratorRejection {
    OrchestratorRejection { orchestrator: orchestrator.to_owned(), reason: reason.to_string() }
}

/// What a start attempt on one candidate needs: its origin, HTTP clients and a payment session.
pub(crate) struct Attempt {
    /// Orchestrator origin (`https://host:port`).
    pub origin: String,
    /// Client for the media path and start calls.
    pub http: reqwest::Client,
    /// Client for the payment scheduler (on the gateway's actor runtime).
    pub actor_http: reqwest::Client,
    /// Payments against this candidate.
    pub session: PaymentSession,
}

impl Gateway {
    /// Prepares an attempt on `candidate`.
    pub(crate) fn attempt(
        &self,
        candidate: &Candidate,
        queries: &[CapabilityQuery],
        identity: Option<SignerIdentity>,
        kind: PaymentKind,
    ) -> Result<Attempt, ClientBuildError> {
        let origin = candidate.info.transcoder.trim_end_matches('/').to_owned();
        let (http, actor_http) = self.orchestrator_clients(&origin)?;
        let refresh = match queries {
            [q] if candidate.token.is_some() => {
                self.token_refresher(candidate.address.clone(), q.model.clone(), identity)
            }
            _ => self.refresher(candidate.address.clone(), queries, identity),
        };
        let caps = build_capabilities(queries);
        let session =
            PaymentSession::new(self.signer_addr(), candidate.info.clone(), kind, &caps, Some(refresh));
        Ok(Attempt { origin, http, actor_http, session })
    }

    /// Starts recurring payments for a started job (none offchain).
    pub(crate) fn start_payments(
        &self,
        session: PaymentSession,
        target: PaymentTarget,
        http: reqwest::Client,
        interval: Duration,
    ) -> (Option<Addr<PaymentScheduler>>, PaymentStatsReceiver) {
        if let Some(reason) = session.not_paying_reason() {
            return (None, payments::not_paying(reason));
        }
        let (scheduler, stats) = PaymentScheduler::new(session, target, http, interval);
        (Some(PaymentScheduler::start_in_arbiter(self.arbiter(), move |_| scheduler)), stats)
    }
}
