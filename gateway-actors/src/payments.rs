//! Paying for a job: the per-job payment session (signer state, 480 refreshes) and the
//! `PaymentScheduler` actor that pays on a timer while the job runs.
//!
//! The timer is independent of media flow: no extra subscriber, no coupling to segments (the
//! Python SDK's segment-driven sender opened a second subscriber and caused disconnects).
//! LV2V pays `POST {orchestrator}/payment` every 5 s; BYOC tops up with
//! `POST /ai/stream/payment` every 50 s. A 482 skips the cycle; 480 refreshes the
//! orchestrator info (bounded); a price rise (481) or a refusal by the orchestrator stops the
//! payments, and so do [`MAX_FAILED_CYCLES`] failed cycles in a row (a dead orchestrator or
//! signer; for BYOC also 400 and 402, which go's orchestrator answers to a payment it credited
//! while the balance stays short, and which go's gateway keeps paying through). A BYOC stop
//! carries a `FinalPayment`. Why they stopped is a [`PaymentStop`] in [`PaymentStats::stopped`]; the stats live
//! in a watch channel, so `wait_for_stop` can await it.
//!
//! The scheduler owns its session (no lock): it lends it to one payment at a time and takes it
//! back after. Fresh orchestrator info is asked for with a `RefreshOrchestratorInfo` message,
//! which the gateway's orchestrator selector answers.

use std::time::Duration;

use actix::prelude::*;
use gateway_core::error::SignerError;
use gateway_core::jobs::{self, offchain_segment_credentials};
use gateway_core::lp_rpc::{self, OrchestratorInfo, PaymentResult};
use gateway_core::rejection::JobError;
use gateway_core::signer::{GenerateLivePaymentRequest, MaxPrice, PaymentType, SignerIdentity, SignerState};
use prost::Message as _;
use thiserror::Error;
use tokio::sync::{oneshot, watch};

use crate::http::{describe, header_str, read_body_capped, JSON_CALL_TIMEOUT, MAX_RESPONSE_BYTES};
use crate::signer_client::{GeneratePayment, SignerClient};

/// Most `GetOrchestrator` refreshes in a row on signer 480 answers (go-livepeer: 3).
pub(crate) const MAX_REFRESHES: u32 = 3;

/// Failed payment cycles without an accepted payment between them (skips aside) after which
/// payments stop for good. A cycle fails only when a payment was due (the signer skips the
/// others), so three failures mean three payments the orchestrator never got: by then it has
/// stopped the stream anyway.
pub const MAX_FAILED_CYCLES: u32 = 3;

/// Ask for fresh orchestrator info (a new auth token and ticket parameters), for a signer 480
/// or a BYOC start that must preload again. The gateway's orchestrator selector answers it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<OrchestratorInfo, String>")]
pub(crate) struct RefreshOrchestratorInfo {
    /// The orchestrator, as discovered.
    pub address: String,
    /// The signer's identity (`None` offchain), so ticket parameters are made for it.
    pub identity: Option<SignerIdentity>,
    /// Where the info comes from.
    pub source: InfoSource,
}

/// Where fresh orchestrator info comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InfoSource {
    /// `GetOrchestrator`, asking for these capabilities.
    GetOrchestrator(lp_rpc::Capabilities),
    /// BYOC: a new `/process/token` for this capability, made into the info a signer needs.
    JobToken(String),
    /// A live-runner session: `POST {refresh_url}` (go's `/refresh-payment`) for this
    /// manifest id, at the price its first payment fixed.
    RunnerSession {
        /// The orchestrator's `/refresh-payment` URL.
        refresh_url: String,
        /// The session's manifest id.
        manifest_id: String,
    },
}

/// How a session refreshes its orchestrator info: the request, and who answers it.
#[derive(Clone)]
pub(crate) struct Refresher {
    to: Recipient<RefreshOrchestratorInfo>,
    request: RefreshOrchestratorInfo,
}

