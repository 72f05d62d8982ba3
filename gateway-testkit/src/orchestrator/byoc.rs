//! BYOC: `/process/token`, `/process/request/*` and the `/ai/stream/*` routes, answering as
//! go-livepeer's orchestrator does (PR #3869 by default, master where [`GoVersion::Master`] says).
//!
//! Every job route first runs go's `setupOrchJob` (`byoc/job_orchestrator.go`), in its order:
//! job credentials (base64 JSON `Livepeer` header, `timeout_seconds`, the signature), capacity
//! (reserved without being enforced, refused only for an unregistered capability), price (whole
//! wei per second), payment (credited before anything else is parsed, then 60 s of balance
//! required), then `request` must be a JSON object. The routes then differ in status codes and
//! wording, which are go's, quirks included (capacity leaked or freed twice, the low-balance
//! warning never reset, a duplicate stream id closing the live stream's channels). `CONFORMANCE.md`
//! lists each rule with go's function and the test that holds it.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::capabilities::Capability;
use gateway_core::eth::parse_address;
use gateway_core::jobs::{self, EthAddressHeader, JobParameters, JobRequest, JobRequestDetails};
use gateway_core::lp_rpc::PriceInfo;
use gateway_core::signer::{byoc_job_v1_encoding, SignByocJobRequest};
use gateway_core::trickle::{channel_url, ChannelNames, MIME_JSON, MIME_JSONL, MIME_MPEGTS};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{header, http_error, CapabilityOffer, GoVersion, Inner, LocalOrchestrator, Reject, Session};
use crate::keys;
use crate::workers;

/// go's `errNoTimeoutSet`.
const ERR_NO_TIMEOUT: &str = "no timeout_seconds set with request, timeout_seconds is required";
/// go's `errNoCapabilityCapacity`: the capability is not registered.
const ERR_NO_CAPACITY: &str = "No capacity available for capability";
/// go's `errPaymentError` (#3869).
const ERR_PAYMENT: &str = "Could not parse payment";
/// go's `errInsufficientBalance`.
const ERR_INSUFFICIENT_BALANCE: &str = "Insufficient balance for request";
/// go's single-shot SSE answers debit this many seconds of price every as many seconds.
const SSE_DEBIT_SECONDS: u64 = 5;

/// Why `setupOrchJob` refused a job; `Display` is go's error text.
#[derive(Debug)]
enum SetupError {
    Creds,
    NoTimeout,
    NoCapacity,
    Payment,
    InsufficientBalance,
    RequestDetails(String),
    /// Where go's handler panics (a nil balance on master, a payment without expiration
    /// params): no answer, the connection drops.
    Panic(String),
}

impl SetupError {
    /// The answer to a refused job: `status` with `prefix` and go's text, or a dropped
    /// connection where go panics.
    fn respond(self, status: StatusCode, prefix: &str) -> Response {
        match self {
            SetupError::Panic(what) => Reject::panic(what).into_response(),
            e => http_error(status, format!("{prefix}{e}")),
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Creds => f.write_str(jobs::ERR_NO_JOB_CREDS),
            SetupError::NoTimeout => f.write_str(ERR_NO_TIMEOUT),
            SetupError::NoCapacity => f.write_str(ERR_NO_CAPACITY),
            SetupError::Payment => f.write_str(ERR_PAYMENT),
            SetupError::InsufficientBalance => f.write_str(ERR_INSUFFICIENT_BALANCE),
            SetupError::RequestDetails(e) => write!(f, "Unable to unmarshal job request details err={e}"),
            SetupError::Panic(what) => write!(f, "handler panic: {what}"),
        }
    }
}

/// A job that passed `setupOrchJob`.
struct OrchJob {
    req: JobRequest,
    /// `HexToAddress(sender)`: whose balance pays.
    sender: [u8; 20],
    /// Whole wei per second (0: free).
    price: i64,
    details: JobRequestDetails,
    /// The registered offer, when the capability is registered.
    offer: Option<usize>,
}

/// go's BYOC price (`JobPriceInfo`): whole wei per second, rounded down, 0 offchain or for a
/// capability it does not run. A price below 1 wei per second is free.
pub(super) fn byoc_price_per_second(offer: &CapabilityOffer) -> i64 {
    if offer.price_per_unit <= 0 || offer.pixels_per_unit <= 0 {
        return 0;
    }
    offer.price_per_unit / offer.pixels_per_unit
}

impl Inner {
    fn byoc_offer(&self, capability: &str) -> Option<(usize, &CapabilityOffer)> {
        self.offer_for(Capability::Byoc, capability)
    }

