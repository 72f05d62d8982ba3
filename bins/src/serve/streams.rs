//! The BYOC stream routes, with go-livepeer's gateway shapes (`byoc/stream_gateway.go`
//! `StartStream`, `UpdateStream`, `StreamStatus`, `StopStream`, `StreamData`), so clients of
//! go's gateway work unchanged:
//!
//! - `POST /process/stream/start`: the `Livepeer` job header and a `StartRequest` body; the
//!   stream is started through the SDK (selection, payments, failover) and its URLs answered.
//!   Unlike go, which answers before an orchestrator took the stream and reports failures in
//!   its status, the node answers once the stream runs, and a start no orchestrator takes is a
//!   400 (go's text for finding none).
//! - `POST …/{id}/update`: the `Livepeer` header again; the body goes to the worker, its reply
//!   comes back with the orchestrator's status.
//! - `GET …/{id}/status`: go's status store: the orchestrator, then the last `status` event.
//! - `POST …/{id}/stop`: the body goes to the worker's stop; the orchestrator's reply answers.
//! - `GET …/{id}/data`: the data channel as server-sent events, one per JSON line, and
//!   `event: end` when it ends (go writes that line with literal `\n`s, and a segment of
//!   several lines as one `data:` field; the node writes well-formed events).
//!
//! Refusals are go's: 400 and its texts for a bad header or body, 413 over 10 MB, 404
//! `Stream not found`, 403 when the auth webhook refuses; 503 while the node drains.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_actors::{ByocJobRequest, GatewayError};
use gateway_core::gateway_api::live::RTMP_PORT;
use gateway_core::gateway_api::{
    gateway_job, media_channel_url, stream_url, GatewayStreamUrls, MediaDirection, StartRequest,
    StreamAction, ERROR_STREAM_NOT_FOUND, MAX_STREAM_BODY_BYTES,
};
use gateway_core::jobs::HEADER_JOB;
use gateway_core::rejection::JobError;
use gateway_core::trickle::SeqSpec;

use super::auth::AuthRequest;
use super::go_http::{form_values, text};
use super::metrics::CapabilityLabel;
use super::node::{Node, Stream};
use super::rtmp_ingest::IngestTarget;

