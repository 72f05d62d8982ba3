//! The job APIs users call: live video-to-video ([`lv2v`]) and BYOC streams and requests
//! ([`byoc`]). Each selects an orchestrator, pays up front, starts the job, fails over to the
//! next candidate when a start fails (one loop for all, in `failover`), and keeps paying on
//! a timer until the job is stopped (`JobPayments`).

pub mod byoc;
pub mod byoc_request;
pub(crate) mod failover;
pub mod lv2v;
pub mod training;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use gateway_core::capabilities::{build_capabilities, CapabilityQuery};
use gateway_core::error::body_excerpt;
use gateway_core::rejection::JobError;
use gateway_core::rejection::RejectionReason;
use gateway_core::signer::SignerIdentity;

use crate::gateway::Gateway;
use crate::http::{describe, read_body_capped, ClientBuildError, MAX_RESPONSE_BYTES};
use crate::payments::{
    self, FinalPayment, InfoSource, PaymentCredentials, PaymentKind, PaymentScheduler, PaymentSession,
    PaymentStats, PaymentStatsReceiver, PaymentStop, PaymentTarget, RefreshOrchestratorInfo, Refresher,
    StopPayments,
};
use crate::selector::Candidate;
use crate::trickle::SegmentGetClient;

/// Time allowed for a job start call.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A POST's answer reduced to what job code needs.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends `req` and reads the answer (capped) within [`START_TIMEOUT`]; a failure says why as
/// a rejection would.
pub(crate) async fn send(req: reqwest::RequestBuilder, endpoint: &str) -> Result<Answer, RejectionReason> {
    send_within(req, endpoint, START_TIMEOUT).await
}

/// [`send`] with its own time limit.
pub(crate) async fn send_within(
    req: reqwest::RequestBuilder,
    endpoint: &str,
    timeout: Duration,
) -> Result<Answer, RejectionReason> {
    let resp = req
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| RejectionReason::Transport { endpoint: endpoint.to_owned(), message: describe(&e) })?;
    Answer::read(resp, endpoint).await
}

impl Answer {
    /// Reads `resp` (capped at [`MAX_RESPONSE_BYTES`]).
    pub(crate) async fn read(resp: reqwest::Response, endpoint: &str) -> Result<Answer, RejectionReason> {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body_capped(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|reason| RejectionReason::InvalidAnswer { endpoint: endpoint.to_owned(), reason })?;
        Ok(Answer { status, headers, body })
    }

    /// Why an answer that is not a success refuses the call.
    pub(crate) fn rejection(&self, endpoint: &str) -> RejectionReason {
        let excerpt = body_excerpt(&self.body, 300);
        if self.status == gateway_core::jobs::STATUS_PAYMENT_REQUIRED {
            RejectionReason::PaymentRequired { excerpt }
        } else {
            RejectionReason::Http { status: self.status, endpoint: endpoint.to_owned(), excerpt, hint: None }
        }
    }
}

/// A failed call outside a start (a stop), as the job error it reads as.
pub(crate) fn job_error(reason: RejectionReason) -> JobError {
    match reason {
        RejectionReason::PaymentRequired { excerpt } => JobError::PaymentRequired { message: excerpt },
        RejectionReason::Http { status, endpoint, excerpt, hint } => {
            JobError::Http { status, endpoint, message: format!("{excerpt}{}", hint.unwrap_or_default()) }
        }
        // No HTTP status exists; go's gateway and ours have always shown these as status 0.
        RejectionReason::Transport { endpoint, message } => JobError::Http { status: 0, endpoint, message },
        RejectionReason::InvalidAnswer { endpoint, reason } => JobError::InvalidResponse { endpoint, reason },
        other => JobError::InvalidResponse { endpoint: String::new(), reason: other.to_string() },
    }
}

