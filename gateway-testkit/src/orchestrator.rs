//! The orchestrator double: gRPC `GetOrchestrator` and the HTTP job endpoints on one port.
//!
//! It follows go-livepeer's orchestrator (`server/rpc.go`, `server/ai_http.go`, `byoc/*`): it
//! quotes prices per capability and model, issues ticket parameters and HMAC-style auth tokens,
//! checks `Livepeer-Segment` credentials and ticket signatures, keeps balances per (sender,
//! manifest) for LV2V and per (sender, capability) for BYOC, starts the worker doubles behind
//! trickle channels, and stops sessions whose payments stop. Intervals are configurable so
//! tests can run payment-exhaustion scenarios in seconds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use gateway_core::capabilities::{check_compatible, set_bit, Capability, DEFAULT_CAPABILITIES};
use gateway_core::eth::{keccak256, parse_address, parse_hex};
use gateway_core::jobs::{self, EthAddressHeader, JobParameters, JobRequest, LiveVideoToVideoRequest};
use gateway_core::lp_rpc::capabilities::{
    capability_constraints::ModelConstraint, CapabilityConstraints, Constraints,
};
use gateway_core::lp_rpc::orchestrator_server::{Orchestrator as OrchestratorRpc, OrchestratorServer};
use gateway_core::lp_rpc::{
    self, AuthToken, Capabilities, EndTranscodingSessionRequest, EndTranscodingSessionResponse,
    OrchestratorInfo, OrchestratorRequest, Payment, PaymentResult, PingPong, PriceInfo, SegData,
    TicketExpirationParams, TicketParams,
};
use gateway_core::signer::{byoc_job_v1_encoding, SignByocJobRequest};
use gateway_core::trickle::{channel_url, ChannelNames, MIME_JSON, MIME_JSONL, MIME_MPEGTS};
use prost::Message;
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultAction, FaultRules, OrchestratorFault};
use crate::keys::{self, EthKey};
use crate::tickets::{
    be_bytes, block_at, ticket_params_expired, unix_now, AUTH_TOKEN_VALIDITY_SECS,
    TICKET_PARAMS_VALIDITY_BLOCKS,
};
use crate::trickle_server::TrickleServer;
use crate::workers;

/// Most sender nonces an orchestrator accepts per ticket-params set.
const MAX_NONCES_PER_PARAMS: usize = 600;

/// A capability and model this orchestrator serves, with its price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityOffer {
    /// The capability.
    pub capability: Capability,
    /// Model id (BYOC: the registered capability name).
    pub model: String,
    /// Wei per `pixels_per_unit` units (LV2V: pixels; BYOC: seconds).
    pub price_per_unit: i64,
    /// Units the price covers.
    pub pixels_per_unit: i64,
    /// Whether the model is loaded.
    pub warm: bool,
    /// Concurrent sessions it can run.
    pub capacity: u32,
}

/// How the orchestrator double behaves.
#[derive(Debug, Clone)]
pub struct OrchestratorConfig {
    /// Ethereum key (ticket recipient); random when `None`.
    pub key: Option<EthKey>,
    /// Offchain: no prices, no ticket params, no payments checked.
    pub offchain: bool,
    /// Base (transcoding) price.
    pub price_per_unit: i64,
    /// Base price unit.
    pub pixels_per_unit: i64,
    /// What it serves.
    pub offers: Vec<CapabilityOffer>,
    /// Ticket face value, wei.
    pub ticket_face_value: u128,
    /// Ticket win probability as `1 / win_odds`.
    pub win_odds: u64,
    /// LV2V accounting tick (go-livepeer: 5 s).
    pub lv2v_accounting_interval: Duration,
    /// BYOC debit tick (go-livepeer: 23 s).
    pub byoc_debit_interval: Duration,
    /// BYOC streams need this many seconds of credit to start (go-livepeer: 60).
    pub byoc_min_balance_seconds: u64,
    /// How often workers emit a status event.
    pub event_interval: Duration,
    /// Seconds of usage one real second is billed as (1.0 on a real network); tests raise it
    /// to exhaust a prepaid balance in moments instead of minutes.
    pub usage_time_scale: f64,
    /// Version string advertised in capabilities.
    pub version: String,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            key: None,
            offchain: false,
            price_per_unit: 1,
            pixels_per_unit: 1,
            offers: vec![
                CapabilityOffer {
                    capability: Capability::LiveVideoToVideo,
                    model: "noop".into(),
                    // 1 wei per 1000 pixels: 27,648 wei per second of 720p30.
                    price_per_unit: 1,
                    pixels_per_unit: 1000,
                    warm: true,
                    capacity: 64,
                },
                CapabilityOffer {
                    capability: Capability::Byoc,
                    model: workers::TEXT_REVERSAL.into(),
                    // 100 wei per second.
                    price_per_unit: 100,
                    pixels_per_unit: 1,
                    warm: true,
                    capacity: 64,
                },
            ],
            ticket_face_value: 1_000_000_000,
            win_odds: 1000,
            lv2v_accounting_interval: jobs::LV2V_PAYMENT_INTERVAL,
            byoc_debit_interval: Duration::from_secs(23),
            byoc_min_balance_seconds: jobs::BYOC_MIN_BALANCE_SECONDS,
            event_interval: Duration::from_secs(2),
            usage_time_scale: 1.0,
            version: "0.9.1-local".into(),
        }
    }
}

