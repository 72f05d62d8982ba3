//! The remote signer double: go-livepeer's `-remoteSigner` HTTP API on a real socket, so the
//! gateway's payment code is exercised against the same status codes, state round trip and
//! ticket arithmetic it meets on the network.
//!
//! Endpoints (paths from [`gateway_core::signer`]):
//! - `POST /sign-orchestrator-info`: the signer's address and its signature over that address.
//! - `POST /generate-live-payment`: tickets (`Payment`), segment credentials (`SegData`) and the
//!   next signed state, with go-livepeer's 480 / 481 / 482 answers.
//! - `POST /sign-byoc-job`: signature over a BYOC job's V1 encoding.
//! - `GET /discover-orchestrators`: a list the owner sets with [`LocalSigner::set_discovery`].
//!
//! Like the real signer it is stateless per session: everything a session needs travels in the
//! signed state blob. The only memory it keeps is a per-`recipient_rand_hash` nonce counter, so
//! that two sessions paying the same orchestrator with the same ticket parameters never reuse a
//! nonce (the orchestrator rejects a nonce it has seen).
//!
//! Arithmetic is in `f64` (ticket EV, fee, balance) where go-livepeer uses `big.Rat`: precise
//! enough for a double, but a ticket count that lands exactly on an integer boundary may round
//! up by one. Prices compared against the session's initial price are compared exactly.
//!
//! The state blob is signed JSON with go-livepeer's keys, except that the last update time is
//! `LastUpdateUnixNano` (an integer) rather than Go's RFC 3339 `LastUpdate`: clients treat the
//! blob as opaque, and an integer avoids a calendar implementation here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use bytes::Bytes;
use gateway_core::capabilities::capabilities_to_queries;
use gateway_core::eth::{checksum_address, keccak256, parse_address};
use gateway_core::jobs::LV2V_PIXELS_PER_SECOND;
use gateway_core::lp_rpc::{
    from_base64, to_base64, Capabilities, OrchestratorInfo, Payment, PriceInfo, SegData, TicketParams,
    TicketSenderParams,
};
use gateway_core::signer::{
    byoc_job_v1_encoding, DiscoveredOrchestrator, GenerateLivePaymentResponse, PaymentType,
    SignByocJobRequest, SignByocJobResponse, SignOrchestratorInfoResponse, SignerState,
    BYOC_MIN_PRELOAD_SECONDS, DISCOVERY_CAPS_PARAM, DISCOVER_ORCHESTRATORS_PATH, GENERATE_LIVE_PAYMENT_PATH,
    HEADER_ORCHESTRATOR_URL, LV2V_INITIAL_PAYMENT_SECONDS, MAX_TICKETS_PER_PAYMENT, SIGN_BYOC_JOB_PATH,
    SIGN_ORCHESTRATOR_INFO_PATH, STATUS_NO_TICKETS, STATUS_PRICE_EXCEEDED, STATUS_REFRESH_SESSION,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::keys::{recover_signer, verify, EthKey};
use crate::tickets::{
    seg_data_message, ticket_message, ticket_params_expired, AUTH_TOKEN_REFRESH_WINDOW_SECS,
};

// Protocol facts gateway-core does not carry (they only matter to a signer implementation):

/// Seconds a `live` payment bills on a session's first call (go-livepeer `RemoteType_Live`).
const LIVE_INITIAL_PAYMENT_SECONDS: f64 = 10.0;
/// go-livepeer caps the `/sign-byoc-job` body at 1 MiB (`http.MaxBytesReader`).
const SIGN_BYOC_JOB_MAX_BODY_BYTES: usize = 1 << 20;
/// go-livepeer sets no limit on `/generate-live-payment`; a real `OrchestratorInfo` is a few KiB,
/// so this only keeps a runaway test from buffering without bound.
const GENERATE_LIVE_PAYMENT_MAX_BODY_BYTES: usize = 4 << 20;
/// The score go-livepeer's discovery endpoint reports for every entry (`common.Score_Trusted`);
/// used when the owner's entry has none.
const DISCOVERY_DEFAULT_SCORE: f64 = 1.0;
/// `maxPrice.unit` go-livepeer requires per payment type (`parseRemotePaymentMaxPrice`).
const MAX_PRICE_UNIT_LIVE: &str = "seconds";
const MAX_PRICE_UNIT_LV2V: &str = "720p-pixel-seconds";
const MAX_PRICE_UNIT_FIXED: &str = "fixed";
/// The only `maxPrice.currency` go-livepeer accepts.
const MAX_PRICE_CURRENCY: &str = "wei";
/// Bytes of randomness in a generated state or manifest id (hex-encoded).
const RANDOM_ID_BYTES: usize = 8;

/// How the signer is set up. `Debug` never prints the bearer token.
#[derive(Clone, Default)]
pub struct SignerConfig {
    /// The Ethereum key the signer signs with; a random one when `None`.
    pub key: Option<EthKey>,
    /// When set, every endpoint requires `Authorization: Bearer <token>` (401 otherwise).
    pub bearer_token: Option<String>,
    /// The signer's own price ceiling in wei per unit (`pricePerUnit / pixelsPerUnit`), like
    /// go-livepeer's `-maxPricePerUnit`; an orchestrator priced above it gets 481.
    pub max_price_wei_per_unit: Option<f64>,
}

impl std::fmt::Debug for SignerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerConfig")
            .field("key", &self.key)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("max_price_wei_per_unit", &self.max_price_wei_per_unit)
            .finish()
    }
}

/// A fault the signer injects into its next matching calls. Deserializes from JSON such as
/// `{"kind": "respond_status", "endpoint": "/generate-live-payment", "status": 480, "count": 2}`
/// or `{"kind": "delay", "endpoint": null, "delay_ms": 1500, "count": 1}`.
///
/// `endpoint` is a path such as `/generate-live-payment` (leading `/` optional); `None` matches
/// every endpoint. `count` is how many calls the fault affects; `0` means every call until
/// [`LocalSigner::clear_faults`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignerFault {
    /// Answer with `status` instead of doing the work. 480 carries the
    /// `Livepeer-Orchestrator-URL` header (the request's orchestrator, when it can be read);
    /// every status carries the JSON error body, with go-livepeer's message for 481/482/500/503.
    RespondStatus {
        /// Path the fault applies to, or every endpoint.
        #[serde(default)]
        endpoint: Option<String>,
        /// HTTP status to answer with (100..=999).
        status: u16,
        /// Calls affected; 0 = until cleared.
        #[serde(default)]
        count: u32,
    },
    /// Wait `delay_ms` before handling the call normally.
    Delay {
        /// Path the fault applies to, or every endpoint.
        #[serde(default)]
        endpoint: Option<String>,
        /// Milliseconds to wait.
        delay_ms: u64,
        /// Calls affected; 0 = until cleared.
        #[serde(default)]
        count: u32,
    },
}

