//! Live-runner sessions on a persistent runner, answered as go-livepeer master does
//! (`server/ai_http.go` `ReserveLiveRunnerSession`, `reservePaidLiveRunnerSession`,
//! `runnerChallenge`, `PaymentForLiveRunnerSession`, `StopLiveRunnerSession`;
//! `ai/runner/live_runner.go` `ReserveSession`, `releaseSessionLocked`):
//!
//! - `POST /apps/{id}/session` without payment headers on a priced runner is a 402 challenge:
//!   `{payment_params, orchestrator, manifest_id, payment_url}`, the params being the base64
//!   `OrchestratorInfo` (ticket params for the `Livepeer-Payer-Address` sender, the runner's wei
//!   price per 1 unit, an auth token whose session id is the manifest id to pay under). Paid,
//!   the session id is that manifest id; the payment is credited; time is then debited every
//!   `lv2v_accounting_interval` and the session released when the balance runs out. Offchain
//!   (or free), a session is reserved at once.
//!   A `fixed` price is paid once, for one unit, at reservation: no debit over time, and a
//!   follow-up payment is refused (409). A `720p-pixel-seconds` price is debited per second of
//!   720p30 pixels.
//! - `POST /apps/{id}/session/{sid}/payment` credits the session and answers a protobuf
//!   `PaymentResult`; `POST …/stop` releases it (204, also for an unknown session).
//! - `POST /refresh-payment` (`server/rpc.go` `RefreshPayment`) hands a payer fresh payment
//!   params for a session whose price its first payment fixed (after a signer's 480).
//! - The runner hears of each session on its O2R channel: `{"event":"reserved"|"released",
//!   "session","timestamp"}`.

use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use gateway_core::lp_rpc::{OrchestratorInfo, PaymentResult, PriceInfo};
use gateway_core::runners::MODE_PERSISTENT;
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::runners::{base32_lower, json_ok, wei_price, RunnerSession};
use super::{header, http_error, Inner, LocalOrchestrator, PaymentRoute, Reject};
use crate::tickets::fixed_bytes;

use gateway_core::runners::{PaymentChallenge, SessionReserved, HEADER_PAYER_ADDRESS};

/// What a reservation needs to know of its runner.
pub(super) struct RunnerTerms {
    pub(super) mode: String,
    /// The orchestrator's price; `None` offchain.
    pub(super) price: Option<RunnerPrice>,
}

/// A runner's price in whole wei, per the unit it was registered with.
#[derive(Debug, Clone, Copy)]
pub(super) struct RunnerPrice {
    wei: i64,
    unit: PriceUnit,
}

/// What a runner charges for (go's `preparePaymentProcessor` units, and `fixed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PriceUnit {
    Second,
    /// A pixel of 720p30 video per second (go's LV2V payment processor).
    Pixel720pSecond,
    /// One request or session.
    Fixed,
}

impl PriceUnit {
    fn from_discovery(unit: &str) -> PriceUnit {
        match unit {
            "fixed" => PriceUnit::Fixed,
            "720p-pixel-seconds" => PriceUnit::Pixel720pSecond,
            _ => PriceUnit::Second,
        }
    }

    /// Units in one second of a session.
    fn per_second(self) -> f64 {
        match self {
            PriceUnit::Pixel720pSecond => 1280.0 * 720.0 * 30.0,
            _ => 1.0,
        }
    }
}

impl LocalOrchestrator {
    pub(super) fn runner_terms(&self, runner_id: &str) -> Option<RunnerTerms> {
        self.expire_runners();
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let r = runners.get(runner_id).filter(|r| matches!(r.request.status.as_str(), "" | "ready"))?;
        let price = (!self.inner.config.offchain)
            .then(|| wei_price(&r.request.price_info, self.inner.config.usd_per_eth))
            .flatten()
            .and_then(|p| {
                let wei = p.price_text().parse().ok()?;
                Some(RunnerPrice { wei, unit: PriceUnit::from_discovery(&p.unit) })
            });
        Some(RunnerTerms { mode: r.request.mode.clone(), price })
    }