/// Counters a test can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrchestratorStats {
    /// `GetOrchestrator` calls answered.
    pub get_orchestrator_calls: u64,
    /// LV2V sessions started.
    pub lv2v_sessions_started: u64,
    /// BYOC streams started.
    pub byoc_streams_started: u64,
    /// Payments accepted (start, `/payment`, `/ai/stream/payment`).
    pub payments_accepted: u64,
    /// Tickets accepted.
    pub tickets_accepted: u64,
    /// Sessions or streams stopped because the balance ran out.
    pub stopped_for_payment: u64,
    /// Single-shot BYOC requests served.
    pub requests_served: u64,
    /// Sessions and streams running now.
    pub active_sessions: u64,
}

/// Ticket params we issued and the sender nonces already used with them.
type IssuedParams = (TicketParams, HashSet<u32>);

/// A running job on this orchestrator.
struct Session {
    channels: ChannelNames,
    cancel: CancellationToken,
    offer_index: usize,
}

struct Inner {
    config: OrchestratorConfig,
    key: EthKey,
    secret: [u8; 32],
    service_uri: String,
    trickle: TrickleServer,
    faults: FaultRules,
    /// Balances in wei: (sender, manifest id or capability name).
    balances: Mutex<HashMap<([u8; 20], String), f64>>,
    /// Ticket params we issued, by recipient rand hash, with the nonces seen.
    issued: Mutex<HashMap<Vec<u8>, IssuedParams>>,
    sessions: Mutex<HashMap<String, Session>>,
    in_use: Mutex<HashMap<usize, u32>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    get_orchestrator_calls: AtomicU64,
    lv2v_sessions_started: AtomicU64,
    byoc_streams_started: AtomicU64,
    payments_accepted: AtomicU64,
    tickets_accepted: AtomicU64,
    stopped_for_payment: AtomicU64,
    requests_served: AtomicU64,
}

/// The orchestrator double. Cheap to clone.
#[derive(Clone)]
pub struct LocalOrchestrator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOrchestrator").field("service_uri", &self.inner.service_uri).finish()
    }
}

/// An HTTP error answer in go-livepeer's style (`text/plain`, message and newline).
fn http_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (status, [("content-type", "text/plain; charset=utf-8")], body).into_response()
}

/// A refused request: status and message, rendered like [`http_error`].
#[derive(Debug)]
struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        http_error(self.0, self.1)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl LocalOrchestrator {
    /// An orchestrator reachable at `service_uri` (e.g. `https://127.0.0.1:8935`), serving trickle
    /// channels through `trickle`.
    pub fn new(config: OrchestratorConfig, service_uri: String, trickle: TrickleServer) -> LocalOrchestrator {
        let key = config.key.clone().unwrap_or_else(EthKey::random);
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        LocalOrchestrator {
            inner: Arc::new(Inner {
                config,
                key,
                secret,
                service_uri,
                trickle,
                faults: FaultRules::default(),
                balances: Mutex::default(),
                issued: Mutex::default(),
                sessions: Mutex::default(),
                in_use: Mutex::default(),
                counters: Counters::default(),
            }),
        }
    }

    /// The service URI it advertises.
    pub fn service_uri(&self) -> &str {
        &self.inner.service_uri
    }

    /// Its Ethereum address.
    pub fn address(&self) -> [u8; 20] {
        self.inner.key.address()
    }

    /// The trickle server behind it.
    pub fn trickle(&self) -> &TrickleServer {
        &self.inner.trickle
    }

    /// Adds a fault rule.
    pub fn set_fault(&self, fault: OrchestratorFault) {
        self.inner.faults.add(fault);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.inner.faults.clear();
    }

    /// The balance in wei a sender holds under `key` (LV2V manifest id or BYOC capability).
    pub fn balance(&self, sender: &[u8; 20], key: &str) -> f64 {
        self.inner
            .balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(*sender, key.to_owned()))
            .copied()
            .unwrap_or(0.0)
    }

    /// Counters.
    pub fn stats(&self) -> OrchestratorStats {
        let c = &self.inner.counters;
        OrchestratorStats {
            get_orchestrator_calls: c.get_orchestrator_calls.load(Ordering::Relaxed),
            lv2v_sessions_started: c.lv2v_sessions_started.load(Ordering::Relaxed),
            byoc_streams_started: c.byoc_streams_started.load(Ordering::Relaxed),
            payments_accepted: c.payments_accepted.load(Ordering::Relaxed),
            tickets_accepted: c.tickets_accepted.load(Ordering::Relaxed),
            stopped_for_payment: c.stopped_for_payment.load(Ordering::Relaxed),
            requests_served: c.requests_served.load(Ordering::Relaxed),
            active_sessions: self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
        }
    }

    /// Stops every session (workers end, channels close).
    pub fn stop_all_sessions(&self) {
        let ids: Vec<String> =
            self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        for id in ids {
            self.inner.stop_session(&id);
        }
    }

    /// The axum app: gRPC `Orchestrator` service, job endpoints and the trickle server.
    pub fn router(&self) -> Router {
        let grpc = tonic::service::Routes::new(OrchestratorServer::new(GrpcService(self.clone())))
            .into_axum_router();
        let http = Router::new()
            .route(jobs::LIVE_VIDEO_TO_VIDEO_PATH, post(start_lv2v))
            .route(jobs::PAYMENT_PATH, post(lv2v_payment))
            .route(jobs::PROCESS_TOKEN_PATH, get(process_token))
            .route("/process/request/{*path}", post(process_request))
            .route(jobs::STREAM_START_PATH, post(stream_start))
            .route(jobs::STREAM_PAYMENT_PATH, post(stream_payment))
            .route(jobs::STREAM_UPDATE_PATH, post(stream_update))
            .route(jobs::STREAM_STOP_PATH, post(stream_stop))
            .with_state(self.clone());
        grpc.merge(http)
            .merge(self.inner.trickle.router())
            .layer(axum::middleware::from_fn_with_state(self.clone(), fault_layer))
    }
}

