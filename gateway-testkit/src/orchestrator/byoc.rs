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
use gateway_core::jobs::{
    self, EthAddressHeader, JobParameters, JobRequest, JobRequestDetails, OrchestratorFilter,
};
use gateway_core::lp_rpc::{Payment, PriceInfo};
use gateway_core::signer::BYOC_JOB_V1_PREFIX;
use gateway_core::trickle::{channel_url, ChannelNames, MIME_JSON, MIME_JSONL, MIME_MPEGTS};
use prost::Message;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::go_json::{self, GoValue};
use super::{
    header, http_error, CapabilityOffer, GoVersion, Inner, LocalOrchestrator, PaymentRoute, Reject, Session,
};
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
/// How often the double writes the blank line go writes in a tight loop once the worker's
/// answer is over.
const SSE_BLANK_LINE_PACE: Duration = Duration::from_millis(20);

/// Why `setupOrchJob` refused a job; `Display` is go's error text.
#[derive(Debug)]
pub(super) enum SetupError {
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
    pub(super) fn respond(self, status: StatusCode, prefix: &str) -> Response {
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
pub(super) struct OrchJob {
    pub(super) req: JobRequest,
    /// `HexToAddress(sender)`: whose balance pays.
    pub(super) sender: [u8; 20],
    /// Whole wei per second (0: free).
    pub(super) price: i64,
    details: JobRequestDetails,
    /// The registered offer, when the capability is registered.
    pub(super) offer: Option<usize>,
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

/// go's `FlattenBYOCJob` (#3869): the V1 prefix, the timeout as a big-endian u32, then each of
/// id, capability, request and parameters with its length. Unlike the signer, the orchestrator
/// takes empty fields (go's gateway pays with an empty job id).
fn flatten_byoc_job(job: &JobRequest) -> Vec<u8> {
    let fields = [&job.id, &job.capability, &job.request, &job.parameters];
    let mut out = Vec::with_capacity(20 + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
    out.extend_from_slice(BYOC_JOB_V1_PREFIX);
    out.extend_from_slice(&job.timeout_seconds.to_be_bytes());
    for field in fields {
        // go writes `uint32(len(field))`.
        out.extend_from_slice(&(field.len() as u32).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// The message a job signature covers: the V1 encoding (#3869) or `request + parameters` (master).
fn job_message(version: GoVersion, job: &JobRequest) -> Vec<u8> {
    match version {
        GoVersion::Pr3869 => flatten_byoc_job(job),
        GoVersion::Master => format!("{}{}", job.request, job.parameters).into_bytes(),
    }
}

/// go's `parseJobRequest`: base64, then `encoding/json` into `JobRequest`, then the timeout
/// (0: its own error; #3869 also wants 1..=2^32-1). Any other failure is "bad creds".
fn parse_job_request(raw: &str) -> Result<JobRequest, SetupError> {
    let bytes = go_json::std_base64(raw).ok_or(SetupError::Creds)?;
    let v = go_json::unmarshal(&bytes, &go_json::JOB_REQUEST).map_err(|_| SetupError::Creds)?;
    let timeout = v.int("timeout_seconds");
    if timeout == 0 {
        return Err(SetupError::NoTimeout);
    }
    // master would take a negative or huge timeout; the double refuses it on both (left out).
    let timeout_seconds = u32::try_from(timeout).map_err(|_| SetupError::Creds)?;
    Ok(JobRequest {
        id: v.str("id"),
        request: v.str("request"),
        parameters: v.str("parameters"),
        capability: v.str("capability"),
        sender: v.str("sender"),
        sig: v.str("sig"),
        timeout_seconds,
    })
}

/// go's `verifyJobCreds`: decode, timeout, signature (skipped offchain, but the hex must decode),
/// then reserve capacity when asked.
fn verify_job_creds(inner: &Inner, headers: &HeaderMap, reserve: bool) -> Result<OrchJob, SetupError> {
    let raw = header(headers, jobs::HEADER_JOB).unwrap_or("");
    let req = parse_job_request(raw)?;
    let sig = decode_sig(&req.sig).ok_or(SetupError::Creds)?;
    let sender = go_json::hex_to_address(&req.sender);
    if !inner.config.offchain {
        let msg = job_message(inner.config.go_version, &req);
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

/// go's `setupOrchJob`; a payment is recorded in the ledger under `route`.
pub(super) fn setup_job(
    orch: &LocalOrchestrator,
    headers: &HeaderMap,
    reserve: bool,
    route: PaymentRoute,
) -> Result<OrchJob, SetupError> {
    let inner = &orch.inner;
    let mut job = verify_job_creds(inner, headers, reserve)?;
    if let Err(e) = confirm_payment(orch, headers, &job, route) {
        // go frees here whether or not this route reserved; a panic never gets here.
        if let (Some(i), false) = (job.offer, matches!(e, SetupError::Panic(_))) {
            inner.byoc_free(i);
        }
        return Err(e);
    }
    // After the payment was credited; a failure here leaks the reservation, as in go.
    let details = go_json::unmarshal(job.req.request.as_bytes(), &go_json::JOB_REQUEST_DETAILS)
        .map_err(SetupError::RequestDetails)?;
    job.details = JobRequestDetails { stream_id: details.str("stream_id") };
    Ok(job)
}

/// go's `json.Unmarshal` of a job's `parameters` into `JobParameters` (`/ai/stream/start` only).
fn parse_parameters(raw: &str) -> Result<JobParameters, String> {
    let v = go_json::unmarshal(raw.as_bytes(), &go_json::JOB_PARAMETERS)?;
    let filter = v.field("orchestrators").cloned().unwrap_or(GoValue::Struct(Vec::new()));
    Ok(JobParameters {
        orchestrators: OrchestratorFilter {
            include: filter.strings("include"),
            exclude: filter.strings("exclude"),
        },
        enable_video_ingress: v.bool("enable_video_ingress"),
        enable_video_egress: v.bool("enable_video_egress"),
        enable_data_output: v.bool("enable_data_output"),
    })
}

/// go's `confirmPayment`: free jobs skip payment; priced ones credit the payment (to the
/// payment's sender) and then need 60 s of balance on the job's sender.
fn confirm_payment(
    orch: &LocalOrchestrator,
    headers: &HeaderMap,
    job: &OrchJob,
    route: PaymentRoute,
) -> Result<(), SetupError> {
    let inner = &orch.inner;
    if job.price <= 0 {
        return Ok(());
    }
    let raw = header(headers, jobs::HEADER_PAYMENT).unwrap_or("");
    if !raw.is_empty() {
        // go's `getPayment` (lenient base64, then protobuf), then `ProcessPayment`.
        let processed = match go_json::std_base64(raw).and_then(|b| Payment::decode(b.as_slice()).ok()) {
            None => Err(None),
            Some(payment) => inner.process_payment(&payment, &job.req.capability, route).map_err(Some),
        };
        if let Err(rejected) = processed {
            if let Some(r) = rejected.as_ref().filter(|r| r.is_panic()) {
                // go panics inside `ProcessPayment`: nothing is freed.
                return Err(SetupError::Panic(r.1.clone()));
            }
            if inner.config.go_version == GoVersion::Master {
                // master logs the error and goes on with a nil balance, whose comparison panics;
                // a `ProcessPayment` failure first frees the capability once.
                if let (Some(i), Some(_)) = (job.offer, &rejected) {
                    inner.byoc_free(i);
                }
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

/// `Livepeer-Balance` on start and single-shot answers: go's `big.Rat.FloatString(0)`, rounded
/// half away from zero, with the sign kept on a negative that rounds to zero (`-0`).
pub(super) fn rounded_balance(balance: f64) -> String {
    let rounded = balance.abs().round() as i64;
    if balance < 0.0 {
        format!("-{rounded}")
    } else {
        rounded.to_string()
    }
}

/// What go's `net/http` sniffs for a body written without a `Content-Type`
/// (`http.DetectContentType`, for the bodies the worker double answers): nothing for an empty
/// body, `text/plain; charset=utf-8` for text, `application/octet-stream` otherwise.
fn sniffed_content_type(body: &[u8]) -> Option<&'static str> {
    if body.is_empty() {
        return None;
    }
    let binary =
        body.iter().take(512).any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | 0x1b));
    Some(if binary { "application/octet-stream" } else { "text/plain; charset=utf-8" })
}

/// A worker's answer relayed as go's `w.WriteHeader(status); w.Write(body)`: status and body
/// verbatim, the content type sniffed from the body.
fn relayed(answer: workers::WorkerAnswer) -> Response {
    let mut resp = Response::new(Body::from(answer.body.clone()));
    *resp.status_mut() = answer.status;
    if let Some(ct) = sniffed_content_type(&answer.body) {
        set_header(&mut resp, "content-type", ct);
    }
    resp
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
    // go's `verifyTokenCreds`: base64 JSON `{addr, sig}`, the sig's hex, then the signature over
    // the address string exactly as sent (skipped offchain).
    let verified = go_json::std_base64(raw)
        .and_then(|b| go_json::unmarshal(&b, &go_json::JOB_SENDER).ok())
        .map(|v| EthAddressHeader { addr: v.str("addr"), sig: v.str("sig") })
        .filter(|eth| {
            let Some(sig) = decode_sig(&eth.sig) else { return false };
            let addr = go_json::hex_to_address(&eth.addr);
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
    let sender = go_json::hex_to_address(&eth.addr);
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

/// go's answer to a method its handler does not take.
pub(super) async fn method_not_allowed() -> Response {
    http_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// `POST /process/request/` with no worker path: the worker's base URL is called.
pub(super) async fn process_request_root(
    orch: State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    process_request(orch, Path(String::new()), headers, body).await
}

/// `POST /process/request/{path}` (`ProcessJob`).
pub(super) async fn process_request(
    State(orch): State<LocalOrchestrator>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let inner = &orch.inner;
    let job = match setup_job(&orch, &headers, true, PaymentRoute::ByocRequest) {
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
        let url = if path.is_empty() {
            workers::WORKER_URL.to_owned()
        } else {
            format!("{}/{path}", workers::WORKER_URL)
        };
        let mut resp = http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("job not able to be processed, removing capability err=Post \"{url}\": context canceled"),
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
        // `http.Error(w, string(data), status)`.
        let mut resp = http_error(answer.status, String::from_utf8_lossy(&answer.body).into_owned());
        set_header(&mut resp, "x-metadata", "");
        resp
    } else {
        // Any worker success is a 200; its content type and `X-Metadata` pass through.
        let mut resp = (StatusCode::OK, [("content-type", answer.content_type)], answer.body).into_response();
        set_header(&mut resp, "x-metadata", "");
        resp
    };
    set_header(&mut resp, jobs::HEADER_BALANCE, &rounded_balance(balance));
    resp
}

/// A single-shot answer the worker streams as server-sent events, as go's `processJob` relays
/// it: each worker line passed on with a newline, the balance announced before `[DONE]`, 5 s of
/// price debited every 5 s (the stream cut short when the balance goes negative), and, go's
/// bug, the response kept open after the worker is done, writing blank lines, until the job's
/// `timeout_seconds` have passed since the answer began.
async fn sse_answer(orch: LocalOrchestrator, job: OrchJob, offer: usize, body: Bytes) -> Response {
    let balance_before = orch.balance(&job.sender, &job.req.capability);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let mut lines = workers::stream_request(&job.req.capability, &body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(u64::from(job.req.timeout_seconds));
    tokio::spawn(async move {
        let inner = &orch.inner;
        let mut debit = tokio::time::interval(Duration::from_secs(SSE_DEBIT_SECONDS));
        debit.tick().await;
        let mut worker_done = false;
        loop {
            let line: String = tokio::select! {
                biased;
                _ = tokio::time::sleep_until(deadline) => break,
                _ = debit.tick(), if job.price > 0 => {
                    let wei = (SSE_DEBIT_SECONDS * job.price as u64) as f64;
                    if inner.debit(job.sender, &job.req.capability, wei) < 0.0 {
                        let end = "event: insufficient balance\ndata: {\"balance\": 0}\n\ndata: [DONE]\n\n";
                        let _ = tx.send(Ok(Bytes::from_static(end.as_bytes()))).await;
                        break;
                    }
                    continue;
                }
                line = lines.recv(), if !worker_done => match line {
                    None => {
                        worker_done = true;
                        continue;
                    }
                    Some(line) if line.contains("[DONE]") => {
                        let balance = orch.balance(&job.sender, &job.req.capability);
                        let note = format!("data: {{\"balance\": {balance:.3}}}\n\n\n");
                        if tx.send(Ok(Bytes::from(note))).await.is_err() {
                            break;
                        }
                        line
                    }
                    Some(line) => line,
                },
                // go reads its closed line channel as "" forever (paced here, not a busy loop).
                _ = tokio::time::sleep(SSE_BLANK_LINE_PACE), if worker_done => String::new(),
            };
            if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                break;
            }
        }
        inner.byoc_free(offer);
        inner.counters.requests_served.fetch_add(1, Ordering::Relaxed);
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut resp = Response::new(Body::from_stream(stream));
    set_header(&mut resp, "content-type", "text/event-stream");
    set_header(&mut resp, "cache-control", "no-cache");
    set_header(&mut resp, "x-metadata", "");
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
    let job = match setup_job(&orch, &headers, true, PaymentRoute::ByocStart) {
        Ok(j) => j,
        Err(e @ SetupError::InsufficientBalance) => return e.respond(StatusCode::PAYMENT_REQUIRED, ""),
        Err(e) => return e.respond(StatusCode::BAD_REQUEST, ""),
    };
    let offer = job.offer.expect("reserved routes have a registered offer");
    // `parameters` is read only here, after the payment; a failure leaks the reservation.
    let params = match parse_parameters(&job.req.parameters) {
        Ok(p) => p,
        Err(e) => return http_error(StatusCode::BAD_REQUEST, e),
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
        set_header(&mut resp, "x-content-type-options", "nosniff");
        resp
    };
    // go: `json.Unmarshal(body, &map[string]interface{})`.
    if !go_json::is_object_or_null(&body) {
        return fail(resp, StatusCode::BAD_REQUEST, "Invalid JSON body".into());
    }
    // What the worker double is told (serde keeps the last duplicate, as go's map does).
    let start_params = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
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
    let job = match setup_job(&orch, &headers, false, PaymentRoute::ByocPayment) {
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
    let job = match setup_job(&orch, &headers, false, PaymentRoute::ByocUpdate) {
        Ok(j) => j,
        Err(e) => return e.respond(StatusCode::BAD_REQUEST, "Failed to stop stream, request not valid err="),
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
    relayed(workers::stream_params(&inner.trickle, events.as_deref(), &body).await)
}

/// `POST /ai/stream/stop` (`StopStream`): balance checked like every route (a stop without
/// enough credit is refused and the stream keeps running), the worker's answer relayed, the
/// stream removed whatever the worker said.
pub(super) async fn stream_stop(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let inner = &orch.inner;
    let job = match setup_job(&orch, &headers, false, PaymentRoute::ByocStop) {
        Ok(j) => j,
        Err(e) => return e.respond(StatusCode::BAD_REQUEST, "Failed to stop stream, request not valid err="),
    };
    // go forwards the body to the worker's `/stream/stop`; the double's workers keep it here.
    let reason = String::from_utf8_lossy(&body).into_owned();
    inner
        .stop_reasons
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((job.details.stream_id.clone(), reason));
    inner.stop_session(&job.details.stream_id);
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_render_as_go_renders_them() {
        // `FloatString(0)`: half away from zero, and a negative that rounds to zero keeps its sign.
        assert_eq!(rounded_balance(2.5), "3");
        assert_eq!(rounded_balance(2.4), "2");
        assert_eq!(rounded_balance(-2.5), "-3");
        assert_eq!(rounded_balance(-0.3), "-0");
        assert_eq!(rounded_balance(0.0), "0");
    }

    #[test]
    fn sniffing_and_signatures() {
        assert_eq!(sniffed_content_type(b""), None);
        assert_eq!(sniffed_content_type(br#"{"a":1}"#), Some("text/plain; charset=utf-8"));
        assert_eq!(sniffed_content_type(b"\x00\x01"), Some("application/octet-stream"));
        assert_eq!(decode_sig(""), Some(vec![]));
        assert_eq!(decode_sig("0x"), None);
        assert_eq!(decode_sig(&format!("0x{}", "ab".repeat(65))).map(|s| s.len()), Some(65));
        assert_eq!(decode_sig(&format!("xx{}", "ab".repeat(65))).map(|s| s.len()), Some(65));
        let job = JobRequest { capability: "c".into(), timeout_seconds: 7, ..Default::default() };
        let flat = flatten_byoc_job(&job);
        assert_eq!(&flat[..16], BYOC_JOB_V1_PREFIX);
        assert_eq!(&flat[16..24], &[0, 0, 0, 7, 0, 0, 0, 0]);
        assert_eq!(flat.len(), 16 + 4 + 4 * 4 + 1);
    }
}
