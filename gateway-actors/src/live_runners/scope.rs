//! Scope: a live video-to-video job started through a live runner, in either of the two ways
//! the Python SDK's `start_scope` knows.
//!
//! - **Serverless** (a runner whose version starts with `serverless`: an orchestrator with a
//!   serverless AI worker lists each of its models at `{svc}/scope`): the job's request is
//!   POSTed there, paying the orchestrator's 402 challenge (go's `StartScope`,
//!   `processScopePayment`), and paid for every 3 s at the challenge's `{svc}/payment` while
//!   it runs.
//! - **Runner app** (any other `live-video-to-video/scope` runner): a session is reserved (and
//!   paid for) on it, and the request POSTed to the session's `…/app/scope`; the app answers
//!   the job's channels. Stopping the job stops the session.
//!
//! Either answers `{manifest_id, control_url, events_url}` (a runner app may add media
//! channels). Runners are tried in discovery order until one starts the job; each one that
//! did not is reported with why.

use gateway_core::jobs::LiveVideoToVideoRequest;
use gateway_core::rejection::{JobError, OrchestratorRejection, RejectionReason};
use gateway_core::runners::{
    RunnerFilter, ScopeStarted, SCOPE_APP, SERVERLESS_VERSION_PREFIX, SESSION_PAYMENT_INTERVAL,
};
use gateway_core::trickle::SeqSpec;

use super::answer::APP_CALL_TIMEOUT;
use super::calls::RunnerCall;
use super::discovery::RunnerCandidate;
use super::paid::PaidAnswer;
use super::sessions::RunnerSession;
use crate::channels::{ControlWriter, JsonReader};
use crate::gateway::{Gateway, GatewayError};
use crate::jobs::JobPayments;
use crate::payments::{PaymentStats, PaymentStop};
use crate::trickle::SegmentGetClient;

/// A running Scope job.
pub struct ScopeJob {
    /// Its channels and manifest id, as the runner answered them.
    pub started: ScopeStarted,
    /// The runner that runs it.
    pub runner: RunnerCandidate,
    http: reqwest::Client,
    reader: SegmentGetClient,
    kind: ScopeKind,
}

/// How the job is held and paid for.
enum ScopeKind {
    /// Paid directly at the orchestrator's `/payment`.
    Serverless(JobPayments),
    /// A session on a runner app, paid (and stopped) as the session.
    Session(RunnerSession),
}

impl std::fmt::Debug for ScopeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeJob").field("manifest_id", &self.started.manifest_id).finish()
    }
}

impl Gateway {
    /// Starts `request` on the first Scope runner that takes it (see the module docs).
    ///
    /// Errors: [`JobError::NoOrchestratorAvailable`] listing every runner tried and why (none
    /// found included); a failing discovery.
    pub async fn start_scope(&self, request: &LiveVideoToVideoRequest) -> Result<ScopeJob, GatewayError> {
        let filter = RunnerFilter { apps: vec![SCOPE_APP.into()], gpus: vec![] };
        let found = self.discover_runners(&filter).await?;
        let mut rejections = found.failures;
        for candidate in found.runners {
            match self.until_shutdown(self.start_scope_on(&candidate, request)).await {
                Ok(job) => return Ok(job),
                Err(GatewayError::Job(e)) => {
                    tracing::info!(runner = %candidate.runner.url, error = %e, "scope runner did not start the job");
                    let reason = rejection(e, &candidate.runner.url);
                    rejections.push(OrchestratorRejection::new(candidate.orchestrator.clone(), reason));
                }
                Err(other) => return Err(other),
            }
        }
        Err(JobError::NoOrchestratorAvailable { rejections }.into())
    }