/// Applies fault rules before any route runs.
async fn fault_layer(
    State(orch): State<LocalOrchestrator>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match orch.inner.faults.take(req.uri().path()) {
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        Some(FaultAction::Status(status)) if req.uri().path().starts_with("/net.Orchestrator/") => {
            let _ = status;
            tonic::Status::unavailable("injected fault").into_http()
        }
        Some(FaultAction::Status(status)) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            http_error(code, format!("injected fault: HTTP {status}"))
        }
        None => next.run(req).await,
    }
}

impl Inner {
    fn offer_for(&self, capability: Capability, model: &str) -> Option<(usize, &CapabilityOffer)> {
        self.config.offers.iter().enumerate().find(|(_, o)| o.capability == capability && o.model == model)
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities { version: self.config.version.clone(), ..Default::default() };
        for c in DEFAULT_CAPABILITIES {
            set_bit(&mut caps.bitstring, c.id());
        }
        let in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        let mut per: HashMap<u32, CapabilityConstraints> = HashMap::new();
        for (i, o) in self.config.offers.iter().enumerate() {
            let id = o.capability.id();
            set_bit(&mut caps.bitstring, id);
            let used = in_use.get(&i).copied().unwrap_or(0);
            *caps.capacities.entry(id).or_insert(0) += o.capacity;
            per.entry(id).or_default().models.insert(
                o.model.clone(),
                ModelConstraint {
                    warm: o.warm,
                    capacity: o.capacity.saturating_sub(used),
                    runner_version: self.config.version.clone(),
                    capacity_in_use: used,
                },
            );
        }
        caps.constraints = Some(Constraints { min_version: String::new(), per_capability: per });
        caps
    }

    fn auth_token(&self, session_id: Option<String>) -> AuthToken {
        let session_id = session_id.unwrap_or_else(|| hex::encode(rand::random::<[u8; 4]>()));
        let expiration = unix_now() + AUTH_TOKEN_VALIDITY_SECS;
        AuthToken { token: self.auth_mac(&session_id, expiration), session_id, expiration }
    }

    fn auth_mac(&self, session_id: &str, expiration: i64) -> Vec<u8> {
        let mut m = self.secret.to_vec();
        m.extend_from_slice(session_id.as_bytes());
        m.extend_from_slice(&expiration.to_be_bytes());
        keccak256(&m).to_vec()
    }

    fn check_auth_token(&self, token: Option<&AuthToken>) -> Result<(), String> {
        let t = token.ok_or("missing auth token")?;
        if t.token != self.auth_mac(&t.session_id, t.expiration) {
            return Err("invalid auth token".into());
        }
        if t.expiration < unix_now() {
            return Err("expired auth token".into());
        }
        Ok(())
    }

    fn ticket_params(&self) -> TicketParams {
        let mut seed = [0u8; 16];
        rand::fill(&mut seed);
        let mut rand_input = self.secret.to_vec();
        rand_input.extend_from_slice(&seed);
        let now = unix_now();
        // win_prob = 2^256 / win_odds, as a 32-byte big-endian number.
        let mut win_prob = [0xffu8; 32];
        let odds = u128::from(self.config.win_odds.max(1));
        let top = u128::MAX / odds;
        win_prob[..16].copy_from_slice(&top.to_be_bytes());
        let params = TicketParams {
            recipient: self.key.address().to_vec(),
            face_value: be_bytes(self.config.ticket_face_value),
            win_prob: win_prob.to_vec(),
            recipient_rand_hash: keccak256(&rand_input).to_vec(),
            seed: seed.to_vec(),
            expiration_block: be_bytes(u128::from(block_at(now) + TICKET_PARAMS_VALIDITY_BLOCKS)),
            expiration_params: Some(TicketExpirationParams {
                creation_round: (block_at(now) / 100) as i64,
                creation_round_block_hash: keccak256(&block_at(now).to_be_bytes()).to_vec(),
            }),
        };
        self.issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(params.recipient_rand_hash.clone(), (params.clone(), HashSet::new()));
        params
    }