    /// Adds `session_id` to the runner and tells the runner; `Err` with go's status when it
    /// cannot.
    fn reserve_session(
        &self,
        runner_id: &str,
        session_id: &str,
        fixed: bool,
    ) -> Result<CancellationToken, Reject> {
        let mut runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = runners.get_mut(runner_id) else {
            return Err(Reject(StatusCode::NOT_FOUND, "runner not found".into()));
        };
        if r.sessions.iter().any(|s| s.id == session_id) {
            return Err(Reject(StatusCode::CONFLICT, "session already exists".into()));
        }
        if r.sessions.len() as i64 >= r.request.capacity {
            return Err(Reject(StatusCode::SERVICE_UNAVAILABLE, "no capacity available for runner".into()));
        }
        let end = CancellationToken::new();
        r.sessions.push(RunnerSession {
            id: session_id.to_owned(),
            end: end.clone(),
            fixed,
            channels: Vec::new(),
            proxies: Vec::new(),
        });
        tokio::spawn(o2r_event(self.clone(), r.o2r.channel_name.clone(), "reserved", session_id.to_owned()));
        Ok(end)
    }

    /// Releases a session (go's `releaseSessionLocked`); `false` when the runner is unknown.
    pub(super) fn release_runner_session(&self, runner_id: &str, session_id: &str) -> bool {
        let mut runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = runners.get_mut(runner_id) else { return false };
        if let Some(i) = r.sessions.iter().position(|s| s.id == session_id) {
            let session = r.sessions.remove(i);
            session.end.cancel();
            for channel in &session.channels {
                self.inner.trickle.close_channel(&channel.channel_name);
            }
            tokio::spawn(o2r_event(
                self.clone(),
                r.o2r.channel_name.clone(),
                "released",
                session_id.to_owned(),
            ));
        }
        true
    }

    /// Whether the session is fixed-price; `None` when there is no such session.
    fn runner_session_fixed(&self, runner_id: &str, session_id: &str) -> Option<bool> {
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.get(runner_id)?.sessions.iter().find(|s| s.id == session_id).map(|s| s.fixed)
    }

    /// Reserves a session for a call on `runner_id`: at once when free, else paid from the
    /// request's headers (the whole answer when refused: a 402 challenge, or go's error).
    pub(super) fn reserve_for(
        &self,
        runner_id: &str,
        terms: &RunnerTerms,
        headers: &HeaderMap,
    ) -> Result<(String, CancellationToken), Box<Response>> {
        match terms.price {
            None => {
                let id = format!("session_{}", base32_lower(&rand::random::<[u8; 5]>()));
                let end =
                    self.reserve_session(runner_id, &id, false).map_err(|r| Box::new(r.into_response()))?;
                Ok((id, end))
            }
            Some(price) => reserve_paid(self, runner_id, price, headers),
        }
    }

    /// Sessions runner `runner_id` holds now.
    pub fn runner_sessions(&self, runner_id: &str) -> Vec<String> {
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.get(runner_id).map(|r| r.sessions.iter().map(|s| s.id.clone()).collect()).unwrap_or_default()
    }
}