/// Why a [`SignerFault`] cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultError {
    /// The status is not a valid HTTP status code.
    #[error("fault status {0} is not an HTTP status (100..=999)")]
    InvalidStatus(u16),
}

impl SignerFault {
    /// Checks that the fault can be served (an admin API should answer 400 when it cannot).
    pub fn validate(&self) -> Result<(), FaultError> {
        match self {
            SignerFault::RespondStatus { status, .. } if StatusCode::from_u16(*status).is_err() => {
                Err(FaultError::InvalidStatus(*status))
            }
            _ => Ok(()),
        }
    }

    fn endpoint(&self) -> Option<&str> {
        match self {
            SignerFault::RespondStatus { endpoint, .. } | SignerFault::Delay { endpoint, .. } => {
                endpoint.as_deref()
            }
        }
    }

    fn matches(&self, path: &str) -> bool {
        self.endpoint().is_none_or(|e| e.trim_start_matches('/') == path.trim_start_matches('/'))
    }
}

/// A fault with the calls it still affects (`None` = until cleared).
#[derive(Debug)]
struct ActiveFault {
    fault: SignerFault,
    remaining: Option<u32>,
}

/// What the signer has done since it started. Counts calls that passed authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignerStats {
    /// Calls to `/sign-orchestrator-info`.
    pub sign_orchestrator_info_calls: u64,
    /// Calls to `/generate-live-payment`.
    pub generate_live_payment_calls: u64,
    /// Calls to `/sign-byoc-job`.
    pub sign_byoc_job_calls: u64,
    /// Calls to `/discover-orchestrators`.
    pub discover_orchestrators_calls: u64,
    /// Successful `/generate-live-payment` answers (each carries at least one ticket).
    pub payments_minted: u64,
    /// Tickets in those payments.
    pub tickets_minted: u64,
    /// 480 answers (refresh session), injected ones included.
    pub refresh_session_responses: u64,
    /// 481 answers (price exceeded), injected ones included.
    pub price_exceeded_responses: u64,
    /// 482 answers (no tickets needed), injected ones included.
    pub no_tickets_responses: u64,
    /// Calls answered by a [`SignerFault::RespondStatus`].
    pub faults_injected: u64,
    /// Calls refused with 401.
    pub unauthorized: u64,
}

/// The local remote signer. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct LocalSigner {
    inner: Arc<Inner>,
}

struct Inner {
    key: EthKey,
    bearer_token: Option<String>,
    max_price_wei_per_unit: Option<f64>,
    discovery: Mutex<Vec<DiscoveredOrchestrator>>,
    faults: Mutex<Vec<ActiveFault>>,
    stats: Mutex<SignerStats>,
    /// Last nonce used per `recipient_rand_hash`.
    nonces: Mutex<HashMap<Vec<u8>, u32>>,
    /// Added to the wall clock, so tests can let time pass without waiting.
    clock_offset_nanos: AtomicI64,
}

/// A mutex guard even if a panicking thread poisoned it: the data are plain counters and lists.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LocalSigner {
    /// A signer with `config` (a random key when none is given).
    pub fn new(config: SignerConfig) -> LocalSigner {
        LocalSigner {
            inner: Arc::new(Inner {
                key: config.key.unwrap_or_else(EthKey::random),
                bearer_token: config.bearer_token,
                max_price_wei_per_unit: config.max_price_wei_per_unit,
                discovery: Mutex::new(Vec::new()),
                faults: Mutex::new(Vec::new()),
                stats: Mutex::new(SignerStats::default()),
                nonces: Mutex::new(HashMap::new()),
                clock_offset_nanos: AtomicI64::new(0),
            }),
        }
    }

    /// The HTTP API with this signer's state baked in; serve it with `axum::serve`.
    pub fn router(&self) -> Router {
        let inner = self.inner.clone();
        Router::new()
            .route(SIGN_ORCHESTRATOR_INFO_PATH, post(sign_orchestrator_info))
            .route(
                GENERATE_LIVE_PAYMENT_PATH,
                post(generate_live_payment)
                    .layer(DefaultBodyLimit::max(GENERATE_LIVE_PAYMENT_MAX_BODY_BYTES)),
            )
            .route(
                SIGN_BYOC_JOB_PATH,
                post(sign_byoc_job).layer(DefaultBodyLimit::max(SIGN_BYOC_JOB_MAX_BODY_BYTES)),
            )
            .route(DISCOVER_ORCHESTRATORS_PATH, get(discover_orchestrators))
            .fallback(|| async { ApiError::NotFound })
            .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
            // Layers run bottom-up: authentication first, then stats and faults.
            .layer(middleware::from_fn_with_state(inner.clone(), observe_and_inject))
            .layer(middleware::from_fn_with_state(inner.clone(), require_bearer))
            .with_state(inner)
    }

    /// The signer's 20-byte address.
    pub fn address(&self) -> [u8; 20] {
        self.inner.key.address()
    }

    /// The signer's key.
    pub fn key(&self) -> &EthKey {
        &self.inner.key
    }

    /// Replaces the list `/discover-orchestrators` serves; an empty list makes it answer 503.
    pub fn set_discovery(&self, list: Vec<DiscoveredOrchestrator>) {
        *lock(&self.inner.discovery) = list;
    }

    /// Adds a fault after those already installed. Each call consumes at most one status fault
    /// and one delay fault, the oldest matching ones. An invalid fault (see
    /// [`SignerFault::validate`]) is ignored with a warning.
    pub fn set_fault(&self, fault: SignerFault) {
        if let Err(e) = fault.validate() {
            tracing::warn!(error = %e, "ignoring invalid signer fault");
            return;
        }
        let remaining = match &fault {
            SignerFault::RespondStatus { count, .. } | SignerFault::Delay { count, .. } => {
                (*count > 0).then_some(*count)
            }
        };
        lock(&self.inner.faults).push(ActiveFault { fault, remaining });
    }

    /// Removes every installed fault.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> SignerStats {
        lock(&self.inner.stats).clone()
    }

    /// Moves the signer's clock forward by `by` (cumulative), so elapsed-time billing and
    /// expiry checks can be tested without sleeping. Only this signer's clock moves.
    pub fn advance_clock(&self, by: Duration) {
        let nanos = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        let _ = self
            .inner
            .clock_offset_nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(v.saturating_add(nanos)));
    }
}

impl Inner {
    /// Unix nanoseconds on the signer's clock.
    fn now_nanos(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        wall.saturating_add(self.clock_offset_nanos.load(Ordering::SeqCst))
    }

    fn count(&self, update: impl FnOnce(&mut SignerStats)) {
        update(&mut lock(&self.stats));
    }