    /// The price for a request's capabilities: the sum over `capacities` keys with model
    /// constraints (go-livepeer's rule), else the base price.
    fn price_for(&self, caps: Option<&Capabilities>) -> PriceInfo {
        let base = PriceInfo {
            price_per_unit: self.config.price_per_unit,
            pixels_per_unit: self.config.pixels_per_unit,
            ..Default::default()
        };
        let Some(caps) = caps else { return base };
        let Some(constraints) = &caps.constraints else { return base };
        let mut total = 0.0f64;
        let mut single: Option<PriceInfo> = None;
        let mut count = 0;
        for id in caps.capacities.keys() {
            let (Some(cap), Some(models)) = (Capability::from_id(*id), constraints.per_capability.get(id))
            else {
                continue;
            };
            for model in models.models.keys() {
                if let Some((_, o)) = self.offer_for(cap, model) {
                    total += o.price_per_unit as f64 / o.pixels_per_unit.max(1) as f64;
                    count += 1;
                    single = Some(PriceInfo {
                        price_per_unit: o.price_per_unit,
                        pixels_per_unit: o.pixels_per_unit,
                        capability: cap.id(),
                        constraint: model.clone(),
                    });
                }
            }
        }
        match (count, single) {
            (0, _) => base,
            (1, Some(p)) => p,
            _ => PriceInfo {
                price_per_unit: (total * 1_000_000.0).round() as i64,
                pixels_per_unit: 1_000_000,
                ..Default::default()
            },
        }
    }

    fn orchestrator_info(
        &self,
        caps: Option<&Capabilities>,
        auth_token: Option<AuthToken>,
    ) -> OrchestratorInfo {
        let offchain = self.config.offchain;
        OrchestratorInfo {
            transcoder: self.service_uri.clone(),
            ticket_params: (!offchain).then(|| self.ticket_params()),
            price_info: (!offchain).then(|| self.price_for(caps)),
            address: self.key.address().to_vec(),
            capabilities: Some(self.capabilities()),
            auth_token: Some(auth_token.unwrap_or_else(|| self.auth_token(None))),
            hardware: vec![],
            storage: vec![],
            capabilities_prices: if caps.is_none() && !offchain {
                self.config
                    .offers
                    .iter()
                    .map(|o| PriceInfo {
                        price_per_unit: o.price_per_unit,
                        pixels_per_unit: o.pixels_per_unit,
                        capability: o.capability.id(),
                        constraint: o.model.clone(),
                    })
                    .collect()
            } else {
                vec![]
            },
            nodes: vec![],
        }
    }

    /// Decodes and checks `Livepeer-Payment`; credits the tickets' expected value to
    /// `(sender, key)`. Returns the sender (all zeros when the payment is empty).
    fn accept_payment(&self, headers: &HeaderMap, key: &str) -> Result<[u8; 20], Reject> {
        let raw = header(headers, jobs::HEADER_PAYMENT).unwrap_or("");
        let payment: Payment = if raw.trim().is_empty() {
            Payment::default()
        } else {
            lp_rpc::from_base64("payment", raw)
                .map_err(|e| Reject(StatusCode::PAYMENT_REQUIRED, e.to_string()))?
        };
        if payment.ticket_sender_params.is_empty() {
            let sender = payment.sender.as_slice().try_into().unwrap_or([0u8; 20]);
            return Ok(sender);
        }
        if self.config.offchain {
            return Ok(payment.sender.as_slice().try_into().unwrap_or([0u8; 20]));
        }
        let verified = crate::signer::verify_payment(&payment)
            .map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))?;
        let (sender, nonces) = (verified.sender, verified.nonces);
        let params = payment
            .ticket_params
            .as_ref()
            .ok_or_else(|| Reject(StatusCode::BAD_REQUEST, "missing ticket params".into()))?;
        if params.recipient != self.key.address() {
            return Err(Reject(StatusCode::BAD_REQUEST, "invalid ticket recipient".into()));
        }
        if ticket_params_expired(params, unix_now()) {
            return Err(Reject(StatusCode::BAD_REQUEST, "TicketParams expired".into()));
        }
        let ev = {
            let mut issued = self.issued.lock().unwrap_or_else(|e| e.into_inner());
            let Some((ours, seen)) = issued.get_mut(&params.recipient_rand_hash) else {
                return Err(Reject(StatusCode::BAD_REQUEST, "invalid recipientRandHash".into()));
            };
            if ours.face_value != params.face_value || ours.win_prob != params.win_prob {
                return Err(Reject(StatusCode::BAD_REQUEST, "ticket params do not match".into()));
            }
            for n in &nonces {
                if !seen.insert(*n) {
                    return Err(Reject(
                        StatusCode::BAD_REQUEST,
                        "invalid ticket senderNonce: already seen".into(),
                    ));
                }
            }
            if seen.len() > MAX_NONCES_PER_PARAMS {
                return Err(Reject(
                    StatusCode::BAD_REQUEST,
                    "invalid ticket senderNonce: too many values".into(),
                ));
            }
            ours.expected_value_wei()
        };
        *self
            .balances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((sender, key.to_owned()))
            .or_insert(0.0) += ev * nonces.len() as f64;
        self.counters.payments_accepted.fetch_add(1, Ordering::Relaxed);
        self.counters.tickets_accepted.fetch_add(nonces.len() as u64, Ordering::Relaxed);
        Ok(sender)
    }

    /// Decodes and checks `Livepeer-Segment` (403 on failure).
    fn check_segment(&self, headers: &HeaderMap, sender: &[u8; 20]) -> Result<SegData, Reject> {
        let forbidden = |m: String| Reject(StatusCode::FORBIDDEN, m);
        let raw = header(headers, jobs::HEADER_SEGMENT)
            .ok_or_else(|| forbidden("missing Livepeer-Segment".into()))?;
        let seg: SegData =
            lp_rpc::from_base64("segment credentials", raw).map_err(|e| forbidden(e.to_string()))?;
        self.check_auth_token(seg.auth_token.as_ref()).map_err(forbidden)?;
        if !self.config.offchain && sender != &[0u8; 20] && !seg.sig.is_empty() {
            let msg = crate::tickets::seg_data_message(&seg);
            if !keys::verify(&msg, &seg.sig, sender) {
                return Err(forbidden("invalid segment signature".into()));
            }
        }
        if let Some(caps) = &seg.capabilities {
            check_compatible(caps, Some(&self.capabilities()))
                .map_err(|e| forbidden(format!("incompatible capabilities: {e}")))?;
        }
        Ok(seg)
    }

    fn reserve(&self, offer_index: usize) -> bool {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        let used = in_use.entry(offer_index).or_insert(0);
        if *used >= self.config.offers[offer_index].capacity {
            return false;
        }
        *used += 1;
        true
    }

    fn release(&self, offer_index: usize) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(used) = in_use.get_mut(&offer_index) {
            *used = used.saturating_sub(1);
        }
    }

    fn stop_session(&self, id: &str) -> bool {
        let Some(session) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(id) else {
            return false;
        };
        session.cancel.cancel();
        let c = &session.channels;
        for name in [&c.input, &c.output, &c.control, &c.events, &c.data] {
            self.trickle.close_channel(name);
        }
        self.release(session.offer_index);
        true
    }

    fn debit(&self, sender: [u8; 20], key: &str, wei: f64) -> f64 {
        let mut balances = self.balances.lock().unwrap_or_else(|e| e.into_inner());
        let b = balances.entry((sender, key.to_owned())).or_insert(0.0);
        *b -= wei;
        *b
    }
}