/// `POST /apps/{id}/session`.
pub(super) async fn reserve(
    State(orch): State<LocalOrchestrator>,
    Path(runner_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    let Some(terms) = orch.runner_terms(&runner_id) else {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    };
    if terms.mode != MODE_PERSISTENT {
        return http_error(StatusCode::BAD_REQUEST, "only persistent runners have sessions");
    }
    let session_id = match orch.reserve_for(&runner_id, &terms, &headers) {
        Ok((id, _)) => id,
        Err(r) => return *r,
    };
    let control_url = format!("{}/apps/{runner_id}/session/{session_id}", orch.inner.service_uri);
    json_ok(&SessionReserved { app_url: format!("{control_url}/app"), control_url, session_id })
}

/// go's `reservePaidLiveRunnerSession`; a refusal is the whole answer (a 402 challenge, or go's
/// error).
fn reserve_paid(
    orch: &LocalOrchestrator,
    runner_id: &str,
    price: RunnerPrice,
    headers: &HeaderMap,
) -> Result<(String, CancellationToken), Box<Response>> {
    let inner = &orch.inner;
    let refuse = |r: Reject| Box::new(r.into_response());
    if header(headers, gateway_core::jobs::HEADER_PAYMENT).is_none()
        && header(headers, gateway_core::jobs::HEADER_SEGMENT).is_none()
    {
        return Err(Box::new(challenge(orch, runner_id, price.wei, headers)));
    }
    let payment = Inner::decode_payment(headers).map_err(refuse)?;
    let sender = fixed_bytes(&payment.sender);
    let seg = inner.check_segment(headers, &sender).map_err(refuse)?;
    let manifest = String::from_utf8_lossy(&seg.manifest_id).into_owned();
    if seg.auth_token.as_ref().map(|t| t.session_id.as_str()) != Some(manifest.as_str()) {
        return Err(refuse(Reject(StatusCode::FORBIDDEN, "mismatched manifest and auth token".into())));
    }
    let fixed = price.unit == PriceUnit::Fixed;
    if fixed {
        let expected = payment.expected_price.as_ref();
        if expected.map(|p| (p.price_per_unit, p.pixels_per_unit)) != Some((price.wei, 1)) {
            return Err(refuse(Reject(
                StatusCode::BAD_REQUEST,
                "payment price does not match live runner price".into(),
            )));
        }
    }
    let end = orch.reserve_session(runner_id, &manifest, fixed).map_err(refuse)?;
    if let Err(r) = inner.process_payment(&payment, &manifest, PaymentRoute::RunnerSession) {
        orch.release_runner_session(runner_id, &manifest);
        return Err(refuse(Reject(StatusCode::BAD_REQUEST, r.1)));
    }
    if fixed {
        // go's `AccountPayment` of one unit: refused when the payment does not cover it.
        let balance = orch.balance(&sender, &manifest);
        if balance < price.wei as f64 {
            orch.release_runner_session(runner_id, &manifest);
            let message =
                format!("insufficient balance, mid={manifest}, fee={}, balance={balance:.0}", price.wei);
            return Err(refuse(Reject(StatusCode::BAD_REQUEST, message)));
        }
        inner.debit(sender, &manifest, price.wei as f64);
    } else {
        let debit = Debit { sender, wei_per_second: price.wei as f64 * price.unit.per_second() };
        tokio::spawn(account(orch.clone(), runner_id.to_owned(), manifest.clone(), debit, end.clone()));
    }
    Ok((manifest, end))
}

/// What a metered session is charged.
struct Debit {
    sender: [u8; 20],
    wei_per_second: f64,
}

/// go's `runnerChallenge`: 402 with what the payer needs to pay this session.
fn challenge(orch: &LocalOrchestrator, runner_id: &str, price: i64, headers: &HeaderMap) -> Response {
    let inner = &orch.inner;
    let payer = header(headers, HEADER_PAYER_ADDRESS).and_then(gateway_core::eth::parse_address);
    let Some(sender) = payer else {
        return json_error(StatusCode::PAYMENT_REQUIRED, "invalid live runner payment signer address");
    };
    let price_info = PriceInfo { price_per_unit: price, pixels_per_unit: 1, ..Default::default() };
    let info = payment_info(inner, &sender, price_info, hex::encode(rand::random::<[u8; 4]>()));
    let manifest_id = info.auth_token.as_ref().map(|t| t.session_id.clone()).unwrap_or_default();
    let payment_url = format!("{}/apps/{runner_id}/session/{manifest_id}/payment", inner.service_uri);
    let body = challenge_body(inner, &info, payment_url);
    (StatusCode::PAYMENT_REQUIRED, [("content-type", "application/json")], body).into_response()
}

/// go's `runnerOrchInfo` (and `RefreshPayment`'s): what `sender` pays `manifest_id` against.
pub(super) fn payment_info(
    inner: &Inner,
    sender: &[u8; 20],
    price_info: PriceInfo,
    manifest_id: String,
) -> OrchestratorInfo {
    OrchestratorInfo {
        transcoder: inner.service_uri.clone(),
        ticket_params: (!inner.config.offchain).then(|| inner.ticket_params(sender, &price_info)),
        price_info: Some(price_info),
        address: inner.key.address().to_vec(),
        auth_token: Some(inner.auth_token(Some(manifest_id))),
        ..Default::default()
    }
}

/// go's `marshalLivePaymentChallengeResponse`.
pub(super) fn challenge_body(inner: &Inner, info: &OrchestratorInfo, payment_url: String) -> Vec<u8> {
    let answer = PaymentChallenge {
        payment_params: base64::engine::general_purpose::STANDARD.encode(info.encode_to_vec()),
        orchestrator: inner.service_uri.clone(),
        manifest_id: info.auth_token.as_ref().map(|t| t.session_id.clone()).unwrap_or_default(),
        payment_url,
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

/// go's `respondJsonError`: `{"error": {"message"}}` as JSON.
pub(super) fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": { "message": message } });
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

/// `POST /refresh-payment` `{"sender", "manifest_id"}`: go's `RefreshPayment`, fresh params at
/// the session's fixed price; the answer names `{orchestrator}/payment`, which clients ignore
/// (the session's own payment URL stays theirs).
pub(super) async fn refresh_payment(State(orch): State<LocalOrchestrator>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct Refresh {
        #[serde(default)]
        sender: String,
        #[serde(default)]
        manifest_id: String,
    }
    let req: Refresh = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let Some(sender) = gateway_core::eth::parse_address(&req.sender) else {
        return json_error(StatusCode::BAD_REQUEST, "invalid sender");
    };
    let manifest = req.manifest_id.trim();
    if manifest.is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "missing manifest_id");
    }
    let inner = &orch.inner;
    let Some(price) = inner.fixed_price(&sender, manifest) else {
        return json_error(StatusCode::CONFLICT, "fixed price not found for session");
    };
    let info = payment_info(inner, &sender, price, manifest.to_owned());
    let body = challenge_body(inner, &info, format!("{}/payment", inner.service_uri));
    inner.counters.payment_refreshes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ([("content-type", "application/json")], body).into_response()
}

/// Debits the session's time every accounting interval; releases it once the balance cannot
/// cover the next interval (go's live payment processor failing `AccountPayment`).
async fn account(
    orch: LocalOrchestrator,
    runner_id: String,
    session_id: String,
    debit: Debit,
    end: CancellationToken,
) {
    let inner = &orch.inner;
    let interval = inner.config.lv2v_accounting_interval;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = end.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let fee = last.elapsed().as_secs_f64() * inner.config.usage_time_scale * debit.wei_per_second;
        last = Instant::now();
        if orch.balance(&debit.sender, &session_id) < fee {
            tracing::info!(session_id, "releasing live runner session: insufficient balance");
            inner.counters.stopped_for_payment.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            orch.release_runner_session(&runner_id, &session_id);
            return;
        }
        inner.debit(debit.sender, &session_id, fee);
    }
}

