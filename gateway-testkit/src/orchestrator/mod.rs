//! The orchestrator double: gRPC `GetOrchestrator` and the HTTP job endpoints on one port.
//!
//! It follows go-livepeer's orchestrator (`server/rpc.go`, `server/ai_http.go`, `byoc/*`): it
//! quotes prices per capability and model, issues ticket parameters bound to the requesting
//! sender and the quoted price and receives tickets with go-livepeer's exact pm rules (see
//! [`crate::tickets`] and `recipient.rs`), issues HMAC-style auth tokens, checks
//! `Livepeer-Segment` credentials, keeps balances per (sender,
//! manifest) for LV2V and per (sender, capability) for BYOC, starts the worker doubles behind
//! trickle channels, and stops sessions whose payments stop. Intervals are configurable so
//! tests can run payment-exhaustion scenarios in seconds.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use gateway_core::capabilities::{set_bit, Capability, DEFAULT_CAPABILITIES};
use gateway_core::jobs;
use gateway_core::lp_rpc::capabilities::{
    capability_constraints::ModelConstraint, CapabilityConstraints, Constraints,
};
use gateway_core::lp_rpc::orchestrator_server::OrchestratorServer;
use gateway_core::lp_rpc::{Capabilities, PriceInfo};
use gateway_core::trickle::ChannelNames;
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultAction, FaultRules, OrchestratorFault};
use crate::keys::EthKey;
use crate::trickle_server::TrickleServer;
use crate::workers;
pub use crate::GoVersion;

mod byoc;
mod go_json;
mod grpc;
mod ledger;
mod lv2v;
mod recipient;
mod runner_callbacks;
mod runner_proxy;
mod runner_routes;
mod runner_sessions;
mod runners;
mod scope;
mod training;

pub use ledger::{LedgerLine, PaymentLedger, PaymentRoute};

use byoc::{
    method_not_allowed, process_request, process_request_root, process_token, stream_payment, stream_start,
    stream_stop, stream_update,
};
use grpc::GrpcService;
use lv2v::{lv2v_payment, start_lv2v};

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

/// go-livepeer's default `-ticketEV`: 8 gwei.
pub const DEFAULT_TICKET_EV_WEI: u128 = 8_000_000_000;
/// A realistic face value: 1.2e6 redeem gas (Arbitrum) × 0.01 gwei × go-livepeer's
/// `txCostMultiplier` of 100.
pub const DEFAULT_TICKET_FACE_VALUE_WEI: u128 = 1_200_000_000_000_000;

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
    /// Expected value of one ticket in wei (go-livepeer `-ticketEV`, default 8 gwei). The win
    /// probability is derived from it and the face value with go-livepeer's formula.
    pub ticket_ev_wei: u128,
    /// Ticket face value in wei: what go-livepeer computes as redeem gas × gas price × 100
    /// (default 1.2e6 gas × 0.01 gwei × 100 = 0.0012 ETH, an Arbitrum-like value). A face value
    /// below the EV becomes EV × 100, as in go-livepeer.
    pub ticket_face_value_wei: u128,
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
    /// Which go-livepeer's BYOC rules to follow.
    pub go_version: GoVersion,
    /// How long the BYOC worker takes to answer a single-shot request (go's orchestrator gives
    /// up after the job's `timeout_seconds`).
    pub request_worker_delay: Duration,
    /// How long the simulated worker takes to train a model.
    pub training_duration: Duration,
    /// How often the orchestrator asks its worker about a training job (go: 5 s).
    pub training_poll_interval: Duration,
    /// Least time between two charges of a running training job (go: 30 s).
    pub training_charge_interval: Duration,
    /// The secret live runners register with (go's `-orchSecret`); `None`: live runners are
    /// not served (404, as on a go orchestrator without them).
    pub runner_registration_secret: Option<String>,
    /// How often runners are told to heartbeat (go: 5 s).
    pub runner_heartbeat_interval: Duration,
    /// A runner silent this long is removed (go: 20 s).
    pub runner_heartbeat_ttl: Duration,
    /// USD per ETH for converting runner prices to wei (go reads a price feed).
    pub usd_per_eth: f64,
    /// Serve the live-video-to-video models through a serverless AI worker, as go does with
    /// one: listed in `/discovery` at `{svc}/scope` and started with `POST /scope` (Scope runs
    /// the `scope` model). Off by default.
    pub serverless_scope: bool,
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
            ticket_ev_wei: DEFAULT_TICKET_EV_WEI,
            ticket_face_value_wei: DEFAULT_TICKET_FACE_VALUE_WEI,
            lv2v_accounting_interval: jobs::LV2V_PAYMENT_INTERVAL,
            byoc_debit_interval: Duration::from_secs(23),
            byoc_min_balance_seconds: jobs::BYOC_MIN_BALANCE_SECONDS,
            event_interval: Duration::from_secs(2),
            usage_time_scale: 1.0,
            version: "0.9.1-local".into(),
            go_version: GoVersion::default(),
            request_worker_delay: Duration::ZERO,
            training_duration: Duration::from_secs(4),
            // go polls its worker every 5 s; the double's worker is local and short, so it is
            // asked every second to show progress in a few-second job.
            training_poll_interval: Duration::from_secs(1),
            training_charge_interval: gateway_core::training::CHARGE_INTERVAL,
            runner_registration_secret: Some(LOCAL_RUNNER_SECRET.into()),
            runner_heartbeat_interval: gateway_core::runners::DEFAULT_HEARTBEAT_INTERVAL,
            runner_heartbeat_ttl: gateway_core::runners::DEFAULT_HEARTBEAT_TTL,
            usd_per_eth: 2000.0,
            serverless_scope: false,
        }
    }
}