/// gRPC side.
struct GrpcService(LocalOrchestrator);

#[tonic::async_trait]
impl OrchestratorRpc for GrpcService {
    async fn get_orchestrator(
        &self,
        request: tonic::Request<OrchestratorRequest>,
    ) -> Result<tonic::Response<OrchestratorInfo>, tonic::Status> {
        let inner = &self.0.inner;
        let req = request.into_inner();
        if !req.address.is_empty() {
            let addr: [u8; 20] = req
                .address
                .as_slice()
                .try_into()
                .map_err(|_| tonic::Status::invalid_argument("invalid address length"))?;
            let text = gateway_core::eth::checksum_address(&addr);
            if !inner.config.offchain && !keys::verify(text.as_bytes(), &req.sig, &addr) {
                return Err(tonic::Status::permission_denied("invalid sig"));
            }
        }
        if let Some(caps) = &req.capabilities {
            if !req.ignore_capacity_check {
                if let Some(per) = caps
                    .constraints
                    .as_ref()
                    .and_then(|c| c.per_capability.get(&Capability::LiveVideoToVideo.id()))
                {
                    let free = per.models.keys().any(|m| {
                        inner.offer_for(Capability::LiveVideoToVideo, m).is_some_and(|(i, o)| {
                            inner
                                .in_use
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get(&i)
                                .copied()
                                .unwrap_or(0)
                                < o.capacity
                        })
                    });
                    if !free {
                        return Err(tonic::Status::unknown(
                            "Invalid orchestrator request: OrchestratorCapped",
                        ));
                    }
                }
            }
        }
        inner.counters.get_orchestrator_calls.fetch_add(1, Ordering::Relaxed);
        Ok(tonic::Response::new(inner.orchestrator_info(req.capabilities.as_ref(), None)))
    }

    async fn end_transcoding_session(
        &self,
        _request: tonic::Request<EndTranscodingSessionRequest>,
    ) -> Result<tonic::Response<EndTranscodingSessionResponse>, tonic::Status> {
        Ok(tonic::Response::new(EndTranscodingSessionResponse {}))
    }

    async fn ping(
        &self,
        request: tonic::Request<PingPong>,
    ) -> Result<tonic::Response<PingPong>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }
}