impl Refresher {
    /// Refreshes by sending `request` to `to`.
    pub fn new(to: Recipient<RefreshOrchestratorInfo>, request: RefreshOrchestratorInfo) -> Refresher {
        Refresher { to, request }
    }

    async fn fetch(&self) -> Result<OrchestratorInfo, SignerError> {
        let answer = self.to.send(self.request.clone()).await.map_err(|e| {
            SignerError::InvalidRequest(format!(
                "cannot refresh orchestrator info: the gateway stopped ({e})"
            ))
        })?;
        answer.map_err(|reason| {
            SignerError::InvalidRequest(format!("cannot refresh orchestrator info: {reason}"))
        })
    }
}

/// The two header values that pay for a request.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PaymentCredentials {
    /// `Livepeer-Payment` (empty offchain).
    pub payment: String,
    /// `Livepeer-Segment`.
    pub segment: String,
}

impl PaymentCredentials {
    /// `req` carrying this payment, or `req` as it is when there is none to carry (offchain,
    /// or a BYOC credit that still covers the call).
    pub(crate) fn attach(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.payment.is_empty() {
            return req;
        }
        req.header(jobs::HEADER_PAYMENT, &self.payment).header(jobs::HEADER_SEGMENT, &self.segment)
    }
}

impl std::fmt::Debug for PaymentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PaymentCredentials({} + {} bytes)", self.payment.len(), self.segment.len())
    }
}

/// What is being paid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PaymentKind {
    /// Live video-to-video.
    Lv2v,
    /// A BYOC stream or request, preloading this many seconds on the first payment.
    Byoc {
        /// Seconds of credit to buy up front (the signer uses at least 60).
        preload_seconds: u32,
    },
    /// A live-runner session or call priced per second (the signer's `live` type).
    Live,
    /// A live-runner session or call at one fixed price, paid once (the signer's `fixed` type).
    Fixed,
}

impl PaymentKind {
    /// The kind a live runner's price unit (as discovery shows it, or as registered) asks
    /// for, as the Python SDK maps them; `None` for a unit it does not know.
    pub(crate) fn for_runner_unit(unit: &str) -> Option<PaymentKind> {
        match unit.trim().to_ascii_lowercase().as_str() {
            "hour" | "seconds" | "" => Some(PaymentKind::Live),
            "720p" | "720p-pixel-seconds" => Some(PaymentKind::Lv2v),
            "fixed" => Some(PaymentKind::Fixed),
            _ => None,
        }
    }

    /// Whether the price runs with time (so payments recur while the work runs).
    pub(crate) fn is_metered(&self) -> bool {
        !matches!(self, PaymentKind::Fixed)
    }
}

/// One job's payment state: the orchestrator info it pays against and the signer's state blob.
pub(crate) struct PaymentSession {
    signer: Option<Addr<SignerClient>>,
    info: OrchestratorInfo,
    kind: PaymentKind,
    capabilities: String,
    state: Option<SignerState>,
    manifest_id: Option<String>,
    refresh: Option<Refresher>,
    /// The live-runner app paid for (the signer's `app`).
    app: Option<String>,
    /// The most the payer will pay per unit (the signer's `maxPrice`).
    max_price: Option<MaxPrice>,
}

impl std::fmt::Debug for PaymentSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentSession")
            .field("kind", &self.kind)
            .field("manifest_id", &self.manifest_id)
            .finish()
    }
}

impl PaymentSession {
    /// A session paying `info` for `kind`; `signer` is `None` offchain.
    pub fn new(
        signer: Option<Addr<SignerClient>>,
        info: OrchestratorInfo,
        kind: PaymentKind,
        capabilities: &lp_rpc::Capabilities,
        refresh: Option<Refresher>,
    ) -> PaymentSession {
        PaymentSession {
            signer,
            info,
            kind,
            capabilities: lp_rpc::to_base64(capabilities),
            state: None,
            manifest_id: None,
            refresh,
            app: None,
            max_price: None,
        }
    }

    /// Names the live-runner app paid for, and the most the payer pays per unit.
    pub fn set_runner_terms(&mut self, app: Option<String>, max_price: Option<MaxPrice>) {
        self.app = app;
        self.max_price = max_price;
    }

