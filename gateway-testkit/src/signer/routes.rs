//! The signer's HTTP side: error bodies, authentication and fault middleware, request parsing,
//! and the handlers (`/generate-live-payment`'s work is in `payment`).

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use gateway_core::lp_rpc::{from_base64, OrchestratorInfo};
use gateway_core::signer::{
    byoc_job_v1_encoding, DiscoveredOrchestrator, GenerateLivePaymentResponse, SignByocJobRequest,
    SignByocJobResponse, SignOrchestratorInfoResponse, DISCOVERY_CAPS_PARAM, DISCOVER_ORCHESTRATORS_PATH,
    GENERATE_LIVE_PAYMENT_PATH, HEADER_ORCHESTRATOR_URL, SIGN_BYOC_JOB_PATH, SIGN_ORCHESTRATOR_INFO_PATH,
    STATUS_NO_TICKETS, STATUS_PRICE_EXCEEDED, STATUS_REFRESH_SESSION,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::{lock, Inner};

/// go-livepeer caps the `/sign-byoc-job` body at 1 MiB (`http.MaxBytesReader`).
pub(super) const SIGN_BYOC_JOB_MAX_BODY_BYTES: usize = 1 << 20;
/// go-livepeer sets no limit on `/generate-live-payment`; a real `OrchestratorInfo` is a few KiB,
/// so this only keeps a runaway test from buffering without bound.
pub(super) const GENERATE_LIVE_PAYMENT_MAX_BODY_BYTES: usize = 4 << 20;
/// The score go-livepeer's discovery endpoint reports for every entry (`common.Score_Trusted`);
/// used when the owner's entry has none.
const DISCOVERY_DEFAULT_SCORE: f64 = 1.0;
/// Bytes of randomness in a generated state or manifest id (hex-encoded).
const RANDOM_ID_BYTES: usize = 8;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Every non-200 answer. The body is always `{"error": {"message": ...}}` (JSON).
#[derive(Debug, Error)]
pub(super) enum ApiError {
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
pub(super) fn custom_status(code: u16) -> StatusCode {
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
pub(super) async fn require_bearer(
    State(inner): State<Arc<Inner>>,
    request: Request,
    next: Next,
) -> Response {
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
pub(super) async fn observe_and_inject(
    State(inner): State<Arc<Inner>>,
    request: Request,
    next: Next,
) -> Response {
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
pub(super) fn json_object_lowercase(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
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

pub(super) fn lowercase_keys(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect()
}

pub(super) fn body_or_400(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::BadRequest(format!("could not read request body: {e}")))
}

/// Go `[]byte` fields travel as standard base64 strings; `null` or absent is empty.
pub(super) fn base64_field(value: Option<&Value>, name: &str) -> Result<Vec<u8>, ApiError> {
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

pub(super) fn random_id() -> String {
    let mut bytes = [0u8; RANDOM_ID_BYTES];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

pub(super) fn hex_0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

// ---------------------------------------------------------------------------------------------
// /sign-orchestrator-info
// ---------------------------------------------------------------------------------------------

pub(super) async fn sign_orchestrator_info(
    State(inner): State<Arc<Inner>>,
) -> Json<SignOrchestratorInfoResponse> {
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

pub(super) async fn sign_byoc_job(
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
pub(super) struct DiscoveryEntry {
    address: String,
    score: f64,
    capabilities: Vec<String>,
}

pub(super) async fn discover_orchestrators(
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

pub(super) async fn generate_live_payment(
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