/// `POST /apps/{id}/session/{sid}/payment`.
pub(super) async fn payment(
    State(orch): State<LocalOrchestrator>,
    Path((runner_id, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let inner = &orch.inner;
    match orch.runner_session_fixed(&runner_id, &session_id) {
        None => return http_error(StatusCode::NOT_FOUND, "session not found"),
        Some(true) => {
            return http_error(
                StatusCode::CONFLICT,
                "fixed-price live runner sessions do not accept follow-up payments",
            )
        }
        Some(false) => {}
    }
    let answered = Inner::decode_payment(&headers).and_then(|payment| {
        let sender = fixed_bytes(&payment.sender);
        let seg = inner.check_segment(&headers, &sender)?;
        if seg.manifest_id != session_id.as_bytes() {
            return Err(super::Reject(
                StatusCode::FORBIDDEN,
                "mismatched session and payment manifest".into(),
            ));
        }
        let info = inner.orchestrator_info(&sender, seg.capabilities.as_ref(), seg.auth_token.clone());
        inner.process_payment(&payment, &session_id, PaymentRoute::RunnerSession)?;
        Ok(info)
    });
    match answered {
        Ok(info) => {
            let body = PaymentResult { info: Some(info) }.encode_to_vec();
            ([("content-type", "application/octet-stream")], body).into_response()
        }
        Err(r) => r.into_response(),
    }
}

/// `POST /apps/{id}/session/{sid}/stop`: 204, no credentials, as in go.
pub(super) async fn stop(
    State(orch): State<LocalOrchestrator>,
    Path((runner_id, session_id)): Path<(String, String)>,
) -> Response {
    if !orch.release_runner_session(&runner_id, &session_id) {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    }
    StatusCode::NO_CONTENT.into_response()
}

/// One O2R message: `{"event", "session", "timestamp"}`.
async fn o2r_event(orch: LocalOrchestrator, channel: String, event: &'static str, session: String) {
    let message = serde_json::json!({
        "event": event,
        "session": session,
        "timestamp": super::training::rfc3339(SystemTime::now()),
    });
    if let Some(mut publisher) = orch.inner.trickle.local_publisher(&channel) {
        let _ = publisher.write_segment(Bytes::from(message.to_string())).await;
    }
}
