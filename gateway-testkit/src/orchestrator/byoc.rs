//! BYOC: `/process/token`, `/process/request/*` and the `/ai/stream/*` routes.

use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::capabilities::Capability;
use gateway_core::eth::{parse_address, parse_hex};
use gateway_core::jobs::{self, EthAddressHeader, JobParameters, JobRequest};
use gateway_core::signer::{byoc_job_v1_encoding, SignByocJobRequest};
use gateway_core::trickle::{channel_url, ChannelNames, MIME_JSON, MIME_JSONL, MIME_MPEGTS};
use tokio_util::sync::CancellationToken;

use super::{header, http_error, CapabilityOffer, Inner, LocalOrchestrator, Reject, Session};
use crate::keys;
use crate::workers;

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
pub(super) async fn process_token(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
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
            let price = gateway_core::lp_rpc::PriceInfo {
                price_per_unit: offer.price_per_unit,
                pixels_per_unit: offer.pixels_per_unit,
                ..Default::default()
            };
            let p = inner.ticket_params(&addr, &price);
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
pub(super) async fn process_request(
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
pub(super) async fn stream_start(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) async fn byoc_debits(
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
pub(super) async fn stream_payment(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
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
pub(super) async fn stream_update(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
pub(super) async fn stream_stop(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let job = match verified_job(inner, &headers) {
        Ok(j) => j,
        Err(r) => return r.into_response(),
    };
    // go-livepeer relays the worker's answer and answers 200 when the worker is gone.
    inner.stop_session(&stream_id_of(&job));
    StatusCode::OK.into_response()
}