/// `POST /live-video-to-video`, in go-livepeer's order of checks.
async fn start_lv2v(State(orch): State<LocalOrchestrator>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &orch.inner;
    let req: LiveVideoToVideoRequest = if body.is_empty() {
        LiveVideoToVideoRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return http_error(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")),
        }
    };
    let model = if req.model_id.is_empty() { "noop".to_owned() } else { req.model_id.clone() };
    let Some((offer_index, offer)) = inner.offer_for(Capability::LiveVideoToVideo, &model) else {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    };
    let offer = offer.clone();
    if !inner.reserve(offer_index) {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    }
    let mid = hex::encode(rand::random::<[u8; 4]>());
    // Payment first (402 if undecodable), then credentials (403), then balance (400).
    let sender = match inner.accept_payment(&headers, &mid) {
        Ok(s) => s,
        Err(r) => {
            inner.release(offer_index);
            return r.into_response();
        }
    };
    if let Err(r) = inner.check_segment(&headers, &sender) {
        inner.release(offer_index);
        return r.into_response();
    }
    let ticket_ev = inner.ticket_params().expected_value_wei();
    if !inner.config.offchain && offer.price_per_unit > 0 && orch.balance(&sender, &mid) < ticket_ev.min(1.0)
    {
        inner.release(offer_index);
        return http_error(StatusCode::BAD_REQUEST, "Insufficient balance");
    }
    let channels = ChannelNames::for_stream(&mid);
    inner.trickle.create_channel(&channels.input, MIME_MPEGTS);
    inner.trickle.create_channel(&channels.output, MIME_MPEGTS);
    inner.trickle.create_channel(&channels.control, MIME_JSON);
    inner.trickle.create_channel(&channels.events, MIME_JSON);
    let cancel = CancellationToken::new();
    inner
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(mid.clone(), Session { channels: channels.clone(), cancel: cancel.clone(), offer_index });
    inner.counters.lv2v_sessions_started.fetch_add(1, Ordering::Relaxed);
    let activity = Arc::new(AtomicU64::new(0));
    tokio::spawn(workers::run_lv2v_passthrough(
        inner.trickle.clone(),
        channels.clone(),
        workers::WorkerOptions { event_interval: inner.config.event_interval, pipeline: model.clone() },
        activity.clone(),
        cancel.clone(),
    ));
    tokio::spawn(lv2v_accounting(orch.clone(), mid.clone(), sender, offer, activity, cancel));
    let origin = &inner.service_uri;
    let resp = jobs::LiveVideoToVideoResponse {
        publish_url: channel_url(origin, &channels.input),
        subscribe_url: channel_url(origin, &channels.output),
        control_url: channel_url(origin, &channels.control),
        events_url: channel_url(origin, &channels.events),
        manifest_id: mid,
        request_id: req.gateway_request_id,
    };
    axum::Json(resp).into_response()
}

/// Debits LV2V usage while input arrives; closes the session when the balance cannot cover it.
async fn lv2v_accounting(
    orch: LocalOrchestrator,
    mid: String,
    sender: [u8; 20],
    offer: CapabilityOffer,
    activity: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    let inner = &orch.inner;
    if inner.config.offchain || offer.price_per_unit == 0 {
        cancel.cancelled().await;
        orch.inner.stop_session(&mid);
        return;
    }
    let interval = inner.config.lv2v_accounting_interval;
    let wei_per_pixel = offer.price_per_unit as f64 / offer.pixels_per_unit.max(1) as f64;
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let now_seen = activity.load(Ordering::Relaxed);
        if now_seen == seen {
            continue; // no media, no accounting (go-livepeer is driven by input segments)
        }
        seen = now_seen;
        let fee = interval.as_secs_f64()
            * inner.config.usage_time_scale
            * jobs::LV2V_PIXELS_PER_SECOND as f64
            * wei_per_pixel;
        if orch.balance(&sender, &mid) < fee {
            tracing::info!(mid, "closing LV2V session: insufficient balance");
            inner.counters.stopped_for_payment.fetch_add(1, Ordering::Relaxed);
            break;
        }
        inner.debit(sender, &mid, fee);
    }
    inner.stop_session(&mid);
}

/// `POST /payment`: credit an LV2V session, answer fresh orchestrator info.
async fn lv2v_payment(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let seg = match header(&headers, jobs::HEADER_SEGMENT)
        .map(|s| lp_rpc::from_base64::<SegData>("segment credentials", s))
    {
        Some(Ok(seg)) => seg,
        Some(Err(e)) => return http_error(StatusCode::FORBIDDEN, e.to_string()),
        None => return http_error(StatusCode::FORBIDDEN, "missing Livepeer-Segment"),
    };
    let mid = String::from_utf8_lossy(&seg.manifest_id).into_owned();
    let sender = match inner.accept_payment(&headers, &mid) {
        Ok(s) => s,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = inner.check_segment(&headers, &sender) {
        return r.into_response();
    }
    let info = inner.orchestrator_info(seg.capabilities.as_ref(), seg.auth_token.clone());
    let body = PaymentResult { info: Some(info) }.encode_to_vec();
    ([("content-type", "application/octet-stream")], body).into_response()
}

/// Reads and verifies the `Livepeer` job header (signature over the V1 encoding when on-chain).
fn verified_job(inner: &Inner, headers: &HeaderMap) -> Result<JobRequest, Reject> {
    let raw = header(headers, jobs::HEADER_JOB)
        .ok_or_else(|| Reject(StatusCode::BAD_REQUEST, "missing Livepeer header".into()))?;
    let job = JobRequest::from_header(raw).map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))?;
    if job.timeout_seconds == 0 {
        return Err(Reject(StatusCode::BAD_REQUEST, "invalid timeout_seconds".into()));
    }
    if inner.config.offchain || (job.sig.is_empty() && job.sender.is_empty()) {
        if !inner.config.offchain {
            return Err(Reject(StatusCode::BAD_REQUEST, "Could not verify job creds".into()));
        }
        return Ok(job);
    }
    let signed = SignByocJobRequest {
        id: job.id.clone(),
        capability: job.capability.clone(),
        request: job.request.clone(),
        parameters: job.parameters.clone(),
        timeout_seconds: job.timeout_seconds,
    };
    let ok = match (byoc_job_v1_encoding(&signed), parse_address(&job.sender), parse_hex(&job.sig)) {
        (Ok(msg), Some(addr), Some(sig)) => keys::verify(&msg, &sig, &addr),
        _ => false,
    };
    if !ok {
        return Err(Reject(StatusCode::BAD_REQUEST, "Could not verify job creds".into()));
    }
    Ok(job)
}