    /// Takes the status fault and the delay fault this call consumes, if any.
    fn take_faults(&self, path: &str) -> (Option<u16>, Option<Duration>) {
        let mut faults = lock(&self.faults);
        let mut status = None;
        let mut delay = None;
        for active in faults.iter_mut() {
            if !active.fault.matches(path) {
                continue;
            }
            let consumed = match &active.fault {
                SignerFault::RespondStatus { status: s, .. } if status.is_none() => {
                    status = Some(*s);
                    true
                }
                SignerFault::Delay { delay_ms, .. } if delay.is_none() => {
                    delay = Some(Duration::from_millis(*delay_ms));
                    true
                }
                _ => false,
            };
            if consumed {
                if let Some(n) = active.remaining.as_mut() {
                    *n = n.saturating_sub(1);
                }
            }
        }
        faults.retain(|f| f.remaining != Some(0));
        (status, delay)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Every non-200 answer. The body is always `{"error": {"message": ...}}` (JSON).
#[derive(Debug, Error)]
enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 480: the caller must refresh the orchestrator info from `orchestrator_url`.
    #[error("{reason}")]
    RefreshSession { orchestrator_url: Option<String>, reason: String },
    /// 481.
    #[error("{0}")]
    PriceExceeded(String),
    /// 482: the session's credit already covers this cycle.
    #[error("no tickets")]
    NoTickets,
    /// 503; the message is replaced on the wire, as go-livepeer does.
    #[error("{0}")]
    Unavailable(String),
    /// 500; the message is replaced on the wire, as go-livepeer does.
    #[error("{0}")]
    Internal(String),
    /// Any other status a fault asked for.
    #[error("injected fault: HTTP {0}")]
    Injected(StatusCode),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RefreshSession { .. } => custom_status(STATUS_REFRESH_SESSION),
            ApiError::PriceExceeded(_) => custom_status(STATUS_PRICE_EXCEEDED),
            ApiError::NoTickets => custom_status(STATUS_NO_TICKETS),
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Injected(status) => *status,
        }
    }

    /// The error for an injected status, with go-livepeer's message for the known ones.
    fn injected(status: StatusCode, orchestrator_url: Option<String>) -> ApiError {
        match status.as_u16() {
            STATUS_REFRESH_SESSION => ApiError::RefreshSession {
                orchestrator_url,
                reason: "refresh session for remote signer".into(),
            },
            STATUS_PRICE_EXCEEDED => {
                ApiError::PriceExceeded("orchestrator price exceeds configured maximum price".into())
            }
            STATUS_NO_TICKETS => ApiError::NoTickets,
            400 => ApiError::BadRequest("injected fault: bad request".into()),
            500 => ApiError::Internal("injected fault".into()),
            503 => ApiError::Unavailable("injected fault".into()),
            _ => ApiError::Injected(status),
        }
    }
}

/// 480-482 are outside the registered range but valid three-digit codes.
fn custom_status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::warn!(error = %self, "signer internal error");
                "Internal Server Error".to_owned()
            }
            StatusCode::SERVICE_UNAVAILABLE => "Service Unavailable Error".to_owned(),
            _ => self.to_string(),
        };
        let mut response = (status, Json(serde_json::json!({"error": {"message": message}}))).into_response();
        match &self {
            ApiError::RefreshSession { orchestrator_url: Some(url), .. } => {
                if let Ok(v) = HeaderValue::from_str(url) {
                    response.headers_mut().insert(HEADER_ORCHESTRATOR_URL, v);
                }
            }
            ApiError::Unauthorized => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

// ---------------------------------------------------------------------------------------------
// Middleware
// ---------------------------------------------------------------------------------------------

/// Refuses calls without the configured bearer token. Never logs the header.
async fn require_bearer(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let Some(expected) = inner.bearer_token.as_deref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.as_bytes())) {
        next.run(request).await
    } else {
        inner.count(|s| s.unauthorized += 1);
        ApiError::Unauthorized.into_response()
    }
}

/// Compares without an early exit on the first differing byte (length still leaks; the token
/// length is not a secret worth more code in a test double).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts calls and answers, and applies injected faults.
async fn observe_and_inject(State(inner): State<Arc<Inner>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    inner.count(|s| match path.as_str() {
        SIGN_ORCHESTRATOR_INFO_PATH => s.sign_orchestrator_info_calls += 1,
        GENERATE_LIVE_PAYMENT_PATH => s.generate_live_payment_calls += 1,
        SIGN_BYOC_JOB_PATH => s.sign_byoc_job_calls += 1,
        DISCOVER_ORCHESTRATORS_PATH => s.discover_orchestrators_calls += 1,
        _ => {}
    });
    let (status, delay) = inner.take_faults(&path);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let response = match status.map(custom_status) {
        Some(status) => {
            inner.count(|s| s.faults_injected += 1);
            let orchestrator_url = if status.as_u16() == STATUS_REFRESH_SESSION {
                orchestrator_url_of(request).await
            } else {
                None
            };
            ApiError::injected(status, orchestrator_url).into_response()
        }
        None => next.run(request).await,
    };
    inner.count(|s| match response.status().as_u16() {
        STATUS_REFRESH_SESSION => s.refresh_session_responses += 1,
        STATUS_PRICE_EXCEEDED => s.price_exceeded_responses += 1,
        STATUS_NO_TICKETS => s.no_tickets_responses += 1,
        _ => {}
    });
    response
}

/// The `transcoder` of a payment request's orchestrator, for an injected 480's header.
async fn orchestrator_url_of(request: Request) -> Option<String> {
    let body = axum::body::to_bytes(request.into_body(), GENERATE_LIVE_PAYMENT_MAX_BODY_BYTES).await.ok()?;
    let fields = json_object_lowercase(&body).ok()?;
    let encoded = fields.get("orchestrator")?.as_str()?;
    let info: OrchestratorInfo = from_base64("orchestrator", encoded).ok()?;
    Some(info.transcoder)
}

// ---------------------------------------------------------------------------------------------
// Request parsing helpers
// ---------------------------------------------------------------------------------------------

/// Parses a JSON object body and lower-cases its keys: Go's decoder matches keys to fields
/// case-insensitively, so `ManifestID`, `manifestID` and `manifestId` are one field.
fn json_object_lowercase(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(lowercase_keys(map)),
        other => Err(ApiError::BadRequest(format!(
            "request body must be a JSON object, got {}",
            gateway_core::error::json_type_name(&other)
        ))),
    }
}

fn lowercase_keys(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect()
}

fn body_or_400(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::BadRequest(format!("could not read request body: {e}")))
}

/// Go `[]byte` fields travel as standard base64 strings; `null` or absent is empty.
fn base64_field(value: Option<&Value>, name: &str) -> Result<Vec<u8>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| ApiError::BadRequest(format!("{name}: not base64 ({e})"))),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name}: expected a base64 string, got {}",
            gateway_core::error::json_type_name(other)
        ))),
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; RANDOM_ID_BYTES];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