impl OrchestratorConfig {
    /// Serves Scope as an orchestrator with a serverless worker does ([`Self::serverless_scope`]),
    /// with a `scope` live-video-to-video model of `capacity` sessions at LV2V's default price
    /// (1 wei per 1000 pixels).
    pub fn serve_scope(&mut self, capacity: u32) {
        self.serverless_scope = true;
        self.offers.retain(|o| !(o.capability == Capability::LiveVideoToVideo && o.model == "scope"));
        self.offers.push(CapabilityOffer {
            capability: Capability::LiveVideoToVideo,
            model: "scope".into(),
            price_per_unit: 1,
            pixels_per_unit: 1000,
            warm: true,
            capacity,
        });
    }
}

/// The registration secret of the local network's orchestrators (a test double's, not a
/// secret).
pub const LOCAL_RUNNER_SECRET: &str = "local-runner-secret";

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
    /// `/refresh-payment` answers with fresh payment params.
    pub payment_refreshes: u64,
    /// Scope sessions started (`POST /scope`).
    pub scope_sessions_started: u64,
    /// Sessions and streams running now.
    pub active_sessions: u64,
}

/// What an orchestrator runs now; see [`LocalOrchestrator::running`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Running {
    /// Sessions and streams.
    pub sessions: usize,
    /// Trickle channels open.
    pub channels: usize,
}

impl Running {
    /// Nothing runs.
    pub fn is_idle(&self) -> bool {
        self.sessions == 0 && self.channels == 0
    }
}

/// What survives a restart: the record a test reads.
#[derive(Default)]
struct Record {
    counters: Arc<Counters>,
    ledger: Arc<PaymentLedger>,
    stop_reasons: Arc<Mutex<Vec<(String, String)>>>,
}

/// The sender nonces seen with one `recipientRand`, until its ticket params expire
/// (go-livepeer `recipient.senderNonces`).
struct SenderNonces {
    seen: HashSet<u32>,
    expiration_block: u128,
}

/// Every `recipientRand`'s nonces, and the block at which expired entries were last dropped
/// (go-livepeer drops them when a new L1 block arrives).
#[derive(Default)]
struct NonceBook {
    by_rand: HashMap<[u8; 32], SenderNonces>,
    cleaned_at_block: u128,
}

/// A running job on this orchestrator.
struct Session {
    channels: ChannelNames,
    cancel: CancellationToken,
    offer_index: usize,
    /// BYOC sessions free capacity go's way (the load may go negative).
    byoc: bool,
}