/// What a start attempt on one candidate needs: its origin, HTTP clients and a payment session.
pub(crate) struct Attempt {
    /// Orchestrator origin (`https://host:port`).
    pub origin: String,
    /// Client for the media path and start calls.
    pub http: reqwest::Client,
    /// Client for the payment scheduler (on the gateway's actor runtime).
    pub actor_http: reqwest::Client,
    /// Client the job's subscribers read segments with (bounded buffers).
    pub reader: SegmentGetClient,
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
        let caps = build_capabilities(queries);
        // BYOC info is made from a job token, so a fresh one comes from a new token.
        let source = match queries {
            [q] if candidate.token.is_some() => InfoSource::JobToken(q.model.clone()),
            _ => InfoSource::GetOrchestrator(caps.clone()),
        };
        let request = RefreshOrchestratorInfo { address: candidate.address.clone(), identity, source };
        let refresh = Refresher::new(self.refresh_recipient(), request);
        let session =
            PaymentSession::new(self.signer_addr(), candidate.info.clone(), kind, &caps, Some(refresh));
        Ok(Attempt { origin, http, actor_http, reader: self.inner.http.segment_reader(), session })
    }

    /// Starts recurring payments for a started job (none offchain).
    pub(crate) fn start_payments(
        &self,
        session: PaymentSession,
        target: PaymentTarget,
        http: reqwest::Client,
        interval: Duration,
    ) -> JobPayments {
        if let Some(reason) = session.not_paying_reason() {
            return JobPayments::none(reason);
        }
        let (scheduler, stats) = PaymentScheduler::new(session, target, http, interval);
        let scheduler = PaymentScheduler::start_in_arbiter(self.arbiter(), move |_| scheduler);
        JobPayments { scheduler: Some(scheduler), stats, final_accepted: AtomicU64::new(0) }
    }
}

/// A started job's recurring payments: its scheduler (none when the job does not pay) and
/// the stats it publishes. Every job kind reads and stops its payments through this.
pub(crate) struct JobPayments {
    scheduler: Option<Addr<PaymentScheduler>>,
    stats: PaymentStatsReceiver,
    /// Stops whose last payment the orchestrator accepted (the scheduler has ended by then).
    final_accepted: AtomicU64,
}

impl JobPayments {
    /// Payments of a job that pays nothing, for `reason`.
    pub(crate) fn none(reason: PaymentStop) -> JobPayments {
        JobPayments {
            scheduler: None,
            stats: payments::not_paying(reason),
            final_accepted: AtomicU64::new(0),
        }
    }

    /// Payments so far.
    pub(crate) fn stats(&self) -> PaymentStats {
        let mut stats = self.stats.borrow().clone();
        stats.final_payments = self.final_accepted.load(Ordering::Relaxed);
        stats
    }

    /// The orchestrator accepted a stop carrying the last payment.
    pub(crate) fn final_payment_accepted(&self) {
        self.final_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Resolves when recurring payments stop for good, with why (at once if the job does not
    /// pay).
    pub(crate) async fn stopped(&self) -> PaymentStop {
        payments::wait_for_stop(self.stats.clone()).await
    }

    /// Stops paying.
    pub(crate) async fn stop(&self) {
        if let Some(p) = &self.scheduler {
            let _ = p.send(StopPayments).await;
        }
    }

    /// Stops paying without waiting for the scheduler to hear it (for `Drop`).
    pub(crate) fn stop_soon(&self) {
        if let Some(p) = &self.scheduler {
            p.do_send(StopPayments);
        }
    }

    /// A payment for a call the job makes (see [`payments::CallPayment`]); `None` when none is
    /// due or the signer failed (logged: the call goes without, on the balance it has).
    pub(crate) async fn call_payment(&self) -> Option<PaymentCredentials> {
        let scheduler = self.scheduler.as_ref()?;
        match scheduler.send(payments::CallPayment).await {
            Ok(Ok(creds)) => creds,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no payment for the call; sending it without");
                None
            }
            Err(_) => None,
        }
    }

    /// Stops paying, answering one last payment when one is due (none when the credit still
    /// covers the time so far, the job does not pay, or the signer failed: logged).
    pub(crate) async fn stop_with_final_payment(&self) -> Option<PaymentCredentials> {
        let scheduler = self.scheduler.as_ref()?;
        match scheduler.send(FinalPayment).await {
            Ok(Ok(creds)) => creds,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no payment for the stop; sending it without");
                None
            }
            Err(_) => None,
        }
    }
}
