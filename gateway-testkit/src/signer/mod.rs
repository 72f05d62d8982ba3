//! The remote signer double: go-livepeer's `-remoteSigner` HTTP API on a real socket, so the
//! gateway's payment code is exercised against the same status codes, state round trip and
//! ticket arithmetic it meets on the network.
//!
//! Endpoints (paths from [`livepeer_gateway_core::signer`](gateway_core::signer)):
//! - `POST /sign-orchestrator-info`: the signer's address and its signature over that address.
//! - `POST /generate-live-payment`: tickets (`Payment`), segment credentials (`SegData`) and the
//!   next signed state, with go-livepeer's 480 / 481 / 482 answers.
//! - `POST /sign-byoc-job`: signature over a BYOC job's V1 encoding.
//! - `GET /discover-orchestrators`: a list the owner sets with [`LocalSigner::set_discovery`].
//!
//! Like the real signer it is stateless per session: everything a session needs travels in the
//! signed state blob, nonces included. A session whose state names other ticket parameters (a
//! different `recipient_rand_hash`) restarts its nonces at 1, as go-livepeer does, so a client
//! that drops its state and pays again on the same ticket parameters reuses nonces and the
//! orchestrator refuses them.
//!
//! Tickets are go-livepeer's exactly ([`crate::tickets`]): hashed and signed as a go
//! orchestrator verifies them, and counted with go-livepeer's exact arithmetic (`big.Rat`
//! expected value over 2^256 − 1, `max(fee, EV)`, ceiling division, a balance kept as a
//! `RatString`).
//!
//! The state blob is signed JSON with go-livepeer's keys, except that the last update time is
//! `LastUpdateUnixNano` (an integer) rather than Go's RFC 3339 `LastUpdate`: clients treat the
//! blob as opaque, and an integer avoids a calendar implementation here.
//!
//! Layout: this module (configuration, faults, counters), `routes` (HTTP handlers, errors,
//! middleware), `payment` (`/generate-live-payment`'s checks and ticket minting), `state` (the
//! signed state blob).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use gateway_core::signer::{
    DiscoveredOrchestrator, DISCOVER_ORCHESTRATORS_PATH, GENERATE_LIVE_PAYMENT_PATH, SIGN_BYOC_JOB_PATH,
    SIGN_ORCHESTRATOR_INFO_PATH,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::keys::EthKey;
use routes::{
    discover_orchestrators, generate_live_payment, observe_and_inject, require_bearer, sign_byoc_job,
    sign_orchestrator_info, ApiError, GENERATE_LIVE_PAYMENT_MAX_BODY_BYTES, SIGN_BYOC_JOB_MAX_BODY_BYTES,
};

mod payment;
mod routes;
mod state;

pub use crate::tickets::{verify_payment, PaymentRejection, VerifiedPayment};
pub use state::{PaymentState, StateDecodeError};

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
    /// Which go-livepeer signer to copy: master has no `/sign-byoc-job` and refuses payment
    /// type `byoc` ("invalid job type").
    pub go_version: crate::GoVersion,
}

impl std::fmt::Debug for SignerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerConfig")
            .field("key", &self.key)
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("max_price_wei_per_unit", &self.max_price_wei_per_unit)
            .field("go_version", &self.go_version)
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
    /// The `ManifestID` the last `/generate-live-payment` request named, as sent.
    pub last_manifest_id: Option<String>,
    /// The payment `type` of that request.
    pub last_payment_type: Option<String>,
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
    go_version: crate::GoVersion,
    discovery: Mutex<Vec<DiscoveredOrchestrator>>,
    faults: Mutex<Vec<ActiveFault>>,
    stats: Mutex<SignerStats>,
    /// Added to the wall clock, so tests can let time pass without waiting.
    clock_offset_nanos: AtomicI64,
}

/// A mutex guard even if a panicking thread poisoned it: the data are plain counters and lists.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
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
                go_version: config.go_version,
                discovery: Mutex::new(Vec::new()),
                faults: Mutex::new(Vec::new()),
                stats: Mutex::new(SignerStats::default()),
                clock_offset_nanos: AtomicI64::new(0),
            }),
        }
    }

    /// The HTTP API with this signer's state baked in; serve it with `axum::serve`.
    pub fn router(&self) -> Router {
        let inner = self.inner.clone();
        let mut router =
            Router::new().route(SIGN_ORCHESTRATOR_INFO_PATH, post(sign_orchestrator_info)).route(
                GENERATE_LIVE_PAYMENT_PATH,
                post(generate_live_payment)
                    .layer(DefaultBodyLimit::max(GENERATE_LIVE_PAYMENT_MAX_BODY_BYTES)),
            );
        // go-livepeer master has no BYOC job signing.
        if inner.go_version == crate::GoVersion::Pr3869 {
            router = router.route(
                SIGN_BYOC_JOB_PATH,
                post(sign_byoc_job).layer(DefaultBodyLimit::max(SIGN_BYOC_JOB_MAX_BODY_BYTES)),
            );
        }
        router
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
    pub(super) fn now_nanos(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        wall.saturating_add(self.clock_offset_nanos.load(Ordering::SeqCst))
    }

    pub(super) fn count(&self, update: impl FnOnce(&mut SignerStats)) {
        update(&mut lock(&self.stats));
    }

    /// Takes the status fault and the delay fault this call consumes, if any.
    pub(super) fn take_faults(&self, path: &str) -> (Option<u16>, Option<Duration>) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
