//! Scope on an orchestrator with a serverless AI worker, as go-livepeer master serves it
//! (`server/ai_http.go` `StartScope`, `processScopePayment`, `scopePaymentChallenge`,
//! `DiscoverLiveRunners`; `ai/worker/serverless_worker.go` `Version`, `GetLiveAICapacity`):
//!
//! - `GET /discovery` lists each live-video-to-video model of the worker at `{svc}/scope`
//!   (app `live-video-to-video/{model}`, version `serverless-1.0.0`, GPU `H100`, capacity
//!   idle + in use) with, on chain, the model's price as whole wei per `720p-pixel-seconds`.
//! - `POST /scope` (body ≤ 1 MB, the LV2V request JSON): on chain, without `Livepeer-Payment`
//!   a 402 challenge (ticket params for the `Livepeer-Payer-Address` sender at the
//!   `live-video-to-video/scope` price, a new manifest id, `payment_url` `{svc}/payment`);
//!   paid, the credentials are checked (403), the payment processed (400) and the balance
//!   checked (400 `Insufficient balance`). Then 503 `insufficient capacity` without a free
//!   `scope` model; else the `{mid}-control` and `{mid}-events` channels are made, the worker
//!   started, and `{control_url, events_url, manifest_id}` answered. Time is debited as LV2V's
//!   (720p30 pixels a second) until the balance runs out; the session then ends.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::capabilities::Capability;
use gateway_core::runners::{DiscoveredRunner, RunnerGpu, RunnerPriceInfo, HEADER_PAYER_ADDRESS};
use gateway_core::trickle::MIME_JSON;
use tokio_util::sync::CancellationToken;

use super::runner_sessions::{challenge_body, json_error, payment_info};
use super::runners::json_ok;
use super::{header, http_error, Inner, LocalOrchestrator, PaymentRoute};
use crate::tickets::{fixed_bytes, price_rat};
use crate::workers;

/// go's `maxScopeRequestBodySize`.
const MAX_SCOPE_BODY_BYTES: usize = 1 << 20;
/// The model Scope runs as (go's `StartScope`).
const SCOPE_MODEL: &str = "scope";
/// What go's serverless worker reports as its version; the Python SDK tells the variant by it.
pub const SERVERLESS_VERSION: &str = "serverless-1.0.0";
/// Pixels in a second of 720p30, the LV2V payment unit.
const PIXELS_PER_SECOND: f64 = 1280.0 * 720.0 * 30.0;

impl LocalOrchestrator {
    /// The serverless worker's entries in `/discovery` (none without one).
    pub(super) fn serverless_runners(&self) -> Vec<DiscoveredRunner> {
        let inner = &self.inner;
        if !inner.config.serverless_scope {
            return Vec::new();
        }
        let service = inner.service_uri.trim_end_matches('/');
        let in_use = inner.in_use.lock().unwrap_or_else(|e| e.into_inner()).clone();
        inner
            .config
            .offers
            .iter()
            .enumerate()
            .filter(|(_, o)| o.capability == Capability::LiveVideoToVideo)
            .map(|(i, o)| {
                let used = in_use.get(&i).copied().unwrap_or(0).max(0);
                let capacity = i64::from(o.capacity);
                let price = (!inner.config.offchain && o.pixels_per_unit != 0).then(|| {
                    let reduced = price_rat(&gateway_core::lp_rpc::PriceInfo {
                        price_per_unit: o.price_per_unit,
                        pixels_per_unit: o.pixels_per_unit,
                        ..Default::default()
                    });
                    // go shows the numerator of the reduced price (`PriceToInt64(...).Num()`).
                    let numer = reduced.map(|r| r.numer().to_string()).unwrap_or_default();
                    RunnerPriceInfo {
                        price: serde_json::Value::from(numer.parse::<i64>().unwrap_or(0)),
                        currency: "wei".into(),
                        unit: "720p-pixel-seconds".into(),
                    }
                });
                DiscoveredRunner {
                    url: format!("{service}/scope"),
                    gpu: Some(RunnerGpu { name: "H100".into(), ..Default::default() }),
                    app: format!("live-video-to-video/{}", o.model),
                    version: SERVERLESS_VERSION.into(),
                    capacity,
                    capacity_used: used,
                    capacity_available: (capacity - used).max(0),
                    price_info: price,
                    ..Default::default()
                }
            })
            .collect()
    }
}