    fn job_price(&self, capability: &str) -> i64 {
        match self.byoc_offer(capability) {
            Some((_, offer)) if !self.config.offchain => byoc_price_per_second(offer),
            _ => 0,
        }
    }
}

/// go's signature hex rule: more than 130 characters loses its first two (the `0x`), then hex.
fn decode_sig(sig: &str) -> Option<Vec<u8>> {
    let digits = if sig.len() > 130 { sig.get(2..)? } else { sig };
    hex::decode(digits).ok()
}

/// The message a job signature covers: the V1 encoding (#3869) or `request + parameters` (master).
fn job_message(version: GoVersion, job: &JobRequest) -> Option<Vec<u8>> {
    match version {
        GoVersion::Pr3869 => byoc_job_v1_encoding(&SignByocJobRequest {
            id: job.id.clone(),
            capability: job.capability.clone(),
            request: job.request.clone(),
            parameters: job.parameters.clone(),
            timeout_seconds: job.timeout_seconds,
        })
        .ok(),
        GoVersion::Master => Some(format!("{}{}", job.request, job.parameters).into_bytes()),
    }
}

/// go's `verifyJobCreds`: decode, timeout, signature (skipped offchain, but the hex must decode),
/// then reserve capacity when asked.
fn verify_job_creds(inner: &Inner, headers: &HeaderMap, reserve: bool) -> Result<OrchJob, SetupError> {
    let raw = header(headers, jobs::HEADER_JOB).unwrap_or("");
    let req = JobRequest::from_header(raw).map_err(|_| SetupError::Creds)?;
    if req.timeout_seconds == 0 {
        return Err(SetupError::NoTimeout);
    }
    let sig = decode_sig(&req.sig).ok_or(SetupError::Creds)?;
    let sender = parse_address(&req.sender).unwrap_or([0u8; 20]);
    if !inner.config.offchain {
        let msg = job_message(inner.config.go_version, &req).ok_or(SetupError::Creds)?;
        if !keys::verify(&msg, &sig, &sender) {
            return Err(SetupError::Creds);
        }
    }
    let offer = inner.byoc_offer(&req.capability).map(|(i, _)| i);
    if reserve {
        inner.byoc_reserve(offer.ok_or(SetupError::NoCapacity)?);
    }
    let price = inner.job_price(&req.capability);
    Ok(OrchJob { req, sender, price, details: JobRequestDetails::default(), offer })
}

/// go's `setupOrchJob`.
fn setup_job(orch: &LocalOrchestrator, headers: &HeaderMap, reserve: bool) -> Result<OrchJob, SetupError> {
    let inner = &orch.inner;
    let mut job = verify_job_creds(inner, headers, reserve)?;
    if let Err(e) = confirm_payment(orch, headers, &job) {
        // go frees here whether or not this route reserved.
        if let Some(i) = job.offer {
            inner.byoc_free(i);
        }
        return Err(e);
    }
    // After the payment was credited; a failure here leaks the reservation, as in go.
    job.details =
        JobRequestDetails::parse(&job.req.request).map_err(|e| SetupError::RequestDetails(e.to_string()))?;
    Ok(job)
}

/// go's `confirmPayment`: free jobs skip payment; priced ones credit the payment (to the
/// payment's sender) and then need 60 s of balance on the job's sender.
fn confirm_payment(orch: &LocalOrchestrator, headers: &HeaderMap, job: &OrchJob) -> Result<(), SetupError> {
    let inner = &orch.inner;
    if job.price <= 0 {
        return Ok(());
    }
    let raw = header(headers, jobs::HEADER_PAYMENT).unwrap_or("");
    if !raw.is_empty() {
        if let Err(rejected) = inner.accept_payment(headers, &job.req.capability) {
            if rejected.is_panic() {
                return Err(SetupError::Panic(rejected.1));
            }
            if inner.config.go_version == GoVersion::Master {
                // master goes on with a nil balance and panics comparing it.
                return Err(SetupError::Panic("nil balance after a bad Livepeer-Payment (master)".into()));
            }
            return Err(SetupError::Payment);
        }
    }
    let minimum = (job.price as f64) * inner.config.byoc_min_balance_seconds as f64;
    if orch.balance(&job.sender, &job.req.capability) < minimum {
        return Err(SetupError::InsufficientBalance);
    }
    Ok(())
}

/// go's `chargeForCompute`: whole seconds, rounded up, since `started`; the balance after.
fn charge(orch: &LocalOrchestrator, job: &OrchJob, started: Instant) -> f64 {
    let inner = &orch.inner;
    if job.price <= 0 || inner.config.offchain {
        return orch.balance(&job.sender, &job.req.capability);
    }
    let seconds = started.elapsed().as_secs_f64().ceil().max(1.0);
    inner.debit(job.sender, &job.req.capability, seconds * job.price as f64)
}

fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// `Livepeer-Balance` on start and single-shot answers: rounded half away from zero.
fn rounded_balance(balance: f64) -> String {
    format!("{}", balance.round() as i64)
}

/// `GET /process/token` (`GetJobToken`).
pub(super) async fn process_token(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let raw = header(&headers, jobs::HEADER_ETH_ADDRESS).unwrap_or("");
    if raw.is_empty() {
        return http_error(
            StatusCode::BAD_REQUEST,
            "Must have eth address and signature on address in Livepeer-Eth-Address header",
        );
    }
    let verified = EthAddressHeader::from_header(raw).ok().filter(|eth| {
        let (Some(sig), addr) = (decode_sig(&eth.sig), parse_address(&eth.addr).unwrap_or([0u8; 20])) else {
            return false;
        };
        inner.config.offchain || keys::verify(eth.addr.as_bytes(), &sig, &addr)
    });
    let Some(eth) = verified else {
        return http_error(StatusCode::BAD_REQUEST, "Invalid eth address header ");
    };
    let capability = header(&headers, jobs::HEADER_CAPABILITY).unwrap_or("");
    if capability.is_empty() {
        return http_error(
            StatusCode::BAD_REQUEST,
            "Job capabilities not provided, must provide comma separated capabilities in Livepeer-Capability header",
        );
    }
    let sender = parse_address(&eth.addr).unwrap_or([0u8; 20]);
    let price = inner.job_price(capability);
    let token = jobs::JobToken {
        sender_address: Some(eth),
        // Bound to this sender and price; a free price gets zero face value and win probability.
        ticket_params: (!inner.config.offchain).then(|| {
            let quoted = PriceInfo { price_per_unit: price, pixels_per_unit: 1, ..Default::default() };
            jobs::JobTicketParams::from(&inner.ticket_params(&sender, &quoted))
        }),
        balance: orch.balance(&sender, capability).floor() as i64,
        price: Some(jobs::JobPrice { price_per_unit: price, pixels_per_unit: 1 }),
        service_addr: inner.service_uri.clone(),
        available_capacity: inner.byoc_offer(capability).map(|(i, _)| inner.byoc_available(i)).unwrap_or(0),
        last_nonce: 0,
    };
    let mut body = serde_json::to_vec(&token).unwrap_or_default();
    body.push(b'\n');
    ([("content-type", "application/json")], body).into_response()
}

/// `POST /process/request/` with no path below it.
pub(super) async fn process_request_bare(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    process_request(State(orch), Path(String::new()), headers, body).await
}

/// `POST /process/request/{path}` (`ProcessJob`).
pub(super) async fn process_request(
    State(orch): State<LocalOrchestrator>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    let job = match setup_job(&orch, &headers, true) {
        Ok(j) => j,
        Err(e @ SetupError::NoCapacity) => return e.respond(StatusCode::SERVICE_UNAVAILABLE, ""),
        Err(e) => return e.respond(StatusCode::BAD_REQUEST, ""),
    };
    let offer = job.offer.expect("reserved routes have a registered offer");
    let started = Instant::now();
    let timeout = Duration::from_secs(u64::from(job.req.timeout_seconds));
    let delay = inner.config.request_worker_delay;
    if delay >= timeout {
        // go's worker call ends with the job's timeout; the reservation leaks.
        tokio::time::sleep(timeout).await;
        let balance = charge(&orch, &job, started);
        let mut resp = http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "job not able to be processed, removing capability err=Post \"{}/{path}\": context canceled",
                workers::WORKER_URL
            ),
        );
        set_header(&mut resp, jobs::HEADER_BALANCE, &rounded_balance(balance));
        return resp;
    }
    tokio::time::sleep(delay).await;
    if path == workers::STREAM_REQUEST_PATH {
        return sse_answer(orch.clone(), job, offer, body).await;
    }
    let answer = workers::handle_request(&job.req.capability, &path, &body);
    let balance = charge(&orch, &job, started);
    inner.byoc_free(offer);
    inner.counters.requests_served.fetch_add(1, Ordering::Relaxed);
    let mut resp = if answer.status.as_u16() > 399 {
        let mut text = String::from_utf8_lossy(&answer.body).into_owned();
        text.push('\n');
        (answer.status, [("content-type", "text/plain; charset=utf-8")], text).into_response()
    } else {
        // Any worker success is a 200; its content type passes through.
        (StatusCode::OK, [("content-type", answer.content_type)], answer.body).into_response()
    };
    set_header(&mut resp, jobs::HEADER_BALANCE, &rounded_balance(balance));
    resp
}