fn hex_0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// go-livepeer's `common.BytesToAddress`: the last 20 bytes, left-padded when shorter.
fn address_from_bytes(b: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    let take = b.len().min(20);
    out[20 - take..].copy_from_slice(&b[b.len() - take..]);
    out
}

// ---------------------------------------------------------------------------------------------
// /sign-orchestrator-info
// ---------------------------------------------------------------------------------------------

async fn sign_orchestrator_info(State(inner): State<Arc<Inner>>) -> Json<SignOrchestratorInfoResponse> {
    // The signature covers the EIP-55 string exactly as returned; the body is ignored.
    let address = inner.key.checksum_address();
    let signature = hex_0x(&inner.key.sign(address.as_bytes()));
    Json(SignOrchestratorInfoResponse { address, signature })
}

// ---------------------------------------------------------------------------------------------
// /sign-byoc-job
// ---------------------------------------------------------------------------------------------

/// The request as Go decodes it: missing strings are empty, the timeout is an integer.
#[derive(Deserialize)]
struct ByocJobBody {
    #[serde(default)]
    id: String,
    #[serde(default)]
    capability: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    parameters: String,
    #[serde(default)]
    timeout_seconds: i64,
}

async fn sign_byoc_job(
    State(inner): State<Arc<Inner>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SignByocJobResponse>, ApiError> {
    let fields = json_object_lowercase(&body_or_400(body)?)?;
    let job: ByocJobBody = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::BadRequest(format!("invalid sign-byoc-job request: {e}")))?;
    if job.id.is_empty() || job.capability.is_empty() {
        return Err(ApiError::BadRequest("sign-byoc-job requires non-empty id and capability".into()));
    }
    let timeout_seconds = u32::try_from(job.timeout_seconds).ok().filter(|t| *t > 0).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "timeout_seconds must be between 1 and {}, got {}",
            u32::MAX,
            job.timeout_seconds
        ))
    })?;
    let job = SignByocJobRequest {
        id: job.id,
        capability: job.capability,
        request: job.request,
        parameters: job.parameters,
        timeout_seconds,
    };
    let encoding = byoc_job_v1_encoding(&job).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Json(SignByocJobResponse {
        sender: inner.key.checksum_address(),
        signature: hex_0x(&inner.key.sign(&encoding)),
    }))
}

// ---------------------------------------------------------------------------------------------
// /discover-orchestrators
// ---------------------------------------------------------------------------------------------

#[derive(Serialize)]
struct DiscoveryEntry {
    address: String,
    score: f64,
    capabilities: Vec<String>,
}

async fn discover_orchestrators(
    State(inner): State<Arc<Inner>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<DiscoveryEntry>>, ApiError> {
    let list = lock(&inner.discovery).clone();
    if list.is_empty() {
        return Err(ApiError::Unavailable("cache empty".into()));
    }
    let caps: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, v)| k == DISCOVERY_CAPS_PARAM && !v.is_empty())
        .map(|(_, v)| v.into_owned())
        .collect();
    // OR filter in go-livepeer's order: by requested capability, then list order, each
    // orchestrator once.
    let selected: Vec<&DiscoveredOrchestrator> = if caps.is_empty() {
        list.iter().collect()
    } else {
        let mut out: Vec<&DiscoveredOrchestrator> = Vec::new();
        for cap in &caps {
            for o in list.iter().filter(|o| o.capabilities.contains(cap)) {
                if !out.iter().any(|seen| seen.address == o.address) {
                    out.push(o);
                }
            }
        }
        out
    };
    Ok(Json(
        selected
            .into_iter()
            .map(|o| DiscoveryEntry {
                address: o.address.clone(),
                score: o.score.unwrap_or(DISCOVERY_DEFAULT_SCORE),
                capabilities: o.capabilities.clone(),
            })
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------------
// /generate-live-payment
// ---------------------------------------------------------------------------------------------

/// The signed session state carried by the client between payments. Field names follow
/// go-livepeer's `RemotePaymentState`, except `LastUpdateUnixNano` (see the module docs).
/// Public so tests can inspect what a payment left behind; clients must treat it as opaque.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentState {
    /// Random id of the payment session (the manifest id for BYOC).
    #[serde(rename = "StateID")]
    pub state_id: String,
    /// `0x` hex of the ticket params' `recipient_rand_hash` the nonce belongs to.
    #[serde(rename = "PMSessionID", default)]
    pub pm_session_id: String,
    /// Unix nanoseconds of the last payment; 0 before the first.
    #[serde(rename = "LastUpdateUnixNano", default)]
    pub last_update_unix_nano: i64,
    /// EIP-55 address of the orchestrator the session pays.
    #[serde(rename = "OrchestratorAddress")]
    pub orchestrator_address: String,
    /// Application label pinned at the first call.
    #[serde(rename = "App", default)]
    pub app: String,
    /// Last sender nonce used with `PMSessionID`.
    #[serde(rename = "SenderNonce", default)]
    pub sender_nonce: u32,
    /// Credit in wei the orchestrator holds beyond what has been billed (decimal string).
    #[serde(rename = "Balance", default)]
    pub balance: String,
    /// `pricePerUnit` of the session's first orchestrator info.
    #[serde(rename = "InitialPricePerUnit")]
    pub initial_price_per_unit: i64,
    /// `pixelsPerUnit` of the session's first orchestrator info.
    #[serde(rename = "InitialPixelsPerUnit")]
    pub initial_pixels_per_unit: i64,
    /// Payment type string (`lv2v`, `live`, `fixed`, `byoc`, or empty).
    #[serde(rename = "Type", default)]
    pub payment_type: String,
    /// 0 on the first payment, then +1 per call.
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: u64,
}

/// Why a [`SignerState`] could not be read back as a [`PaymentState`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateDecodeError {
    /// `State` is missing or not a string.
    #[error("state has no State string")]
    MissingState,
    /// `State` is not base64.
    #[error("State is not base64")]
    Base64,
    /// `State` is not the expected JSON.
    #[error("State is not a payment state: {0}")]
    Json(String),
}

impl PaymentState {
    /// Decodes the `State` half of a signer state without checking its signature (for tests).
    pub fn decode(state: &SignerState) -> Result<PaymentState, StateDecodeError> {
        let encoded = state.0.get("State").and_then(Value::as_str).ok_or(StateDecodeError::MissingState)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| StateDecodeError::Base64)?;
        serde_json::from_slice(&bytes).map_err(|e| StateDecodeError::Json(e.to_string()))
    }

    /// `Balance` as wei; 0 when empty.
    pub fn balance_wei(&self) -> Option<f64> {
        if self.balance.is_empty() {
            return Some(0.0);
        }
        self.balance.parse::<f64>().ok().filter(|b| b.is_finite())
    }
}