fn sender_of(job: &JobRequest) -> [u8; 20] {
    parse_address(&job.sender).unwrap_or([0u8; 20])
}

/// `GET /process/token`.
async fn process_token(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let Some(eth) =
        header(&headers, jobs::HEADER_ETH_ADDRESS).and_then(|v| EthAddressHeader::from_header(v).ok())
    else {
        return http_error(StatusCode::BAD_REQUEST, "Could not parse Livepeer-Eth-Address");
    };
    let Some(addr) = parse_address(&eth.addr) else {
        return http_error(StatusCode::BAD_REQUEST, "invalid sender address");
    };
    let sig_ok = parse_hex(&eth.sig).is_some_and(|sig| keys::verify(eth.addr.as_bytes(), &sig, &addr));
    if !inner.config.offchain && !sig_ok {
        return http_error(StatusCode::BAD_REQUEST, "Could not verify sender signature");
    }
    let capability = header(&headers, jobs::HEADER_CAPABILITY).unwrap_or("");
    let Some((i, offer)) = inner.offer_for(Capability::Byoc, capability) else {
        return http_error(StatusCode::BAD_REQUEST, format!("unknown capability {capability:?}"));
    };
    let used = inner.in_use.lock().unwrap_or_else(|e| e.into_inner()).get(&i).copied().unwrap_or(0);
    let token = jobs::JobToken {
        sender_address: Some(eth.clone()),
        ticket_params: (!inner.config.offchain).then(|| {
            let p = inner.ticket_params();
            let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
            serde_json::json!({
                "recipient": b64(&p.recipient), "face_value": b64(&p.face_value), "win_prob": b64(&p.win_prob),
                "recipient_rand_hash": b64(&p.recipient_rand_hash), "seed": b64(&p.seed),
                "expiration_block": b64(&p.expiration_block),
            })
        }),
        balance: orch.balance(&addr, capability) as i64,
        price: Some(if inner.config.offchain {
            jobs::JobPrice { price_per_unit: 0, pixels_per_unit: 1 }
        } else {
            jobs::JobPrice { price_per_unit: offer.price_per_unit, pixels_per_unit: offer.pixels_per_unit }
        }),
        service_addr: inner.service_uri.clone(),
        available_capacity: i64::from(offer.capacity.saturating_sub(used)),
    };
    axum::Json(token).into_response()
}

fn byoc_price_per_second(offer: &CapabilityOffer) -> f64 {
    offer.price_per_unit as f64 / offer.pixels_per_unit.max(1) as f64
}

/// `POST /process/request/{path}`: single-shot BYOC job.
async fn process_request(
    State(orch): State<LocalOrchestrator>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    let job = match verified_job(inner, &headers) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let Some((i, offer)) = inner.offer_for(Capability::Byoc, &job.capability) else {
        return http_error(StatusCode::BAD_REQUEST, format!("unknown capability {:?}", job.capability));
    };
    let offer = offer.clone();
    if !inner.reserve(i) {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    }
    let sender = sender_of(&job);
    let result = async {
        inner.accept_payment(&headers, &job.capability).map_err(IntoResponse::into_response)?;
        let price = byoc_price_per_second(&offer);
        if !inner.config.offchain
            && price > 0.0
            && orch.balance(&sender, &job.capability) < price * inner.config.byoc_min_balance_seconds as f64
        {
            return Err(http_error(StatusCode::BAD_REQUEST, "Insufficient balance for request"));
        }
        let started = std::time::Instant::now();
        let (status, out) = workers::handle_request(&job.capability, &path, &body);
        let seconds = started.elapsed().as_secs_f64().ceil().max(1.0);
        let balance =
            if inner.config.offchain { 0.0 } else { inner.debit(sender, &job.capability, seconds * price) };
        inner.counters.requests_served.fetch_add(1, Ordering::Relaxed);
        let mut resp = (status, out).into_response();
        if let Ok(v) = HeaderValue::from_str(&(balance as i64).to_string()) {
            resp.headers_mut().insert(jobs::HEADER_BALANCE, v);
        }
        Ok(resp)
    }
    .await;
    inner.release(i);
    result.unwrap_or_else(|r| r)
}