/// A single-shot answer the worker streams as server-sent events: relayed line by line, the
/// balance announced before `[DONE]`, 5 s of price debited every 5 s.
async fn sse_answer(orch: LocalOrchestrator, job: OrchJob, offer: usize, body: Bytes) -> Response {
    let balance_before = orch.balance(&job.sender, &job.req.capability);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let mut lines = workers::stream_request(&job.req.capability, &body);
    tokio::spawn(async move {
        let inner = &orch.inner;
        let mut debit = tokio::time::interval(Duration::from_secs(SSE_DEBIT_SECONDS));
        debit.tick().await;
        loop {
            tokio::select! {
                line = lines.recv() => {
                    let Some(line) = line else { break };
                    if line.contains("[DONE]") {
                        let balance = orch.balance(&job.sender, &job.req.capability);
                        let note = format!("data: {{\"balance\": {balance:.3}}}\n\n\n");
                        let _ = tx.send(Ok(Bytes::from(note))).await;
                    }
                    if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                        break;
                    }
                }
                _ = debit.tick(), if job.price > 0 => {
                    let wei = (SSE_DEBIT_SECONDS * job.price as u64) as f64;
                    if inner.debit(job.sender, &job.req.capability, wei) < 0.0 {
                        let end = "event: insufficient balance\ndata: {\"balance\": 0}\n\ndata: [DONE]\n\n";
                        let _ = tx.send(Ok(Bytes::from_static(end.as_bytes()))).await;
                        break;
                    }
                }
            }
        }
        inner.byoc_free(offer);
        inner.counters.requests_served.fetch_add(1, Ordering::Relaxed);
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = Response::new(Body::from_stream(stream));
    set_header(&mut resp, "content-type", "text/event-stream");
    set_header(&mut resp, "cache-control", "no-cache");
    set_header(&mut resp, jobs::HEADER_PAYMENT_BALANCE, &rounded_balance(balance_before));
    resp
}

/// The channels a start sets up, in go's order, with the response header naming each.
fn stream_channels(mid: &str, params: &JobParameters) -> Vec<(&'static str, String, &'static str)> {
    let names = ChannelNames::for_stream(mid);
    let mut out = vec![
        (jobs::HEADER_CONTROL_URL, names.control, MIME_JSON),
        (jobs::HEADER_EVENTS_URL, names.events, MIME_JSON),
    ];
    if params.enable_video_ingress {
        out.push((jobs::HEADER_PUBLISH_URL, names.input, MIME_MPEGTS));
    }
    if params.enable_video_egress {
        out.push((jobs::HEADER_SUBSCRIBE_URL, names.output, MIME_MPEGTS));
    }
    if params.enable_data_output {
        out.push((jobs::HEADER_DATA_URL, names.data, MIME_JSONL));
    }
    out
}

/// `POST /ai/stream/start` (`StartStream`).
pub(super) async fn stream_start(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    let job = match setup_job(&orch, &headers, true) {
        Ok(j) => j,
        Err(e @ SetupError::InsufficientBalance) => return e.respond(StatusCode::PAYMENT_REQUIRED, ""),
        Err(e) => return e.respond(StatusCode::BAD_REQUEST, ""),
    };
    let offer = job.offer.expect("reserved routes have a registered offer");
    // `parameters` is read only here, after the payment; a failure leaks the reservation.
    let params = match JobParameters::parse(&job.req.parameters) {
        Ok(p) => p,
        Err(_) if job.req.parameters.trim().is_empty() => {
            return http_error(StatusCode::BAD_REQUEST, "unexpected end of JSON input")
        }
        Err(e) => return http_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mid = job.req.id.clone();
    let channels = stream_channels(&mid, &params);
    let origin = &inner.service_uri;
    // Channels are fetched or created (an existing one is reused) and announced before the
    // remaining checks, so the headers ride on later errors too.
    let mut resp = StatusCode::OK.into_response();
    for (name, channel, mime) in &channels {
        inner.trickle.create_channel(channel, mime);
        set_header(&mut resp, name, &channel_url(origin, channel));
    }
    let fail = |mut resp: Response, status: StatusCode, body: String| {
        inner.byoc_free(offer);
        for (_, channel, _) in &channels {
            inner.trickle.close_channel(channel);
        }
        *resp.status_mut() = status;
        *resp.body_mut() = Body::from(format!("{body}\n"));
        set_header(&mut resp, "content-type", "text/plain; charset=utf-8");
        resp
    };
    let start_params = match serde_json::from_slice::<Option<Map<String, Value>>>(&body) {
        Ok(p) => p.map(Value::Object).unwrap_or(Value::Null),
        Err(_) => return fail(resp, StatusCode::BAD_REQUEST, "Invalid JSON body".into()),
    };
    // The worker's `/stream/start` comes first, and is charged, even for a duplicate id.
    let started = Instant::now();
    let balance = charge(&orch, &job, started);
    set_header(&mut resp, jobs::HEADER_BALANCE, &rounded_balance(balance));
    if inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&mid) {
        return fail(
            resp,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error adding stream to external capabilities".into(),
        );
    }
    let names = ChannelNames::for_stream(&mid);
    let cancel = CancellationToken::new();
    inner.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(
        mid.clone(),
        Session { channels: names.clone(), cancel: cancel.clone(), offer_index: offer, byoc: true },
    );
    inner.counters.byoc_streams_started.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(workers::run_byoc_stream(
        inner.trickle.clone(),
        names,
        job.req.capability.clone(),
        params,
        start_params,
        workers::WorkerOptions {
            event_interval: inner.config.event_interval,
            pipeline: job.req.capability.clone(),
        },
        cancel.clone(),
    ));
    tokio::spawn(monitor_stream(orch.clone(), mid, job.sender, job.req.capability, job.price, cancel));
    resp
}

/// go's `monitorOrchStream`: debits every tick; the first negative balance warns (for good:
/// the warning is never reset), the next negative one ends the stream without telling the
/// worker and without freeing its capacity.
async fn monitor_stream(
    orch: LocalOrchestrator,
    id: String,
    sender: [u8; 20],
    capability: String,
    price: i64,
    cancel: CancellationToken,
) {
    let inner = &orch.inner;
    let interval = inner.config.byoc_debit_interval;
    let mut warned = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if price <= 0 || inner.config.offchain {
            continue;
        }
        let wei = interval.as_secs_f64() * inner.config.usage_time_scale * price as f64;
        if inner.debit(sender, &capability, wei) >= 0.0 {
            continue;
        }
        if !warned {
            tracing::info!(stream = id, "insufficient balance for stream capability; stopping next round");
            warned = true;
            continue;
        }
        tracing::info!(stream = id, "stopping BYOC stream: insufficient balance");
        inner.counters.stopped_for_payment.fetch_add(1, Ordering::Relaxed);
        inner.end_session(&id, false);
        return;
    }
}