/// The `/generate-live-payment` body after key lower-casing. Numbers keep Go's integer types so
/// a fraction or an out-of-range value is a 400, as with Go's decoder.
#[derive(Deserialize)]
struct PaymentBody {
    #[serde(default)]
    orchestrator: Option<String>,
    #[serde(default)]
    state: Option<Value>,
    #[serde(default, rename = "manifestid")]
    manifest_id: Option<String>,
    #[serde(default)]
    app: Option<String>,
    #[serde(default, rename = "inpixels")]
    in_pixels: Option<i64>,
    #[serde(default, rename = "type")]
    payment_type: Option<String>,
    #[serde(default, rename = "maxprice")]
    max_price: Option<Value>,
    #[serde(default)]
    capabilities: Option<String>,
    #[serde(default, rename = "preloadseconds")]
    preload_seconds: Option<i64>,
}

/// The type string exactly as sent (it is pinned in the state) and its meaning.
struct JobType {
    raw: String,
    kind: PaymentType,
}

fn parse_job_type(raw: Option<String>) -> Result<JobType, ApiError> {
    let raw = raw.unwrap_or_default();
    let kind = serde_json::from_value::<PaymentType>(Value::String(raw.clone()))
        .map_err(|_| ApiError::BadRequest("invalid job type".into()))?;
    Ok(JobType { raw, kind })
}

/// `maxPrice` as go-livepeer validates it: positive decimal (number or numeric string), currency
/// `wei`, unit matching the payment type. Compared against `pricePerUnit / pixelsPerUnit`.
fn parse_max_price(value: Option<&Value>, kind: PaymentType) -> Result<Option<f64>, ApiError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let Value::Object(fields) = value else {
        return Err(ApiError::BadRequest(format!(
            "maxPrice must be an object, got {}",
            gateway_core::error::json_type_name(value)
        )));
    };
    let fields = lowercase_keys(fields.clone());
    let price = match fields.get("price") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|p| p.is_finite() && *p > 0.0)
    .ok_or_else(|| ApiError::BadRequest("maxPrice.price must be a positive decimal".into()))?;
    let text = |k: &str| fields.get(k).and_then(Value::as_str).unwrap_or("").trim().to_lowercase();
    if text("currency") != MAX_PRICE_CURRENCY {
        return Err(ApiError::BadRequest("maxPrice.currency must be wei".into()));
    }
    let (expected_unit, type_name) = match kind {
        PaymentType::Live => (MAX_PRICE_UNIT_LIVE, "live"),
        PaymentType::Lv2v => (MAX_PRICE_UNIT_LV2V, "lv2v"),
        PaymentType::Fixed => (MAX_PRICE_UNIT_FIXED, "fixed"),
        // go-livepeer HEAD has no unit for these (BYOC is not on HEAD at all).
        PaymentType::Byoc | PaymentType::Pixels => {
            return Err(ApiError::BadRequest("maxPrice requires payment type live, lv2v, or fixed".into()))
        }
    };
    if text("unit") != expected_unit {
        return Err(ApiError::BadRequest(format!(
            "maxPrice.unit must be {expected_unit} for payment type {type_name}"
        )));
    }
    Ok(Some(price))
}

/// The `state` object: `{"State": base64 JSON, "Sig": base64 signature}`, any key casing.
fn parse_state_object(value: Option<&Value>) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    match value {
        None | Some(Value::Null) => Ok((Vec::new(), Vec::new())),
        Some(Value::Object(fields)) => {
            let fields = lowercase_keys(fields.clone());
            Ok((
                base64_field(fields.get("state"), "state.State")?,
                base64_field(fields.get("sig"), "state.Sig")?,
            ))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "state must be an object, got {}",
            gateway_core::error::json_type_name(other)
        ))),
    }
}

/// A price ceiling and where it came from, for the 481 message.
#[derive(Clone, Copy)]
struct Ceiling {
    source: &'static str,
    wei_per_unit: f64,
}

/// Billable units for this call (go-livepeer's per-type rules). `elapsed` is seconds since the
/// session's last payment, `None` on the first.
fn billable_units(
    kind: PaymentType,
    elapsed: Option<f64>,
    in_pixels: Option<i64>,
    preload_seconds: Option<i64>,
    price: &PriceInfo,
) -> Result<i64, ApiError> {
    // Go treats a non-positive elapsed time (first call, or a clock that went backwards) as
    // "first call".
    let elapsed = elapsed.filter(|e| *e > 0.0);
    let units = match kind {
        PaymentType::Lv2v => {
            let secs = elapsed.unwrap_or(LV2V_INITIAL_PAYMENT_SECONDS as f64);
            // `as` saturates: an absurd elapsed time cannot wrap to a negative count.
            (secs * LV2V_PIXELS_PER_SECOND as f64) as i64
        }
        PaymentType::Live => elapsed.unwrap_or(LIVE_INITIAL_PAYMENT_SECONDS).ceil() as i64,
        PaymentType::Fixed => 1,
        PaymentType::Pixels => in_pixels.unwrap_or(0),
        PaymentType::Byoc => {
            let secs = match elapsed {
                None => preload_seconds.unwrap_or(0).max(i64::from(BYOC_MIN_PRELOAD_SECONDS)) as f64,
                Some(e) => e.max(1.0),
            };
            (secs.ceil() as i64)
                .checked_mul(price.pixels_per_unit)
                .ok_or_else(|| ApiError::BadRequest("billable units overflow".into()))?
        }
    };
    if units <= 0 {
        return Err(ApiError::BadRequest("missing billable unit or job type".into()));
    }
    Ok(units)
}

/// What one successful call produced.
struct Minted {
    response: GenerateLivePaymentResponse,
    tickets: u32,
}