fn too_large() -> Response {
    text(StatusCode::PAYLOAD_TOO_LARGE, format!("request body too large (max {MAX_STREAM_BODY_BYTES} bytes)"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /process/stream/start`.
pub async fn start(State(node): State<Arc<Node>>, headers: HeaderMap, body: Bytes) -> Response {
    if node.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "gateway is draining: no new streams");
    }
    let (job, params) = match gateway_job(header(&headers, HEADER_JOB)) {
        Ok(parsed) => parsed,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    if body.len() > MAX_STREAM_BODY_BYTES {
        return too_large();
    }
    let start: StartRequest = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("invalid JSON request body: {e}")),
    };
    if start.is_own_output() {
        return text(StatusCode::BAD_REQUEST, "a stream named *-out is an output; it is not started again");
    }
    let mut pipeline_params = match start.pipeline_params() {
        Ok(p) => p,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let mut stream_id = start.stream_id_or(&hex::encode(rand::random::<[u8; 8]>()));
    // Where the output is pushed over RTMP (go: the start's `rtmp_output`, or the webhook's).
    let mut rtmp_output = start.rtmp_output.clone();
    if let Some(webhook) = &node.auth.webhook {
        let request = AuthRequest {
            stream: start.stream.clone(),
            query_params: start.params.clone(),
            gateway_host: node.base_url.clone(),
            status_url: stream_url(&node.base_url, &stream_id, StreamAction::Status),
            update_url: stream_url(&node.base_url, &stream_id, StreamAction::Update),
            ..Default::default()
        };
        match webhook.authenticate(request).await {
            Ok(answer) => {
                if !answer.rtmp_output_url.is_empty() {
                    rtmp_output = answer.rtmp_output_url;
                }
                if !answer.stream_id.is_empty() {
                    stream_id = answer.stream_id;
                }
                if let Some(p) = answer.pipeline_parameters.filter(|p| p.is_object()) {
                    pipeline_params = Some(p);
                }
            }
            Err(why) => return text(StatusCode::FORBIDDEN, format!("live ai auth failed: {why}")),
        }
    }
    if !params.enable_video_egress {
        rtmp_output.clear();
    }
    // go accepts any output and its ffmpeg fails on it later; the node says so now.
    let rtmp_target = match rtmp_output.is_empty() {
        true => None,
        false => match super::rtmp_push::RtmpTarget::parse(&rtmp_output) {
            Ok(target) => Some(target),
            Err(why) => return text(StatusCode::BAD_REQUEST, format!("invalid rtmp_output: {why}")),
        },
    };
    let Some(_held) = node.hold_id(&stream_id) else {
        return text(StatusCode::BAD_REQUEST, format!("stream already exists: {stream_id}"));
    };
    let request = ByocJobRequest {
        stream_id: Some(stream_id.clone()),
        params: pipeline_params.unwrap_or(serde_json::Value::Null),
        enable_video_ingress: params.enable_video_ingress,
        enable_video_egress: params.enable_video_egress,
        enable_data_output: params.enable_data_output,
        timeout_seconds: job.timeout_seconds,
        ..ByocJobRequest::new(job.capability.clone())
    };
    let started = match node.gateway.start_byoc_job(request).await {
        Ok(started) => started,
        Err(e) => {
            let label = CapabilityLabel { capability: job.capability.clone() };
            node.metrics.stream_start_failures.get_or_create(&label).inc();
            return start_refused(&job.capability, e);
        }
    };
    tracing::info!(stream = %stream_id, capability = %job.capability, orchestrator = %started.orchestrator, "stream started");
    let media_key = hex::encode(rand::random::<[u8; 16]>());
    node.add(
        stream_id.clone(),
        job.capability.clone(),
        params.enable_data_output,
        media_key.clone(),
        started,
    );
    if let (Some(target), Some(stream)) = (rtmp_target, node.stream(&stream_id)) {
        tokio::spawn(super::rtmp_push::push_while_running(target, stream_id.clone(), ByocOutput(stream)));
    }
    let url = |action| stream_url(&node.base_url, &stream_id, action);
    let media = |wanted: bool, direction| {
        if wanted {
            media_channel_url(&node.base_url, &stream_id, &media_key, direction)
        } else {
            String::new()
        }
    };
    let urls = GatewayStreamUrls {
        trickle_publish_url: media(params.enable_video_ingress, MediaDirection::In),
        trickle_subscribe_url: media(params.enable_video_egress, MediaDirection::Out),
        update_url: url(StreamAction::Update),
        status_url: url(StreamAction::Status),
        stop_url: url(StreamAction::Stop),
        data_url: if params.enable_data_output { url(StreamAction::Data) } else { String::new() },
        rtmp_url: match (params.enable_video_ingress, node.rtmp_base.get()) {
            (true, Some(base)) => super::rtmp::byoc_ingest_url(base, &stream_id, &media_key),
            _ => String::new(),
        },
        rtmp_output_url: rtmp_output,
        stream_id,
        ..Default::default()
    };
    axum::Json(urls).into_response()
}

/// A BYOC stream's output.
struct ByocOutput(Arc<Stream>);

impl super::rtmp_push::OutputSource for ByocOutput {
    async fn subscribe(&self) -> Option<gateway_actors::trickle::TrickleSubscriber> {
        self.0.job.lock().await.as_ref().and_then(|job| job.output(SeqSpec::Current).ok())
    }
}

/// Why a start failed, as go's gateway says it.
fn start_refused(capability: &str, e: GatewayError) -> Response {
    match e {
        GatewayError::Job(JobError::InvalidRequest(message)) => text(StatusCode::BAD_REQUEST, message),
        GatewayError::Job(e @ JobError::NoOrchestratorAvailable { .. }) => text(
            StatusCode::BAD_REQUEST,
            format!("Unable to find orchestrators for capability {capability} err={e}"),
        ),
        other => text(StatusCode::INTERNAL_SERVER_ERROR, other),
    }
}

/// `POST /process/stream/{id}/update`.
pub async fn update(
    State(node): State<Arc<Node>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(stream) = node.stream(&id) else { return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND) };
    if let Err(message) = gateway_job(header(&headers, HEADER_JOB)) {
        return text(StatusCode::BAD_REQUEST, message);
    }
    if body.len() > MAX_STREAM_BODY_BYTES {
        return too_large();
    }
    node.metrics.stream_updates.inc();
    let guard = stream.job.lock().await;
    let Some(job) = guard.as_ref() else { return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND) };
    match job.update(body).await {
        Ok(reply) => (StatusCode::OK, reply).into_response(),
        Err(JobError::Http { status, message, .. }) if status >= 400 => {
            text(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), message)
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, e),
    }
}

/// `GET /process/stream/{id}/status`.
pub async fn status(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Response {
    match node.stream(&id) {
        Some(stream) => axum::Json(stream.status()).into_response(),
        None => text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND),
    }
}

/// `POST /process/stream/{id}/stop`.
pub async fn stop(State(node): State<Arc<Node>>, Path(id): Path<String>, body: Bytes) -> Response {
    match node.stop_byoc(&id, body).await {
        None => text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND),
        Some(Ok(reply)) => (StatusCode::OK, reply).into_response(),
        // go stops on the gateway whatever the orchestrator answered, and answers 200.
        Some(Err(e)) => {
            tracing::warn!(stream = %id, error = %e, "the orchestrator did not take the stop");
            StatusCode::OK.into_response()
        }
    }
}

/// `GET /process/stream/{id}/data`.
pub async fn data(State(node): State<Arc<Node>>, Path(id): Path<String>) -> Response {
    let Some(stream) = node.stream(&id) else { return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND) };
    let reader = match (stream.has_data, stream.job.lock().await.as_ref()) {
        (true, Some(job)) => job.data().ok(),
        _ => None,
    };
    let Some(reader) = reader else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "Stream data not available");
    };
    let events = futures_util::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let event = match reader.next().await {
            Ok(Some(line)) => format!("data: {line}\n\n"),
            _ => return Some((Ok::<_, std::convert::Infallible>(Bytes::from_static(STREAM_ENDED)), None)),
        };
        Some((Ok(Bytes::from(event)), Some(reader)))
    });
    let headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")];
    (headers, Body::from_stream(events)).into_response()
}

/// The last event of a data stream.
const STREAM_ENDED: &[u8] = b"event: end\ndata: {\"type\":\"stream_ended\"}\n\n";

/// `POST /process/stream/{id}/rtmp`: MediaMTX's call once a publisher of the stream is ready
/// (go's `StartStreamRTMPIngest`): the node pulls the stream from `rtmp://{caller}/{id}` (or,
/// ours, the form's `rtmp_url`) into the stream's input; the pull ending stops the stream.
/// go's refusals: `stream not found: {id}` (404, labelled JSON, as go's `respondJsonError`
/// sends it), `missing source_id`, `missing source_type` (400).
pub async fn rtmp_callback(
    State(node): State<Arc<Node>>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Query(url_values): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(stream) = node.stream(&id) else {
        let headers = [("content-type", "application/json")];
        return (StatusCode::NOT_FOUND, headers, format!("stream not found: {id}")).into_response();
    };
    let form = match form_values(&headers, &body, url_values) {
        Ok(form) => form,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let value =
        |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    if value("source_id").is_none() {
        return text(StatusCode::BAD_REQUEST, "missing source_id");
    }
    if value("source_type").is_none() {
        return text(StatusCode::BAD_REQUEST, "missing source_type");
    }
    let url = match value("rtmp_url") {
        Some(url) => url.to_owned(),
        None => {
            super::rtmp_pull::caller_url(caller.ip(), node.mediamtx_rtmp_port.unwrap_or(RTMP_PORT), None, &id)
        }
    };
    match IngestTarget::byoc(&id, stream).await {
        Ok(target) => {
            tokio::spawn(super::rtmp_pull::pull_into(node.clone(), target, url));
            StatusCode::OK.into_response()
        }
        Err(why) => text(StatusCode::CONFLICT, why),
    }
}
