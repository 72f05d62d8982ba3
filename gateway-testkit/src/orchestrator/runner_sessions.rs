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
//! - `POST /apps/{id}/session/{sid}/payment` credits the session and answers a protobuf
//!   `PaymentResult`; `POST …/stop` releases it (204, also for an unknown session).
//! - The runner hears of each session on its O2R channel: `{"event":"reserved"|"released",
//!   "session","timestamp"}`.

use std::time::{Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use gateway_core::lp_rpc::{OrchestratorInfo, PaymentResult, PriceInfo};
use gateway_core::runners::MODE_PERSISTENT;
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::runners::{base32_lower, derive_secret, json_ok, wei_price};
use super::{header, http_error, Inner, LocalOrchestrator, PaymentRoute, Reject};
use crate::tickets::fixed_bytes;

use gateway_core::runners::{PaymentChallenge, SessionReserved, HEADER_PAYER_ADDRESS};

/// A session a runner holds.
pub(super) struct RunnerSession {
    pub(super) id: String,
    /// Ends its accounting.
    pub(super) end: CancellationToken,
}

/// What a reservation needs to know of its runner.
struct RunnerTerms {
    persistent: bool,
    /// Whole wei per second (or per request); `None` offchain.
    price_wei: Option<i64>,
}

impl LocalOrchestrator {
    fn runner_terms(&self, runner_id: &str) -> Option<RunnerTerms> {
        self.expire_runners();
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let r = runners.get(runner_id).filter(|r| matches!(r.request.status.as_str(), "" | "ready"))?;
        let price_wei = (!self.inner.config.offchain)
            .then(|| wei_price(&r.request.price_info, self.inner.config.usd_per_eth))
            .flatten()
            .and_then(|p| p.price_text().parse().ok());
        Some(RunnerTerms { persistent: r.request.mode == MODE_PERSISTENT, price_wei })
    }

    /// Adds `session_id` to the runner and tells the runner; `Err` with go's status when it
    /// cannot.
    fn reserve_session(&self, runner_id: &str, session_id: &str) -> Result<CancellationToken, Reject> {
        let mut runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = runners.get_mut(runner_id) else {
            return Err(Reject(StatusCode::NOT_FOUND, "runner not found".into()));
        };
        if r.sessions.iter().any(|s| s.id == session_id) {
            return Err(Reject(StatusCode::CONFLICT, "session already exists".into()));
        }
        if r.sessions.len() as i64 >= r.request.capacity {
            return Err(Reject(StatusCode::SERVICE_UNAVAILABLE, "runner at capacity".into()));
        }
        let end = CancellationToken::new();
        r.sessions.push(RunnerSession { id: session_id.to_owned(), end: end.clone() });
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
            tokio::spawn(o2r_event(
                self.clone(),
                r.o2r.channel_name.clone(),
                "released",
                session_id.to_owned(),
            ));
        }
        true
    }

    fn has_runner_session(&self, runner_id: &str, session_id: &str) -> bool {
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.get(runner_id).is_some_and(|r| r.sessions.iter().any(|s| s.id == session_id))
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
    if !terms.persistent {
        return http_error(StatusCode::BAD_REQUEST, "only persistent runners have sessions");
    }
    let session_id = match terms.price_wei {
        None => {
            let id = format!("session_{}", base32_lower(&rand::random::<[u8; 5]>()));
            if let Err(r) = orch.reserve_session(&runner_id, &id) {
                return r.into_response();
            }
            id
        }
        Some(price) => match reserve_paid(&orch, &runner_id, price, &headers) {
            Ok(id) => id,
            Err(r) => return *r,
        },
    };
    let control_url = format!("{}/apps/{runner_id}/session/{session_id}", orch.inner.service_uri);
    json_ok(&SessionReserved { app_url: format!("{control_url}/app"), control_url, session_id })
}

/// go's `reservePaidLiveRunnerSession` for a per-second price; a refusal is the whole answer
/// (a 402 challenge, or go's error).
fn reserve_paid(
    orch: &LocalOrchestrator,
    runner_id: &str,
    price: i64,
    headers: &HeaderMap,
) -> Result<String, Box<Response>> {
    let inner = &orch.inner;
    let refuse = |r: Reject| Box::new(r.into_response());
    if header(headers, gateway_core::jobs::HEADER_PAYMENT).is_none()
        && header(headers, gateway_core::jobs::HEADER_SEGMENT).is_none()
    {
        return Err(Box::new(challenge(orch, runner_id, price, headers)));
    }
    let payment = Inner::decode_payment(headers).map_err(refuse)?;
    let sender = fixed_bytes(&payment.sender);
    let seg = inner.check_segment(headers, &sender).map_err(refuse)?;
    let manifest = String::from_utf8_lossy(&seg.manifest_id).into_owned();
    if seg.auth_token.as_ref().map(|t| t.session_id.as_str()) != Some(manifest.as_str()) {
        return Err(refuse(Reject(StatusCode::FORBIDDEN, "mismatched manifest and auth token".into())));
    }
    let end = orch.reserve_session(runner_id, &manifest).map_err(refuse)?;
    if let Err(r) = inner.process_payment(&payment, &manifest, PaymentRoute::RunnerSession) {
        orch.release_runner_session(runner_id, &manifest);
        return Err(refuse(Reject(StatusCode::BAD_REQUEST, r.1)));
    }
    tokio::spawn(account(orch.clone(), runner_id.to_owned(), manifest.clone(), sender, price, end));
    Ok(manifest)
}

/// go's `runnerChallenge`: 402 with what the payer needs to pay this session.
fn challenge(orch: &LocalOrchestrator, runner_id: &str, price: i64, headers: &HeaderMap) -> Response {
    let inner = &orch.inner;
    let payer = header(headers, HEADER_PAYER_ADDRESS).and_then(gateway_core::eth::parse_address);
    let Some(sender) = payer else {
        let body =
            serde_json::json!({ "error": { "message": "invalid live runner payment signer address" } });
        return (StatusCode::PAYMENT_REQUIRED, [("content-type", "application/json")], body.to_string())
            .into_response();
    };
    let price_info = PriceInfo { price_per_unit: price, pixels_per_unit: 1, ..Default::default() };
    let auth_token = inner.auth_token(Some(hex::encode(rand::random::<[u8; 4]>())));
    let manifest_id = auth_token.session_id.clone();
    let info = OrchestratorInfo {
        transcoder: inner.service_uri.clone(),
        ticket_params: (!inner.config.offchain).then(|| inner.ticket_params(&sender, &price_info)),
        price_info: Some(price_info),
        address: inner.key.address().to_vec(),
        auth_token: Some(auth_token),
        ..Default::default()
    };
    let answer = PaymentChallenge {
        payment_params: base64::engine::general_purpose::STANDARD.encode(info.encode_to_vec()),
        orchestrator: inner.service_uri.clone(),
        payment_url: format!("{}/apps/{runner_id}/session/{manifest_id}/payment", inner.service_uri),
        manifest_id,
    };
    (
        StatusCode::PAYMENT_REQUIRED,
        [("content-type", "application/json")],
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
        .into_response()
}

/// Debits the session's time every accounting interval; releases it once the balance cannot
/// cover the next interval (go's live payment processor failing `AccountPayment`).
async fn account(
    orch: LocalOrchestrator,
    runner_id: String,
    session_id: String,
    sender: [u8; 20],
    price: i64,
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
        let fee = last.elapsed().as_secs_f64() * inner.config.usage_time_scale * price as f64;
        last = Instant::now();
        if orch.balance(&sender, &session_id) < fee {
            tracing::info!(session_id, "releasing live runner session: insufficient balance");
            inner.counters.stopped_for_payment.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            orch.release_runner_session(&runner_id, &session_id);
            return;
        }
        inner.debit(sender, &session_id, fee);
    }
}

/// `POST /apps/{id}/session/{sid}/payment`.
pub(super) async fn payment(
    State(orch): State<LocalOrchestrator>,
    Path((runner_id, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let inner = &orch.inner;
    if !orch.has_runner_session(&runner_id, &session_id) {
        return http_error(StatusCode::NOT_FOUND, "session not found");
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

/// Where a session's app calls go, and the token the runner checks its callbacks with.
struct ProxyTarget {
    runner_url: String,
    session_token: String,
}

impl LocalOrchestrator {
    fn proxy_target(&self, runner_id: &str, session_id: &str) -> Option<ProxyTarget> {
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let r = runners.get(runner_id).filter(|r| r.sessions.iter().any(|s| s.id == session_id))?;
        Some(ProxyTarget {
            runner_url: r.request.runner_url.clone(),
            session_token: derive_secret(&r.seed, &format!("session:{session_id}")),
        })
    }
}

/// `/apps/{id}/session/{sid}/app` without the slash: go's mux redirects to `…/app/`.
pub(super) async fn app_redirect(uri: Uri) -> Response {
    let location = format!("{}/", uri.path());
    (StatusCode::MOVED_PERMANENTLY, [("location", location)]).into_response()
}

/// `ANY /apps/{id}/session/{sid}/app/` (no path).
pub(super) async fn proxy_root(
    orch: State<LocalOrchestrator>,
    Path((runner_id, session_id)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    proxy(orch, Path((runner_id, session_id, String::new())), method, uri, headers, body).await
}

/// `ANY /apps/{id}/session/{sid}/app/{path...}`: go's `proxyLiveRunner`, a reverse proxy to
/// the runner's URL path joined with `path` (the query kept) that adds the session headers;
/// 404 for an unknown session, 502 when the runner cannot be reached. The answer is relayed
/// whole (go streams it).
pub(super) async fn proxy(
    State(orch): State<LocalOrchestrator>,
    Path((runner_id, session_id, path)): Path<(String, String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    let Some(target) = orch.proxy_target(&runner_id, &session_id) else {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    };
    let Ok(mut url) = url::Url::parse(&target.runner_url) else {
        return http_error(StatusCode::BAD_GATEWAY, "invalid runner_url");
    };
    let joined = format!("{}/{}", url.path().trim_end_matches('/'), path.trim_start_matches('/'));
    url.set_path(&joined);
    url.set_query(uri.query());
    let control = format!("{}/runner/{runner_id}/session/{session_id}", orch.inner.service_uri);
    let mut req = proxy_client().request(method, url);
    for (name, value) in headers.iter() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            req = req.header(name, value);
        }
    }
    let answer = req
        .header("Livepeer-Runner-Route", &runner_id)
        .header("Livepeer-Session-Id", &session_id)
        .header("Livepeer-Session-Token", &target.session_token)
        .header("Livepeer-Session-Control", control)
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return http_error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut resp = (status, bytes).into_response();
            if let Some(ct) = content_type {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(e) => http_error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

/// The proxy's client: plain HTTP and TLS to runners alike (a test double trusts any).
fn proxy_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .no_proxy()
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
        .clone()
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