    /// Sets how fresh orchestrator info is fetched on a signer 480.
    pub fn set_refresher(&mut self, refresh: Refresher) {
        self.refresh = Some(refresh);
    }

    /// Whether payments are made at all: a signer, and an orchestrator that charges. A price of
    /// 0 pays nothing even when ticket parameters came with it (go's gateways skip payment
    /// there, and a remote signer refuses it with "missing or zero priceInfo").
    pub fn is_paying(&self) -> bool {
        self.signer.is_some() && self.info.charges()
    }

    /// Why this session does not pay, if it does not.
    pub fn not_paying_reason(&self) -> Option<PaymentStop> {
        match (&self.signer, self.info.charges()) {
            (Some(_), true) => None,
            (Some(_), false) => Some(PaymentStop::FreeOrchestrator),
            (None, _) => Some(PaymentStop::NotPaying),
        }
    }

    /// Sets the manifest id later payments must name (LV2V: the orchestrator's session id).
    pub fn set_manifest_id(&mut self, id: impl Into<String>) {
        self.manifest_id = Some(id.into());
    }

    /// Replaces the orchestrator info (after a `/payment` answer carried fresh ticket params).
    pub fn update_info(&mut self, info: OrchestratorInfo) {
        self.info = info;
    }

    /// What is paid for.
    pub fn kind(&self) -> &PaymentKind {
        &self.kind
    }

    /// Starts the payment session over: fresh orchestrator info (new ticket parameters, so the
    /// restarted nonces cannot collide with used ones) and no signer state, so the next payment
    /// preloads again. For an orchestrator that wants more credit than the signer's state says
    /// it has (a 402 the signer would answer with 482).
    pub async fn restart(&mut self) -> Result<(), SignerError> {
        let refresh = self
            .refresh
            .as_ref()
            .ok_or_else(|| SignerError::InvalidRequest("no way to refresh the orchestrator info".into()))?;
        self.info = refresh.fetch().await?;
        self.state = None;
        Ok(())
    }