    async fn start_scope_on(
        &self,
        candidate: &RunnerCandidate,
        request: &LiveVideoToVideoRequest,
    ) -> Result<ScopeJob, GatewayError> {
        let body = serde_json::to_value(request).unwrap_or_default();
        let (http, actor_http) = self.orchestrator_clients(&candidate.orchestrator)?;
        let reader = self.inner.http.segment_reader();
        if candidate.runner.version.starts_with(SERVERLESS_VERSION_PREFIX) {
            let url = candidate.runner.url.clone();
            let call = RunnerCall::post_json("", &body);
            let build = || call.request(&http, &url);
            let PaidAnswer { response, paid, identity } =
                self.send_paying(candidate, &url, &build, APP_CALL_TIMEOUT).await?;
            let started = read_started(response, &url).await?;
            let payments =
                self.pay_while_running(candidate, paid, identity, actor_http, SESSION_PAYMENT_INTERVAL)?;
            let kind = ScopeKind::Serverless(payments);
            return Ok(ScopeJob { started, runner: candidate.clone(), http, reader, kind });
        }
        let session = self.reserve_runner_session(candidate).await?;
        let answer = match session.call_app(RunnerCall::post_json("scope", &body)).await {
            Ok(answer) => answer.collect().await,
            Err(e) => Err(e),
        };
        let started = answer.and_then(|a| parse_started(a.status, &a.body, &session.app_url));
        match started {
            Ok(started) => Ok(ScopeJob {
                started,
                runner: candidate.clone(),
                http,
                reader,
                kind: ScopeKind::Session(session),
            }),
            Err(e) => {
                if let Err(stop) = session.stop().await {
                    tracing::warn!(error = %stop, "could not stop the scope runner's session");
                }
                Err(e.into())
            }
        }
    }
}

/// Why a runner did not start the job, as a rejection.
fn rejection(e: JobError, url: &str) -> RejectionReason {
    match e {
        JobError::Http { status: 0, endpoint, message } => RejectionReason::Transport { endpoint, message },
        JobError::Http { status, endpoint, message } => {
            RejectionReason::Http { status, endpoint, excerpt: message, hint: None }
        }
        JobError::PaymentRequired { message } => RejectionReason::PaymentRequired { excerpt: message },
        JobError::InvalidResponse { endpoint, reason } => RejectionReason::InvalidAnswer { endpoint, reason },
        other => RejectionReason::InvalidAnswer { endpoint: url.to_owned(), reason: other.to_string() },
    }
}

async fn read_started(response: reqwest::Response, url: &str) -> Result<ScopeStarted, JobError> {
    let status = response.status().as_u16();
    let body = crate::http::read_body_capped(response, crate::http::MAX_RESPONSE_BYTES)
        .await
        .map_err(|reason| JobError::InvalidResponse { endpoint: url.to_owned(), reason })?;
    parse_started(status, &body, url)
}

/// A Scope start's answer: 200 with at least a manifest id and a control URL.
fn parse_started(status: u16, body: &[u8], url: &str) -> Result<ScopeStarted, JobError> {
    if status != 200 {
        let message = gateway_core::error::body_excerpt(body, 300);
        return Err(JobError::Http { status, endpoint: url.to_owned(), message });
    }
    let started: ScopeStarted = serde_json::from_slice(body).map_err(|e| JobError::InvalidResponse {
        endpoint: url.to_owned(),
        reason: format!("not a Scope answer: {e}"),
    })?;
    if started.manifest_id.is_empty() || started.control_url.is_empty() {
        return Err(JobError::InvalidResponse {
            endpoint: url.to_owned(),
            reason: "the Scope answer has no manifest_id or control_url".into(),
        });
    }
    Ok(started)
}

impl ScopeJob {
    /// A writer of the job's control channel (parameter updates), its keepalive running.
    pub async fn control(&self) -> ControlWriter {
        ControlWriter::connect(
            self.http.clone(),
            &self.started.control_url,
            ControlWriter::default_keepalive(),
        )
        .await
    }

    /// A reader of the job's events from the first one.
    pub fn events(&self) -> JsonReader {
        JsonReader::new(self.reader.clone(), &self.started.events_url, SeqSpec::At(0))
    }

    /// Payments so far.
    pub fn payment_stats(&self) -> PaymentStats {
        match &self.kind {
            ScopeKind::Serverless(p) => p.stats(),
            ScopeKind::Session(s) => s.payment_stats(),
        }
    }

    /// Resolves when payments stop for good, with why.
    pub async fn payments_stopped(&self) -> PaymentStop {
        match &self.kind {
            ScopeKind::Serverless(p) => p.stopped().await,
            ScopeKind::Session(s) => s.payments_stopped().await,
        }
    }

    /// Stops paying; a runner app's session is released too. (A serverless Scope job has no
    /// stop route in go: the orchestrator ends it when the payments stop covering it.)
    pub async fn stop(self) -> Result<(), JobError> {
        match self.kind {
            ScopeKind::Serverless(p) => {
                p.stop().await;
                Ok(())
            }
            ScopeKind::Session(s) => s.stop().await,
        }
    }
}