async fn generate_live_payment(
    State(inner): State<Arc<Inner>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<GenerateLivePaymentResponse>, ApiError> {
    let fields = json_object_lowercase(&body_or_400(body)?)?;
    let minted = inner.mint(fields)?;
    inner.count(|s| {
        s.payments_minted += 1;
        s.tickets_minted += u64::from(minted.tickets);
    });
    Ok(Json(minted.response))
}

impl Inner {
    /// go-livepeer's `GenerateLivePayment`, step by step and in its order.
    fn mint(&self, fields: Map<String, Value>) -> Result<Minted, ApiError> {
        let req: PaymentBody = serde_json::from_value(Value::Object(fields))
            .map_err(|e| ApiError::BadRequest(format!("invalid payment request: {e}")))?;

        // 1. Orchestrator info, capabilities, price and ticket params.
        let encoded_info = req.orchestrator.as_deref().filter(|s| !s.trim().is_empty());
        let info: OrchestratorInfo = from_base64(
            "orchestrator",
            encoded_info.ok_or_else(|| ApiError::BadRequest("missing orchestrator".into()))?,
        )
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let caps: Option<Capabilities> = match req.capabilities.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(c) => Some(from_base64("capabilities", c).map_err(|e| ApiError::BadRequest(e.to_string()))?),
            None => None,
        };
        let price = info
            .price_info
            .clone()
            .filter(|p| p.price_per_unit != 0 && p.pixels_per_unit != 0)
            .ok_or_else(|| ApiError::BadRequest("missing or zero priceInfo".into()))?;
        if price.price_per_unit < 0 || price.pixels_per_unit < 0 {
            return Err(ApiError::BadRequest("negative priceInfo".into()));
        }
        let params = info
            .ticket_params
            .clone()
            .ok_or_else(|| ApiError::BadRequest("missing ticketParams in OrchestratorInfo".into()))?;
        let orchestrator_address = checksum_address(&address_from_bytes(&info.address));
        let job = parse_job_type(req.payment_type)?;
        let app = req.app.unwrap_or_default();

        // 2. State: verify, parse, check it belongs to this orchestrator, app and type.
        let (state_bytes, state_sig) = parse_state_object(req.state.as_ref())?;
        let has_state = !state_bytes.is_empty() || !state_sig.is_empty();
        let mut state = if has_state {
            if !verify(&state_bytes, &state_sig, &self.key.address()) {
                return Err(ApiError::BadRequest("invalid sig".into()));
            }
            let mut state: PaymentState = serde_json::from_slice(&state_bytes)
                .map_err(|_| ApiError::BadRequest("invalid state".into()))?;
            if parse_address(&state.orchestrator_address) != Some(address_from_bytes(&info.address)) {
                return Err(ApiError::BadRequest("orchestratorAddress mismatch".into()));
            }
            if state.app != app {
                return Err(ApiError::BadRequest("app mismatch".into()));
            }
            if !state.payment_type.is_empty() && state.payment_type != job.raw {
                return Err(ApiError::BadRequest("job type mismatch".into()));
            }
            state.payment_type = job.raw.clone();
            state.sequence_number = state.sequence_number.saturating_add(1);
            state
        } else {
            PaymentState {
                state_id: random_id(),
                pm_session_id: String::new(),
                last_update_unix_nano: 0,
                orchestrator_address,
                app,
                sender_nonce: 0,
                balance: String::new(),
                initial_price_per_unit: price.price_per_unit,
                initial_pixels_per_unit: price.pixels_per_unit,
                payment_type: job.raw.clone(),
                sequence_number: 0,
            }
        };

        // The manifest the orchestrator credits: BYOC pins the state id; LV2V must name the
        // orchestrator's manifest once a session is running.
        let manifest_id = match (job.kind, req.manifest_id.filter(|m| !m.is_empty())) {
            (PaymentType::Byoc, _) => state.state_id.clone(),
            (_, Some(m)) => m,
            (_, None) if has_state => return Err(ApiError::BadRequest("missing manifestID".into())),
            (_, None) => random_id(),
        };
        let mut balance = state.balance_wei().ok_or_else(|| ApiError::BadRequest("invalid state".into()))?;

        // 3. Refresh (480) when the auth token is about to expire or the ticket params expired.
        let now_nanos = self.now_nanos();
        let now_secs = now_nanos.div_euclid(1_000_000_000);
        let auth_token = info.auth_token.as_ref().ok_or_else(|| {
            ApiError::BadRequest(
                "remote signer could not check whether to refresh session: missing auth token".into(),
            )
        })?;
        let refresh = |reason: &str| ApiError::RefreshSession {
            orchestrator_url: Some(info.transcoder.clone()),
            reason: format!("refresh session for remote signer: {reason}"),
        };
        if now_secs > auth_token.expiration.saturating_sub(AUTH_TOKEN_REFRESH_WINDOW_SECS) {
            return Err(refresh("auth token expires soon"));
        }
        if ticket_params_expired(&params, now_secs) {
            return Err(refresh("ticket params expired"));
        }

        // 4. Billable units.
        let elapsed = (state.last_update_unix_nano > 0)
            .then(|| now_nanos.saturating_sub(state.last_update_unix_nano) as f64 / 1e9);
        let units = billable_units(job.kind, elapsed, req.in_pixels, req.preload_seconds, &price)?;

        // 5. Price ceilings (481): configured, requested, and the session's initial price.
        let orch_price = price.price_per_unit as f64 / price.pixels_per_unit as f64;
        let request_max = parse_max_price(req.max_price.as_ref(), job.kind)?;
        if has_state && (state.initial_price_per_unit <= 0 || state.initial_pixels_per_unit <= 0) {
            return Err(ApiError::BadRequest("invalid initial price in state".into()));
        }
        let initial_price = state.initial_price_per_unit as f64 / state.initial_pixels_per_unit as f64;
        // Exact rational comparison: an unchanged price must never read as a rise.
        let above_initial = i128::from(price.price_per_unit) * i128::from(state.initial_pixels_per_unit)
            > i128::from(state.initial_price_per_unit) * i128::from(price.pixels_per_unit);
        let configured = [
            self.max_price_wei_per_unit
                .map(|p| Ceiling { source: "configured maximum price", wei_per_unit: p }),
            request_max.map(|p| Ceiling { source: "request maxPrice", wei_per_unit: p }),
        ];
        let exceeded =
            (has_state && above_initial) || configured.iter().flatten().any(|c| orch_price > c.wei_per_unit);
        if exceeded {
            let initial =
                has_state.then_some(Ceiling { source: "initial session price", wei_per_unit: initial_price });
            let ceilings = [configured[0], configured[1], initial];
            let lowest = ceilings
                .iter()
                .flatten()
                .min_by(|a, b| a.wei_per_unit.total_cmp(&b.wei_per_unit))
                .map(|c| format!("{} ceiling {:.3}", c.source, c.wei_per_unit))
                .unwrap_or_default();
            return Err(ApiError::PriceExceeded(format!(
                "orchestrator price {orch_price:.3} exceeds {lowest}"
            )));
        }

        // 6. Fee at the initial price, tickets to bring the credit up to max(fee, EV).
        let fee = units as f64 * initial_price;
        let ev = params.expected_value_wei();
        if !(ev.is_finite() && ev > 0.0) {
            return Err(ApiError::BadRequest("ticket params have zero expected value".into()));
        }
        let min_credit = fee.max(ev);
        if balance >= min_credit {
            return Err(ApiError::NoTickets);
        }
        let needed = ((min_credit - balance) / ev).ceil();
        if needed > f64::from(MAX_TICKETS_PER_PAYMENT) {
            return Err(ApiError::BadRequest(format!(
                "numTickets {needed:.0} exceeds maximum of {MAX_TICKETS_PER_PAYMENT}"
            )));
        }
        let tickets = needed as u32; // 1..=100 here

        // 7. Tickets, with nonces that continue this recipient_rand_hash's sequence.
        let pm_session_id = hex_0x(&params.recipient_rand_hash);
        let state_nonce = if state.pm_session_id == pm_session_id { state.sender_nonce } else { 0 };
        let first_nonce = self.reserve_nonces(&params.recipient_rand_hash, state_nonce, tickets)?;
        let sender = self.key.address();
        let ticket_sender_params = (0..tickets)
            .map(|i| {
                let nonce = first_nonce + i;
                TicketSenderParams {
                    sender_nonce: nonce,
                    sig: self.key.sign(&ticket_message(&params, &sender, nonce)).to_vec(),
                }
            })
            .collect();
        let payment = Payment {
            // go-livepeer carries the expiration params beside the ticket params, not inside.
            ticket_params: Some(TicketParams { expiration_params: None, ..params.clone() }),
            sender: sender.to_vec(),
            expiration_params: params.expiration_params.clone(),
            ticket_sender_params,
            expected_price: Some(price.clone()),
        };

        // 8. Segment credentials for an empty segment. go-livepeer puts the literal `invalid`
        // in `profiles` while signing over an empty profile list; the shared message function
        // signs the field as sent, so the double leaves it empty and the two agree.
        let mut seg = SegData {
            manifest_id: manifest_id.clone().into_bytes(),
            seq: 0,
            hash: keccak256(&[]).to_vec(),
            capabilities: caps.clone(),
            auth_token: info.auth_token.clone(),
            ..Default::default()
        };
        seg.sig = self.key.sign(&seg_data_message(&seg)).to_vec();

        // 9. New state, signed over its exact JSON bytes.
        balance += f64::from(tickets) * ev - fee;
        state.balance = balance.to_string();
        state.last_update_unix_nano = now_nanos;
        state.pm_session_id = pm_session_id;
        state.sender_nonce = first_nonce + tickets - 1;
        let state_json =
            serde_json::to_vec(&state).map_err(|e| ApiError::Internal(format!("encode state: {e}")))?;
        let state_sig = self.key.sign(&state_json);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

        tracing::debug!(
            payment_type = %job.raw,
            manifest_id = %manifest_id,
            seq = state.sequence_number,
            units,
            fee,
            tickets,
            balance,
            caps = ?caps.as_ref().map(capabilities_to_queries),
            "signer minted payment"
        );
        Ok(Minted {
            response: GenerateLivePaymentResponse {
                payment: to_base64(&payment),
                seg_creds: to_base64(&seg),
                state: SignerState(serde_json::json!({"State": b64(&state_json), "Sig": b64(&state_sig)})),
            },
            tickets,
        })
    }

    /// Reserves `count` nonces for `recipient_rand_hash` and returns the first. The sequence
    /// continues from the larger of the session's own last nonce and any other session's.
    fn reserve_nonces(
        &self,
        recipient_rand_hash: &[u8],
        state_nonce: u32,
        count: u32,
    ) -> Result<u32, ApiError> {
        let mut nonces = lock(&self.nonces);
        let last = nonces.entry(recipient_rand_hash.to_vec()).or_insert(0);
        let start = (*last).max(state_nonce);
        let end =
            start.checked_add(count).ok_or_else(|| ApiError::Internal("sender nonce overflow".into()))?;
        *last = end;
        Ok(start + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Verification, for the orchestrator double
// ---------------------------------------------------------------------------------------------

/// A payment whose tickets were all signed by its sender.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedPayment {
    /// The paying address (the signer's).
    pub sender: [u8; 20],
    /// Tickets in the payment (0 for a ticket-less payment).
    pub ticket_count: usize,
    /// Expected value of one ticket in wei (`face_value × win_prob / 2^256`, as `f64`).
    pub ticket_ev_wei: f64,
    /// Each ticket's sender nonce, in payment order.
    pub nonces: Vec<u32>,
    /// The ticket params' `recipient_rand_hash` the nonces belong to (empty without tickets).
    pub recipient_rand_hash: Vec<u8>,
}

impl VerifiedPayment {
    /// The credit the payment is worth: tickets × EV.
    pub fn total_ev_wei(&self) -> f64 {
        self.ticket_count as f64 * self.ticket_ev_wei
    }
}

/// Why [`verify_payment`] refused a payment.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentRejection {
    /// `sender` is not a 20-byte address.
    #[error("payment sender is {0} bytes, expected 20")]
    BadSender(usize),
    /// Tickets without the ticket params they were drawn on.
    #[error("payment has {0} tickets but no ticket params")]
    MissingTicketParams(usize),
    /// A ticket's signature does not recover to `sender`.
    #[error("ticket {index} (nonce {nonce}) is not signed by the payment sender")]
    BadTicketSignature {
        /// Position in the payment.
        index: usize,
        /// Its sender nonce.
        nonce: u32,
    },
    /// The same nonce twice in one payment.
    #[error("sender nonce {0} appears twice in the payment")]
    DuplicateNonce(u32),
}

/// Checks that every ticket of `payment` was signed by `payment.sender` over
/// [`ticket_message`], and reports what it is worth. Expiry, the orchestrator's own ticket
/// params and nonce replay across payments are for the orchestrator to check.
pub fn verify_payment(payment: &Payment) -> Result<VerifiedPayment, PaymentRejection> {
    let sender: [u8; 20] = payment
        .sender
        .as_slice()
        .try_into()
        .map_err(|_| PaymentRejection::BadSender(payment.sender.len()))?;
    let tickets = &payment.ticket_sender_params;
    let Some(params) = &payment.ticket_params else {
        if tickets.is_empty() {
            return Ok(VerifiedPayment {
                sender,
                ticket_count: 0,
                ticket_ev_wei: 0.0,
                nonces: Vec::new(),
                recipient_rand_hash: Vec::new(),
            });
        }
        return Err(PaymentRejection::MissingTicketParams(tickets.len()));
    };
    let mut nonces = Vec::with_capacity(tickets.len());
    for (index, ticket) in tickets.iter().enumerate() {
        if nonces.contains(&ticket.sender_nonce) {
            return Err(PaymentRejection::DuplicateNonce(ticket.sender_nonce));
        }
        let message = ticket_message(params, &sender, ticket.sender_nonce);
        if recover_signer(&message, &ticket.sig) != Some(sender) {
            return Err(PaymentRejection::BadTicketSignature { index, nonce: ticket.sender_nonce });
        }
        nonces.push(ticket.sender_nonce);
    }
    Ok(VerifiedPayment {
        sender,
        ticket_count: tickets.len(),
        ticket_ev_wei: params.expected_value_wei(),
        nonces,
        recipient_rand_hash: params.recipient_rand_hash.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(ppu: i64, ppx: i64) -> PriceInfo {
        PriceInfo { price_per_unit: ppu, pixels_per_unit: ppx, ..Default::default() }
    }

    #[test]
    fn billable_units_per_type() {
        let p = price(10, 3);
        let lv2v_60 = 60 * LV2V_PIXELS_PER_SECOND as i64;
        assert_eq!(billable_units(PaymentType::Lv2v, None, None, None, &p).unwrap(), lv2v_60);
        assert_eq!(billable_units(PaymentType::Lv2v, Some(0.0), None, None, &p).unwrap(), lv2v_60);
        assert_eq!(
            billable_units(PaymentType::Lv2v, Some(2.5), None, None, &p).unwrap(),
            (2.5 * LV2V_PIXELS_PER_SECOND as f64) as i64
        );
        assert_eq!(billable_units(PaymentType::Live, None, None, None, &p).unwrap(), 10);
        assert_eq!(billable_units(PaymentType::Live, Some(4.2), None, None, &p).unwrap(), 5);
        assert_eq!(billable_units(PaymentType::Fixed, Some(99.0), None, None, &p).unwrap(), 1);
        assert_eq!(billable_units(PaymentType::Pixels, None, Some(1234), None, &p).unwrap(), 1234);
        assert!(billable_units(PaymentType::Pixels, None, None, None, &p).is_err());
        assert!(billable_units(PaymentType::Pixels, None, Some(-5), None, &p).is_err());
        // BYOC: preload floored at 60 s, later at least 1 s, times pixelsPerUnit.
        assert_eq!(billable_units(PaymentType::Byoc, None, None, Some(10), &p).unwrap(), 60 * 3);
        assert_eq!(billable_units(PaymentType::Byoc, None, None, Some(90), &p).unwrap(), 90 * 3);
        assert_eq!(billable_units(PaymentType::Byoc, Some(0.2), None, None, &p).unwrap(), 3);
        assert_eq!(billable_units(PaymentType::Byoc, Some(7.1), None, None, &p).unwrap(), 8 * 3);
        assert!(billable_units(PaymentType::Byoc, None, None, Some(i64::MAX), &price(1, i64::MAX)).is_err());
    }

    #[test]
    fn max_price_validation() {
        let mp = |v: Value, k| parse_max_price(Some(&v), k);
        let ok = serde_json::json!({"price": 2.5, "currency": "WEI", "unit": "720p-pixel-seconds"});
        assert_eq!(mp(ok, PaymentType::Lv2v).unwrap(), Some(2.5));
        let as_string = serde_json::json!({"price": "7", "currency": "wei", "unit": "seconds"});
        assert_eq!(mp(as_string, PaymentType::Live).unwrap(), Some(7.0));
        let wrong_unit = serde_json::json!({"price": 1, "currency": "wei", "unit": "seconds"});
        assert!(mp(wrong_unit, PaymentType::Fixed).unwrap_err().to_string().contains("must be fixed"));
        assert!(mp(serde_json::json!({"price": 0, "currency": "wei", "unit": "fixed"}), PaymentType::Fixed)
            .is_err());
        assert!(mp(serde_json::json!({"price": 1, "currency": "eth", "unit": "fixed"}), PaymentType::Fixed)
            .is_err());
        assert!(mp(serde_json::json!("cheap"), PaymentType::Fixed).is_err());
        assert_eq!(parse_max_price(Some(&Value::Null), PaymentType::Fixed).unwrap(), None);
    }

    #[test]
    fn address_from_bytes_pads_and_truncates() {
        assert_eq!(address_from_bytes(&[1, 2])[18..], [1, 2]);
        let long: Vec<u8> = (0..22).collect();
        assert_eq!(address_from_bytes(&long)[0], 2);
    }

    #[test]
    fn faults_are_consumed_in_order() {
        let signer = LocalSigner::new(SignerConfig::default());
        signer.set_fault(SignerFault::RespondStatus {
            endpoint: Some("generate-live-payment".into()),
            status: 480,
            count: 1,
        });
        signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 503, count: 2 });
        signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 0, count: 1 }); // ignored
        let inner = &signer.inner;
        assert_eq!(inner.take_faults(GENERATE_LIVE_PAYMENT_PATH).0, Some(480));
        assert_eq!(inner.take_faults(SIGN_ORCHESTRATOR_INFO_PATH).0, Some(503));
        assert_eq!(inner.take_faults(GENERATE_LIVE_PAYMENT_PATH).0, Some(503));
        assert_eq!(inner.take_faults(GENERATE_LIVE_PAYMENT_PATH).0, None);
        signer.set_fault(SignerFault::Delay { endpoint: None, delay_ms: 5, count: 0 });
        for _ in 0..3 {
            assert_eq!(inner.take_faults("/x").1, Some(Duration::from_millis(5)));
        }
        signer.clear_faults();
        assert_eq!(inner.take_faults("/x"), (None, None));
    }

    #[test]
    fn fault_json_shape() {
        let f: SignerFault = serde_json::from_str(
            r#"{"kind":"respond_status","endpoint":"/sign-byoc-job","status":482,"count":3}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            SignerFault::RespondStatus { endpoint: Some("/sign-byoc-job".into()), status: 482, count: 3 }
        );
        let d: SignerFault = serde_json::from_str(r#"{"kind":"delay","delay_ms":20}"#).unwrap();
        assert_eq!(d, SignerFault::Delay { endpoint: None, delay_ms: 20, count: 0 });
        assert!(serde_json::from_str::<SignerFault>(r#"{"kind":"explode"}"#).is_err());
        assert_eq!(
            SignerFault::RespondStatus { endpoint: None, status: 1000, count: 1 }.validate(),
            Err(FaultError::InvalidStatus(1000))
        );
    }

    #[test]
    fn config_debug_hides_token() {
        let c = SignerConfig { bearer_token: Some("s3cret".into()), ..Default::default() };
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn nonces_continue_across_sessions() {
        let signer = LocalSigner::new(SignerConfig::default());
        let inner = &signer.inner;
        assert_eq!(inner.reserve_nonces(b"h1", 0, 3).unwrap(), 1);
        // Another session on the same params continues after 3, not from its own 0.
        assert_eq!(inner.reserve_nonces(b"h1", 0, 2).unwrap(), 4);
        // A session whose own state is ahead (e.g. after a signer restart) wins.
        assert_eq!(inner.reserve_nonces(b"h1", 10, 1).unwrap(), 11);
        assert_eq!(inner.reserve_nonces(b"h2", 0, 1).unwrap(), 1);
        assert!(inner.reserve_nonces(b"h3", u32::MAX - 1, 2).is_err());
    }
}