/// `POST /scope`.
pub(super) async fn start_scope(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    if body.len() > MAX_SCOPE_BODY_BYTES {
        return http_error(StatusCode::BAD_REQUEST, "http: request body too large");
    }
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
        return http_error(StatusCode::BAD_REQUEST, e.to_string());
    }
    let offer = inner.offer_for(Capability::LiveVideoToVideo, SCOPE_MODEL).map(|(i, o)| (i, o.clone()));
    let (manifest, payer) = if inner.config.offchain {
        (hex::encode(rand::random::<[u8; 4]>()), None)
    } else {
        match paid_manifest(&orch, &headers, offer.as_ref().map(|(_, o)| o)) {
            Ok(paid) => paid,
            Err(refusal) => return *refusal,
        }
    };
    let Some((offer_index, offer)) = offer.filter(|_| inner.config.serverless_scope) else {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    };
    if !inner.reserve(offer_index) {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "insufficient capacity");
    }
    let (control, events) = (format!("{manifest}-control"), format!("{manifest}-events"));
    inner.trickle.create_channel(&control, MIME_JSON);
    inner.trickle.create_channel(&events, MIME_JSON);
    inner.counters.scope_sessions_started.fetch_add(1, Ordering::Relaxed);
    let end = CancellationToken::new();
    let options =
        workers::WorkerOptions { event_interval: inner.config.event_interval, pipeline: SCOPE_MODEL.into() };
    tokio::spawn(workers::run_scope(
        inner.trickle.clone(),
        control.clone(),
        events.clone(),
        options,
        end.clone(),
    ));
    let wei_per_second = match (&payer, price_rat(&offer_price(&offer))) {
        (Some(_), Some(p)) => rat_f64(&p) * PIXELS_PER_SECOND,
        _ => 0.0,
    };
    tokio::spawn(run_session(orch.clone(), manifest.clone(), payer, wei_per_second, offer_index, end));
    let trickle = |name: &str| format!("{}/ai/trickle/{name}", inner.service_uri);
    json_ok(&serde_json::json!({
        "control_url": trickle(&control),
        "events_url": trickle(&events),
        "manifest_id": manifest,
    }))
}

/// go's `processScopePayment`: the challenge when there is no payment, else the paid manifest
/// and its payer.
fn paid_manifest(
    orch: &LocalOrchestrator,
    headers: &HeaderMap,
    offer: Option<&super::CapabilityOffer>,
) -> Result<(String, Option<[u8; 20]>), Box<Response>> {
    let inner = &orch.inner;
    let refuse = |r: super::Reject| Box::new(r.into_response());
    let payment = header(headers, gateway_core::jobs::HEADER_PAYMENT).filter(|p| !p.is_empty());
    let Some(_) = payment else {
        let payer = header(headers, HEADER_PAYER_ADDRESS).and_then(gateway_core::eth::parse_address);
        let Some(sender) = payer else {
            return Err(Box::new(json_error(
                StatusCode::PAYMENT_REQUIRED,
                "invalid live runner payment signer address",
            )));
        };
        let price = offer.map(offer_price).unwrap_or_default();
        let info = payment_info(inner, &sender, price, hex::encode(rand::random::<[u8; 4]>()));
        let body = challenge_body(inner, &info, format!("{}/payment", inner.service_uri));
        return Err(Box::new(
            (StatusCode::PAYMENT_REQUIRED, [("content-type", "application/json")], body).into_response(),
        ));
    };
    let payment = Inner::decode_payment(headers).map_err(refuse)?;
    let sender = fixed_bytes(&payment.sender);
    let seg = inner.check_segment(headers, &sender).map_err(refuse)?;
    // go only logs a manifest that differs from the auth token's session.
    let manifest = String::from_utf8_lossy(&seg.manifest_id).into_owned();
    inner
        .process_payment(&payment, &manifest, PaymentRoute::ScopeStart)
        .map_err(|r| refuse(super::Reject(StatusCode::BAD_REQUEST, r.1)))?;
    let priced = payment.expected_price.as_ref().is_some_and(|p| p.price_per_unit > 0);
    if priced && orch.balance(&sender, &manifest) <= 0.0 {
        return Err(Box::new(http_error(StatusCode::BAD_REQUEST, "Insufficient balance")));
    }
    Ok((manifest, Some(sender)))
}

fn offer_price(offer: &super::CapabilityOffer) -> gateway_core::lp_rpc::PriceInfo {
    gateway_core::lp_rpc::PriceInfo {
        price_per_unit: offer.price_per_unit,
        pixels_per_unit: offer.pixels_per_unit,
        ..Default::default()
    }
}

fn rat_f64(r: &crate::tickets::Rat) -> f64 {
    crate::tickets::rat_to_f64(r)
}

/// Debits the session's time every accounting interval and ends it when the balance cannot
/// cover it (go's LV2V payment processor failing `AccountPayment`: `closeSession`).
async fn run_session(
    orch: LocalOrchestrator,
    manifest: String,
    payer: Option<[u8; 20]>,
    wei_per_second: f64,
    offer_index: usize,
    end: CancellationToken,
) {
    let inner = &orch.inner;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = end.cancelled() => break,
            _ = tokio::time::sleep(inner.config.lv2v_accounting_interval) => {}
        }
        let Some(sender) = payer.filter(|_| wei_per_second > 0.0) else { continue };
        let fee = last.elapsed().as_secs_f64() * inner.config.usage_time_scale * wei_per_second;
        last = Instant::now();
        if orch.balance(&sender, &manifest) < fee {
            tracing::info!(manifest, "ending scope session: insufficient balance");
            inner.counters.stopped_for_payment.fetch_add(1, Ordering::Relaxed);
            end.cancel();
            break;
        }
        inner.debit(sender, &manifest, fee);
    }
    inner.trickle.close_channel(&format!("{manifest}-control"));
    inner.trickle.close_channel(&format!("{manifest}-events"));
    inner.release(offer_index);
}