/// `POST /ai/stream/payment` (`ProcessStreamPayment`): never checks that the stream exists.
pub(super) async fn stream_payment(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let job = match setup_job(&orch, &headers, false) {
        Ok(j) => j,
        Err(e) => {
            return e.respond(StatusCode::BAD_REQUEST, "Failed to process payment, request not valid err=")
        }
    };
    // Rounded down here, unlike start.
    let balance = orch.balance(&job.sender, &job.req.capability).floor() as i64;
    let mut resp = StatusCode::OK.into_response();
    set_header(&mut resp, jobs::HEADER_BALANCE, &balance.to_string());
    resp
}

/// `POST /ai/stream/update` (`UpdateStream`): the body goes to the worker's `/stream/params`
/// and its answer comes back as is; the orchestrator never checks that the stream exists.
pub(super) async fn stream_update(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    let job = match setup_job(&orch, &headers, false) {
        Ok(j) => j,
        Err(e) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                format!("Failed to stop stream, request not valid err={e}"),
            )
        }
    };
    if job.offer.is_none() {
        // No worker URL for an unregistered capability: the POST fails.
        return http_error(StatusCode::INTERNAL_SERVER_ERROR, "Error sending request to worker");
    }
    let stream_id = &job.details.stream_id;
    let events = inner
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(stream_id)
        .map(|s| s.channels.events.clone());
    let answer = workers::stream_params(&inner.trickle, events.as_deref(), &body).await;
    (answer.status, [("content-type", answer.content_type)], answer.body).into_response()
}

/// `POST /ai/stream/stop` (`StopStream`): balance checked like every route (a stop without
/// enough credit is refused and the stream keeps running), the worker's answer relayed, the
/// stream removed whatever the worker said.
pub(super) async fn stream_stop(State(orch): State<LocalOrchestrator>, headers: HeaderMap) -> Response {
    let inner = &orch.inner;
    let job = match setup_job(&orch, &headers, false) {
        Ok(j) => j,
        Err(e) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                format!("Failed to stop stream, request not valid err={e}"),
            )
        }
    };
    inner.stop_session(&job.details.stream_id);
    StatusCode::OK.into_response()
}