/// `POST /ai/stream/start`.
async fn stream_start(State(orch): State<LocalOrchestrator>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &orch.inner;
    let job = match verified_job(inner, &headers) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let params: JobParameters = match job.parameters() {
        Ok(p) => p,
        Err(e) => return http_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let Some((i, offer)) = inner.offer_for(Capability::Byoc, &job.capability) else {
        return http_error(StatusCode::BAD_REQUEST, format!("unknown capability {:?}", job.capability));
    };
    let offer = offer.clone();
    if !gateway_core::trickle::is_valid_channel_name(&job.id) {
        return http_error(StatusCode::BAD_REQUEST, "invalid stream id");
    }
    if inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&job.id) {
        return http_error(StatusCode::BAD_REQUEST, "stream already exists");
    }
    let sender = sender_of(&job);
    if let Err(r) = inner.accept_payment(&headers, &job.capability) {
        return r.into_response();
    }
    let price = byoc_price_per_second(&offer);
    if !inner.config.offchain
        && price > 0.0
        && orch.balance(&sender, &job.capability) < price * inner.config.byoc_min_balance_seconds as f64
    {
        return http_error(StatusCode::PAYMENT_REQUIRED, "insufficient balance");
    }
    if !inner.reserve(i) {
        return http_error(StatusCode::BAD_REQUEST, "insufficient capacity");
    }
    let start_params: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let channels = ChannelNames::for_stream(&job.id);
    inner.trickle.create_channel(&channels.control, MIME_JSON);
    inner.trickle.create_channel(&channels.events, MIME_JSON);
    if params.enable_video_ingress {
        inner.trickle.create_channel(&channels.input, MIME_MPEGTS);
    }
    if params.enable_video_egress {
        inner.trickle.create_channel(&channels.output, MIME_MPEGTS);
    }
    if params.enable_data_output {
        inner.trickle.create_channel(&channels.data, MIME_JSONL);
    }
    let cancel = CancellationToken::new();
    inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(
        job.id.clone(),
        Session { channels: channels.clone(), cancel: cancel.clone(), offer_index: i },
    );
    inner.counters.byoc_streams_started.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(workers::run_byoc_stream(
        inner.trickle.clone(),
        channels.clone(),
        job.capability.clone(),
        params.clone(),
        start_params,
        workers::WorkerOptions {
            event_interval: inner.config.event_interval,
            pipeline: job.capability.clone(),
        },
        cancel.clone(),
    ));
    tokio::spawn(byoc_debits(orch.clone(), job.id.clone(), sender, job.capability.clone(), price, cancel));
    let origin = &inner.service_uri;
    let mut resp = StatusCode::OK.into_response();
    let mut put = |name: &'static str, chan: &str, enabled: bool| {
        if enabled {
            if let Ok(v) = HeaderValue::from_str(&channel_url(origin, chan)) {
                resp.headers_mut().insert(name, v);
            }
        }
    };
    put(jobs::HEADER_PUBLISH_URL, &channels.input, params.enable_video_ingress);
    put(jobs::HEADER_SUBSCRIBE_URL, &channels.output, params.enable_video_egress);
    put(jobs::HEADER_CONTROL_URL, &channels.control, true);
    put(jobs::HEADER_EVENTS_URL, &channels.events, true);
    put(jobs::HEADER_DATA_URL, &channels.data, params.enable_data_output);
    resp
}

/// Debits a BYOC stream every interval; the first negative tick warns, the next one stops it.
async fn byoc_debits(
    orch: LocalOrchestrator,
    id: String,
    sender: [u8; 20],
    capability: String,
    price: f64,
    cancel: CancellationToken,
) {
    let inner = &orch.inner;
    if inner.config.offchain || price <= 0.0 {
        return;
    }
    let interval = inner.config.byoc_debit_interval;
    let mut warned = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let balance =
            inner.debit(sender, &capability, interval.as_secs_f64() * inner.config.usage_time_scale * price);
        if balance < 0.0 {
            if warned {
                tracing::info!(stream = id, "stopping BYOC stream: insufficient balance");
                inner.counters.stopped_for_payment.fetch_add(1, Ordering::Relaxed);
                inner.stop_session(&id);
                return;
            }
            warned = true;
        } else {
            warned = false;
        }
    }
}

/// `POST /ai/stream/payment`.
async fn stream_payment(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let job = match verified_job(inner, &headers) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = inner.accept_payment(&headers, &job.capability) {
        return r.into_response();
    }
    let balance = orch.balance(&sender_of(&job), &job.capability);
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&(balance as i64).to_string()) {
        resp.headers_mut().insert(jobs::HEADER_BALANCE, v);
    }
    resp
}

fn stream_id_of(job: &JobRequest) -> String {
    serde_json::from_str::<serde_json::Value>(&job.request)
        .ok()
        .and_then(|v| v.get("stream_id").and_then(|s| s.as_str()).map(str::to_owned))
        .unwrap_or_else(|| job.id.clone())
}

/// `POST /ai/stream/update`: parameters go to the worker over its control channel.
async fn stream_update(State(orch): State<LocalOrchestrator>, headers: HeaderMap, body: Bytes) -> Response {
    let inner = &orch.inner;
    let job = match verified_job(inner, &headers) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    let id = stream_id_of(&job);
    let control = match inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        Some(s) => s.channels.control.clone(),
        None => return http_error(StatusCode::NOT_FOUND, "stream not found"),
    };
    if let Some(mut publisher) = inner.trickle.local_publisher(&control) {
        let _ = publisher.write_segment(body).await;
    }
    StatusCode::OK.into_response()
}

/// `POST /ai/stream/stop`.
async fn stream_stop(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let job = match verified_job(inner, &headers) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    // go-livepeer relays the worker's answer and answers 200 when the worker is gone.
    inner.stop_session(&stream_id_of(&job));
    StatusCode::OK.into_response()
}