    /// Credentials for the next payment: from the signer, or offchain ones.
    pub async fn next_payment(&mut self) -> Result<PaymentCredentials, SignerError> {
        let signer = match &self.signer {
            Some(s) if self.info.charges() => s.clone(),
            _ => {
                let segment = offchain_segment_credentials(&self.info, self.manifest_id.as_deref())
                    .map_err(|e| SignerError::InvalidRequest(e.to_string()))?;
                return Ok(PaymentCredentials { payment: String::new(), segment });
            }
        };
        let mut refreshes = 0;
        loop {
            let (payment_type, preload_seconds) = match self.kind {
                PaymentKind::Lv2v => (PaymentType::Lv2v, None),
                PaymentKind::Byoc { preload_seconds } => (PaymentType::Byoc, Some(preload_seconds)),
                PaymentKind::Live => (PaymentType::Live, None),
                PaymentKind::Fixed => (PaymentType::Fixed, None),
            };
            let req = GenerateLivePaymentRequest {
                orchestrator: lp_rpc::to_base64(&self.info),
                state: self.state.clone(),
                manifest_id: self.manifest_id.clone(),
                app: self.app.clone(),
                in_pixels: None,
                payment_type,
                max_price: self.max_price.clone(),
                capabilities: Some(self.capabilities.clone()),
                preload_seconds,
                request_id: Some(hex::encode(rand::random::<[u8; 8]>())),
            };
            let result = signer
                .send(GeneratePayment(req))
                .await
                .map_err(|e| SignerError::InvalidRequest(format!("signer client stopped: {e}")))?;
            match result {
                Ok(resp) => {
                    self.state = Some(resp.state);
                    return Ok(PaymentCredentials { payment: resp.payment, segment: resp.seg_creds });
                }
                Err(SignerError::RefreshRequired { .. })
                    if refreshes < MAX_REFRESHES && self.refresh.is_some() =>
                {
                    refreshes += 1;
                    if let Some(refresh) = &self.refresh {
                        self.info = refresh.fetch().await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Where recurring payments go.
#[derive(Clone)]
pub(crate) enum PaymentTarget {
    /// `POST {orchestrator}/payment`.
    Lv2v {
        /// Orchestrator origin.
        orchestrator: String,
    },
    /// `POST {orchestrator}/ai/stream/payment` with a signed job header.
    Byoc {
        /// Orchestrator origin.
        orchestrator: String,
        /// The `Livepeer` header value naming the stream.
        job_header: String,
    },
    /// `POST {payment_url}` of a live-runner session (the URL its 402 challenge named).
    RunnerSession {
        /// The session's payment URL.
        payment_url: String,
    },
}

/// What the scheduler has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentStats {
    /// Payments the orchestrator accepted.
    pub payments_sent: u64,
    /// Cycles skipped because the credit still covered them (signer 482).
    pub cycles_skipped: u64,
    /// Cycles that failed and were retried next cycle.
    pub failures: u64,
    /// Failed cycles since the orchestrator last accepted a payment (skipped cycles do not
    /// reset it).
    pub failures_in_a_row: u32,
    /// Balance the orchestrator last reported (BYOC).
    pub last_balance: Option<i64>,
    /// Last payments a stop call carried that the orchestrator accepted (BYOC: 0 or 1).
    pub final_payments: u64,
    /// Why payments stopped for good, if they did.
    pub stopped: Option<PaymentStop>,
}

/// Why recurring payments stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentStop {
    /// The job was stopped by its owner.
    #[error("job ended")]
    JobEnded,
    /// The signer or the orchestrator refused for good (price above the limit, 4xx).
    #[error("payment refused: {0}")]
    Refused(String),
    /// [`MAX_FAILED_CYCLES`] cycles in a row failed (orchestrator or signer unreachable, 5xx).
    #[error("{failures} payment cycles failed in a row; last: {last_error}")]
    TooManyFailures {
        /// Cycles that failed in a row.
        failures: u32,
        /// The last failure.
        last_error: String,
    },
    /// The scheduler went away without another reason (the gateway shut down).
    #[error("payment scheduler shut down")]
    Shutdown,
    /// The job never paid: no signer (offchain).
    #[error("the job does not pay (no signer)")]
    NotPaying,
    /// The job never paid: the orchestrator's price is 0, so no payment was sent.
    #[error("the orchestrator charges nothing (price 0): no payment sent")]
    FreeOrchestrator,
    /// A live-runner session is gone: its payment URL answered 404 (released by a stop, the
    /// runner, expiry, or a payment that ran out).
    #[error("the orchestrator released the session")]
    Released,
    /// Paid once up front at a fixed price: nothing recurs.
    #[error("paid once at a fixed price")]
    FixedPrice,
}

/// A job's view of its scheduler's stats.
pub(crate) type PaymentStatsReceiver = watch::Receiver<PaymentStats>;

/// Stats for a job that takes no payment, stopped for `reason` from the start, so
/// `wait_for_stop` answers it at once.
pub(crate) fn not_paying(reason: PaymentStop) -> PaymentStatsReceiver {
    watch::channel(PaymentStats { stopped: Some(reason), ..Default::default() }).1
}

/// Resolves when payments stop for good, with why.
pub(crate) async fn wait_for_stop(mut stats: PaymentStatsReceiver) -> PaymentStop {
    let outcome = stats.wait_for(|s| s.stopped.is_some()).await.map(|s| s.stopped.clone());
    match outcome {
        Ok(Some(stop)) => stop,
        // The scheduler is gone; it records a reason when it stops, so only a job that never
        // had one gets here.
        _ => stats.borrow().stopped.clone().unwrap_or(PaymentStop::NotPaying),
    }
}

/// What a stop's last payment answers: its credentials, `None` when the credit still covers.
type FinalAnswer = Result<Option<PaymentCredentials>, SignerError>;

/// Pays on a timer while a job runs.
///
/// The actor owns its session: it is taken out while a payment is in flight and put back when
/// the payment ends, so payments never overlap (the signer state is a chain) and no lock is
/// needed. A stop's `FinalPayment` asked for meanwhile waits for the session to come back.
pub(crate) struct PaymentScheduler {
    /// `None` while a payment is in flight.
    session: Option<PaymentSession>,
    target: PaymentTarget,
    http: reqwest::Client,
    interval: Duration,
    /// Every change is published to the job's receivers.
    stats: watch::Sender<PaymentStats>,
    /// A `FinalPayment` waiting for the in-flight payment to end.
    final_waiting: Option<oneshot::Sender<FinalAnswer>>,
    /// The final payment was asked for: no recurring payment starts after it.
    finishing: bool,
}

impl PaymentScheduler {
    /// A scheduler paying `session` to `target` every `interval`.
    pub fn new(
        session: PaymentSession,
        target: PaymentTarget,
        http: reqwest::Client,
        interval: Duration,
    ) -> (PaymentScheduler, PaymentStatsReceiver) {
        let (stats, receiver) = watch::channel(PaymentStats::default());
        let s = PaymentScheduler {
            session: Some(session),
            target,
            http,
            interval,
            stats,
            final_waiting: None,
            finishing: false,
        };
        (s, receiver)
    }

    /// Records why payments stopped (the first reason wins) and stops the actor.
    fn stop_for_good(&mut self, reason: PaymentStop, ctx: &mut Context<Self>) {
        self.record_stop(reason);
        ctx.stop();
    }

    fn record_stop(&self, reason: PaymentStop) {
        self.stats.send_if_modified(|s| {
            if s.stopped.is_some() {
                return false;
            }
            s.stopped = Some(reason);
            true
        });
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.finishing {
            return;
        }
        // None: a slow payment is still running; never overlap (the signer state is a chain).
        let Some(session) = self.session.take() else { return };
        let fut = pay_once(session, self.target.clone(), self.http.clone());
        ctx.spawn(fut.into_actor(self).map(|(outcome, session), act, ctx| {
            act.session = Some(session);
            let stop = act.record(outcome);
            match act.final_waiting.take() {
                // The stop's last payment goes out now; the actor stops after it.
                Some(answer) => {
                    if let Some(reason) = stop {
                        act.record_stop(reason);
                    }
                    act.pay_final(answer, ctx);
                }
                None => {
                    if let Some(reason) = stop {
                        act.stop_for_good(reason, ctx);
                    }
                }
            }
        }));
    }

    /// Counts a payment's outcome; answers why payments must stop, if they must.
    fn record(&mut self, outcome: PayOutcome) -> Option<PaymentStop> {
        let mut stop = None;
        self.stats.send_modify(|stats| match outcome {
            PayOutcome::Paid { balance } => {
                stats.payments_sent += 1;
                stats.failures_in_a_row = 0;
                if balance.is_some() {
                    stats.last_balance = balance;
                }
            }
            // A skip proves only that the signer is alive, not the orchestrator.
            PayOutcome::Skipped => stats.cycles_skipped += 1,
            PayOutcome::Failed(reason) => {
                stats.failures += 1;
                stats.failures_in_a_row += 1;
                if stats.failures_in_a_row >= MAX_FAILED_CYCLES {
                    tracing::warn!(%reason, "payments stopped after repeated failures");
                    stop = Some(PaymentStop::TooManyFailures {
                        failures: stats.failures_in_a_row,
                        last_error: reason,
                    });
                } else {
                    tracing::warn!(%reason, "payment failed; retrying next cycle");
                }
            }
            PayOutcome::Fatal(reason) => {
                tracing::warn!(%reason, "payments stopped");
                stop = Some(PaymentStop::Refused(reason));
            }
            PayOutcome::Released => {
                tracing::info!("payments stopped: the orchestrator released the session");
                stop = Some(PaymentStop::Released);
            }
        });
        stop
    }

    /// Makes the stop's last payment with the session (which must be here), answers it, and
    /// stops the actor.
    fn pay_final(&mut self, answer: oneshot::Sender<FinalAnswer>, ctx: &mut Context<Self>) {
        self.finishing = true;
        let Some(session) = self.session.take() else {
            let _ = answer.send(Err(SignerError::InvalidRequest("no payment session to pay with".into())));
            self.stop_for_good(PaymentStop::JobEnded, ctx);
            return;
        };
        ctx.spawn(payment_if_due(session).into_actor(self).map(|(result, session), act, ctx| {
            act.session = Some(session);
            let _ = answer.send(result);
            act.stop_for_good(PaymentStop::JobEnded, ctx);
        }));
    }
}

impl Actor for PaymentScheduler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Stopped without a reason means the arbiter or system went away.
        self.record_stop(PaymentStop::Shutdown);
    }
}

/// Stop paying (the job ended).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct StopPayments;

impl Handler<StopPayments> for PaymentScheduler {
    type Result = ();
    fn handle(&mut self, _: StopPayments, ctx: &mut Context<Self>) {
        self.stop_for_good(PaymentStop::JobEnded, ctx);
    }
}

/// The job is stopping: payments end, and this answers the credentials of one last payment
/// (`None` when the credit still covers the time so far), for the stop call to carry: go's
/// BYOC orchestrator refuses a stop, and keeps the stream running, without 60 s of balance.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PaymentCredentials>, SignerError>")]
pub(crate) struct FinalPayment;

impl Handler<FinalPayment> for PaymentScheduler {
    type Result = ResponseFuture<FinalAnswer>;

    fn handle(&mut self, _: FinalPayment, ctx: &mut Context<Self>) -> Self::Result {
        if self.finishing {
            // One stop, one last payment: a second would pay twice.
            return Box::pin(async {
                Err(SignerError::InvalidRequest("payments are already stopping".into()))
            });
        }
        self.finishing = true;
        let (answer, answered) = oneshot::channel();
        if self.session.is_some() {
            self.pay_final(answer, ctx);
        } else {
            // A recurring payment is in flight; the last one follows it (see `tick`).
            self.final_waiting = Some(answer);
        }
        Box::pin(async move {
            answered.await.unwrap_or_else(|_| {
                Err(SignerError::InvalidRequest(
                    "the payment scheduler stopped before the last payment".into(),
                ))
            })
        })
    }
}

/// Credentials for a payment that a job call carries (a BYOC update, paid as go's gateway pays
/// every call it sends), from the scheduler's own session so the signer's state stays one
/// chain. `None` when a recurring payment is in flight (it tops the balance up anyway), when
/// the credit still covers the time so far, or once payments are stopping.
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<PaymentCredentials>, SignerError>")]
pub(crate) struct CallPayment;

impl Handler<CallPayment> for PaymentScheduler {
    type Result = ResponseFuture<FinalAnswer>;

    fn handle(&mut self, _: CallPayment, ctx: &mut Context<Self>) -> Self::Result {
        let session = if self.finishing { None } else { self.session.take() };
        let Some(session) = session else {
            return Box::pin(async { Ok(None) });
        };
        let (answer, answered) = oneshot::channel();
        ctx.spawn(payment_if_due(session).into_actor(self).map(|(result, session), act, ctx| {
            act.session = Some(session);
            let _ = answer.send(result);
            // A stop that came meanwhile waited for the session.
            if let Some(waiting) = act.final_waiting.take() {
                act.pay_final(waiting, ctx);
            }
        }));
        Box::pin(async move { answered.await.unwrap_or(Ok(None)) })
    }
}

/// Pay right away (outside the timer), e.g. before a long pause.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct PayNow;

impl Handler<PayNow> for PaymentScheduler {
    type Result = ();
    fn handle(&mut self, _: PayNow, ctx: &mut Context<Self>) {
        self.tick(ctx);
    }
}

enum PayOutcome {
    Paid {
        balance: Option<i64>,
    },
    Skipped,
    Failed(String),
    Fatal(String),
    /// A live-runner session's payment URL is gone (404).
    Released,
}

/// The next payment of `session` (`None` when the signer says the credit still covers the
/// time so far), and the session back.
async fn payment_if_due(mut session: PaymentSession) -> (FinalAnswer, PaymentSession) {
    let result = match session.next_payment().await {
        Ok(creds) => Ok(Some(creds)),
        Err(SignerError::SkipCycle) => Ok(None),
        Err(e) => Err(e),
    };
    (result, session)
}

/// One recurring payment with `session`, which it hands back.
async fn pay_once(
    mut session: PaymentSession,
    target: PaymentTarget,
    http: reqwest::Client,
) -> (PayOutcome, PaymentSession) {
    let outcome = pay_with(&mut session, &target, &http).await;
    (outcome, session)
}

async fn pay_with(
    session: &mut PaymentSession,
    target: &PaymentTarget,
    http: &reqwest::Client,
) -> PayOutcome {
    let creds = match session.next_payment().await {
        Ok(c) => c,
        Err(SignerError::SkipCycle) => return PayOutcome::Skipped,
        Err(e) if e.is_retryable() => return PayOutcome::Failed(e.to_string()),
        Err(e) => return PayOutcome::Fatal(e.to_string()),
    };
    let (url, extra) = match target {
        PaymentTarget::Lv2v { orchestrator } => {
            (format!("{}{}", orchestrator.trim_end_matches('/'), jobs::PAYMENT_PATH), None)
        }
        PaymentTarget::Byoc { orchestrator, job_header } => (
            format!("{}{}", orchestrator.trim_end_matches('/'), jobs::STREAM_PAYMENT_PATH),
            Some(job_header.clone()),
        ),
        PaymentTarget::RunnerSession { payment_url } => (payment_url.clone(), None),
    };
    let mut req = http
        .post(&url)
        .timeout(JSON_CALL_TIMEOUT)
        .header(jobs::HEADER_PAYMENT, &creds.payment)
        .header(jobs::HEADER_SEGMENT, &creds.segment);
    if let Some(h) = extra {
        req = req.header(jobs::HEADER_JOB, h);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return PayOutcome::Failed(format!("payment POST failed: {}", describe(&e))),
    };
    let status = resp.status().as_u16();
    let balance = header_str(&resp, jobs::HEADER_BALANCE).and_then(|b| b.trim().parse::<i64>().ok());
    let body = read_body_capped(resp, MAX_RESPONSE_BYTES).await.unwrap_or_default();
    if status >= 500 || status == 408 || status == 429 {
        return PayOutcome::Failed(format!("orchestrator answered HTTP {status}"));
    }
    // go's BYOC orchestrator answers 400 to every setup error of a payment, including a
    // balance still short of 60 s after it credited this one; go's gateway keeps paying. We
    // retry too, bounded by `MAX_FAILED_CYCLES`. A 404 or 410 means the stream is gone.
    if matches!(target, PaymentTarget::Byoc { .. }) && matches!(status, 400 | 402) {
        let message = gateway_core::error::body_excerpt(&body, 300);
        return PayOutcome::Failed(format!("orchestrator answered HTTP {status}: {message}"));
    }
    if matches!(target, PaymentTarget::RunnerSession { .. }) && status == 404 {
        return PayOutcome::Released;
    }
    if status >= 400 {
        let err = JobError::Http {
            status,
            endpoint: url.rsplit('/').next().unwrap_or_default().to_owned(),
            message: gateway_core::error::body_excerpt(&body, 300),
        };
        return PayOutcome::Fatal(err.to_string());
    }
    // Both answer fresh orchestrator info (new ticket parameters) to pay the next time with.
    if matches!(target, PaymentTarget::Lv2v { .. } | PaymentTarget::RunnerSession { .. }) {
        if let Ok(PaymentResult { info: Some(info) }) = PaymentResult::decode(body.as_ref()) {
            session.update_info(info);
        }
    }
    PayOutcome::Paid { balance }
}