struct Inner {
    config: OrchestratorConfig,
    key: EthKey,
    /// Keys auth tokens.
    secret: [u8; 32],
    /// Keys `recipientRand` (go-livepeer's recipient secret).
    recipient_secret: [u8; 32],
    service_uri: String,
    trickle: TrickleServer,
    faults: FaultRules,
    /// Balances in wei: (sender, manifest id or capability name).
    balances: Mutex<HashMap<([u8; 20], String), f64>>,
    /// Nonces seen, by `recipientRand`.
    sender_nonces: Mutex<NonceBook>,
    /// Prices fixed by a session's first payment: (sender, manifest id).
    fixed_prices: Mutex<HashMap<([u8; 20], String), PriceInfo>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Sessions per offer. go reserves BYOC capacity without enforcing it and frees it on some
    /// routes that never reserved, so a BYOC load can go negative.
    in_use: Mutex<HashMap<usize, i64>>,
    /// `/ai/stream/stop` bodies by stream id: go passes the body on to the worker's
    /// `/stream/stop`, and its gateway puts the reason for a swap there. Kept across restarts
    /// (a test's record, like the counters and the ledger).
    stop_reasons: Arc<Mutex<Vec<(String, String)>>>,
    counters: Arc<Counters>,
    /// What it was paid, by route.
    ledger: Arc<PaymentLedger>,
    /// Training jobs, until a restart (go keeps them in memory without a checkpoint dir).
    training: training::TrainingJobs,
    /// Live runners registered by heartbeat.
    runners: runners::RunnerRegistry,
    /// Whether the runner expiry loop runs.
    expiry_watched: std::sync::atomic::AtomicBool,
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
    payment_refreshes: AtomicU64,
    scope_sessions_started: AtomicU64,
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

/// An HTTP error answer as go's `http.Error` writes it (`text/plain`, `nosniff`, message and
/// newline).
fn http_error(status: StatusCode, msg: impl Into<String>) -> Response {
    let mut body = msg.into();
    body.push('\n');
    (status, [("content-type", "text/plain; charset=utf-8"), ("x-content-type-options", "nosniff")], body)
        .into_response()
}

/// A refused request: status and message, rendered like [`http_error`]. [`Reject::panic`]
/// stands for a go-livepeer handler panic and is never rendered: the connection is dropped.
#[derive(Debug)]
struct Reject(StatusCode, String);

impl Reject {
    /// Not a status on the wire: marks a [`Reject::panic`].
    fn panic_status() -> StatusCode {
        StatusCode::from_u16(599).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// Where go-livepeer's handler panics: `net/http` recovers and answers nothing.
    fn panic(what: impl Into<String>) -> Reject {
        Reject(Self::panic_status(), what.into())
    }

    /// Whether this stands for a go handler panic.
    fn is_panic(&self) -> bool {
        self.0 == Self::panic_status()
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        if self.0 == Self::panic_status() {
            tracing::warn!(reason = %self.1, "dropping the connection where go-livepeer panics");
            return crate::serve::dropped_connection();
        }
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
        Self::process(config, key, service_uri, trickle, Record::default())
    }

    /// The same orchestrator started again as a fresh process, serving channels through
    /// `trickle`: same key, configuration and address, but none of the old process's memory
    /// (sessions, balances, nonces seen, auth and recipient secrets, capacity in use, faults).
    /// Its record (counters, ledger, stop bodies) carries on, as an operator's books would.
    /// The old one's sessions are not touched: end them first (a dead process runs nothing).
    pub fn restarted(&self, trickle: TrickleServer) -> LocalOrchestrator {
        let i = &self.inner;
        let record = Record {
            counters: i.counters.clone(),
            ledger: i.ledger.clone(),
            stop_reasons: i.stop_reasons.clone(),
        };
        Self::process(i.config.clone(), i.key.clone(), i.service_uri.clone(), trickle, record)
    }

    fn process(
        config: OrchestratorConfig,
        key: EthKey,
        service_uri: String,
        trickle: TrickleServer,
        record: Record,
    ) -> LocalOrchestrator {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let mut recipient_secret = [0u8; 32];
        rand::fill(&mut recipient_secret);
        LocalOrchestrator {
            inner: Arc::new(Inner {
                config,
                key,
                secret,
                recipient_secret,
                service_uri,
                trickle,
                faults: FaultRules::default(),
                balances: Mutex::default(),
                sender_nonces: Mutex::default(),
                fixed_prices: Mutex::default(),
                sessions: Mutex::default(),
                in_use: Mutex::default(),
                stop_reasons: record.stop_reasons,
                counters: record.counters,
                ledger: record.ledger,
                training: Mutex::default(),
                runners: Mutex::default(),
                expiry_watched: Default::default(),
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
            payment_refreshes: c.payment_refreshes.load(Ordering::Relaxed),
            scope_sessions_started: c.scope_sessions_started.load(Ordering::Relaxed),
            active_sessions: self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
        }
    }

    /// The bodies of BYOC stops received, as (stream id, body), oldest first: what go's
    /// orchestrator hands its worker (a gateway leaving the stream says why there).
    pub fn stop_reasons(&self) -> Vec<(String, String)> {
        self.inner.stop_reasons.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What it was paid, by route, across restarts.
    pub fn ledger(&self) -> &PaymentLedger {
        &self.inner.ledger
    }

    /// What it runs now: sessions and trickle channels (both 0 once everything has ended).
    pub fn running(&self) -> Running {
        Running {
            sessions: self.inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).len(),
            channels: self.inner.trickle.stats().channels,
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
            // go checks the method on these two and answers 405 "Method not allowed"...
            .route(jobs::PROCESS_TOKEN_PATH, get(process_token).fallback(method_not_allowed))
            // go reads request bodies of any size.
            .route(
                "/process/request/",
                post(process_request_root).fallback(method_not_allowed).layer(DefaultBodyLimit::disable()),
            )
            .route(
                "/process/request/{*path}",
                post(process_request).fallback(method_not_allowed).layer(DefaultBodyLimit::disable()),
            )
            // ...and on none of the stream routes.
            .route(jobs::STREAM_START_PATH, any(stream_start))
            .route(jobs::STREAM_PAYMENT_PATH, any(stream_payment))
            .route(jobs::STREAM_UPDATE_PATH, any(stream_update))
            .route(jobs::STREAM_STOP_PATH, any(stream_stop))
            .route("/process/train/{*capability}", any(training::submit))
            .route("/process/job/{id}", get(training::status).fallback(method_not_allowed))
            .route("/process/job/{id}/cancel", post(training::cancel).fallback(method_not_allowed))
            .route(
                "/process/job/{id}/refresh-payment",
                post(training::refresh_payment).fallback(method_not_allowed),
            )
            .merge(runner_routes::routes())
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
    pub(super) fn offer_for(&self, capability: Capability, model: &str) -> Option<(usize, &CapabilityOffer)> {
        self.config.offers.iter().enumerate().find(|(_, o)| o.capability == capability && o.model == model)
    }

    pub(super) fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities { version: self.config.version.clone(), ..Default::default() };
        for c in DEFAULT_CAPABILITIES {
            set_bit(&mut caps.bitstring, c.id());
        }
        let in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        let mut per: HashMap<u32, CapabilityConstraints> = HashMap::new();
        // go never sets bit 37: BYOC capabilities show only in prices and `/process/token`.
        for (i, o) in self.config.offers.iter().enumerate().filter(|(_, o)| o.capability != Capability::Byoc)
        {
            let id = o.capability.id();
            set_bit(&mut caps.bitstring, id);
            let used = u32::try_from(in_use.get(&i).copied().unwrap_or(0).max(0)).unwrap_or(u32::MAX);
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

    pub(super) fn reserve(&self, offer_index: usize) -> bool {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        let used = in_use.entry(offer_index).or_insert(0);
        if *used >= i64::from(self.config.offers[offer_index].capacity) {
            return false;
        }
        *used += 1;
        true
    }

    pub(super) fn release(&self, offer_index: usize) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(used) = in_use.get_mut(&offer_index) {
            *used = (*used - 1).max(0);
        }
    }

    /// go's `ReserveExternalCapabilityCapacity`: one more BYOC session, never refused for load.
    pub(super) fn byoc_reserve(&self, offer_index: usize) {
        *self.in_use.lock().unwrap_or_else(|e| e.into_inner()).entry(offer_index).or_insert(0) += 1;
    }

    /// go's `FreeExternalCapabilityCapacity`: one fewer, even below zero.
    pub(super) fn byoc_free(&self, offer_index: usize) {
        *self.in_use.lock().unwrap_or_else(|e| e.into_inner()).entry(offer_index).or_insert(0) -= 1;
    }

    /// go's `CheckExternalCapabilityCapacity`: capacity minus load, 0 when full.
    pub(super) fn byoc_available(&self, offer_index: usize) -> i64 {
        let load =
            self.in_use.lock().unwrap_or_else(|e| e.into_inner()).get(&offer_index).copied().unwrap_or(0);
        let capacity = i64::from(self.config.offers[offer_index].capacity);
        if load < capacity {
            capacity - load
        } else {
            0
        }
    }

    /// Ends session `id`: its worker stops and its channels close. Its capacity is freed unless
    /// `free_capacity` is false (go leaks BYOC capacity when its balance monitor ends a stream).
    pub(super) fn end_session(&self, id: &str, free_capacity: bool) -> bool {
        let Some(session) = self.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(id) else {
            return false;
        };
        session.cancel.cancel();
        self.close_channels(&session.channels);
        match (free_capacity, session.byoc) {
            (false, _) => {}
            (true, true) => self.byoc_free(session.offer_index),
            (true, false) => self.release(session.offer_index),
        }
        true
    }

    /// Ends session `id` and frees its capacity.
    pub(super) fn stop_session(&self, id: &str) -> bool {
        self.end_session(id, true)
    }

    /// Closes every channel a session may have, by name.
    pub(super) fn close_channels(&self, c: &ChannelNames) {
        for name in [&c.input, &c.output, &c.control, &c.events, &c.data] {
            self.trickle.close_channel(name);
        }
    }
}
