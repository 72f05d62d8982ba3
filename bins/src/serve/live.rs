//! LV2V streams through the node, with go-livepeer's gateway routes and shapes
//! (`server/ai_mediaserver.go`; the rules are `gateway_core::gateway_api::live`):
//!
//! - `POST /live/video-to-video/[{prefix}/]{stream}/start`: go's MediaMTX callback, its form
//!   values (`source_id`, `source_type`, `query`) from the URL, a urlencoded or a multipart
//!   body, checked with go's 400 texts; the auth webhook (403 `Forbidden`); a `…-out` name is
//!   an output, answered 200 and not started. The node answers once an orchestrator runs the
//!   stream, with its URLs as JSON (go's callers ignore the body).
//! - `POST …/{stream}/update`: the body, a JSON object, to the stream's control channel.
//! - `…/{stream_id}/status`: the last `status` event with go's fields set by the gateway, and
//!   `gateway_status` (an error once the stream failed).
//! - Media in: as go, a start callback's stream is pulled from MediaMTX over RTMP (the form's
//!   `rtmp_url`, or with `--mediamtx` `rtmp://{caller}/{path}`; `rtmp_pull`). Ours besides:
//!   RTMP publishing to the node (`rtmp`) starts and feeds a stream in one go, and `POST
//!   …/{stream}/input` takes an MPEG-TS body for a stream started by `/start`.
//! - Media out: `GET …/{stream}/output` streams the output as MPEG-TS, following swaps; the
//!   query's `rtmpOutput` (or the webhook's `rtmp_output_url`) gets it pushed over RTMP
//!   (`rtmp_push`).
//!
//! A stream runs as an SDK `LiveStream`: payments, failover at start and swaps mid-stream are
//! the SDK's. It stops when its input ends, when no input came within [`INPUT_WAIT`] of its
//! start, when it fails for good, or at the node's drain.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use gateway_actors::live::{LiveJobRequest, SwapConfig};
use gateway_actors::media::VideoPublisherConfig;
use gateway_actors::Lv2vRequest;
use gateway_core::gateway_api::live::{
    live_url, webhook_params, LiveQuery, LiveSource, LiveStartForm, ERROR_FORBIDDEN, ERROR_STREAM_ID_REQUIRED,
};
use gateway_core::gateway_api::{ERROR_STREAM_NOT_FOUND, MAX_STREAM_BODY_BYTES};
use gateway_core::trickle::SeqSpec;
use gateway_media::ts::cutter::{TsCutter, TsCutterConfig};
use serde_json::{json, Map, Value};

use super::auth::AuthRequest;
use super::go_http::{form_values, text};
pub use super::live_registry::LiveEntry;
use super::node::Node;
use super::rtmp_pull;

/// How long a stream started by `/start` waits for its input before it is stopped.
pub const INPUT_WAIT: Duration = Duration::from_secs(60);

/// What starts a stream: a checked `/start` form, or an RTMP publish.
pub struct LiveStart {
    /// The stream's name.
    pub stream: String,
    /// Where its media comes from (the webhook's `type`).
    pub source: LiveSource,
    /// The publisher's raw query (the webhook's `query_params`).
    pub query: String,
    /// What the query asks for.
    pub parsed: LiveQuery,
}

/// Why a start was refused: the status and go's text.
pub type Refusal = (StatusCode, String);

/// Starts `start` on an orchestrator and registers it; a stream of the same name is stopped
/// first (go closes the older session).
pub async fn start(node: &Arc<Node>, start: LiveStart) -> Result<Arc<LiveEntry>, Refusal> {
    if node.is_draining() {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "gateway is draining: no new streams".into()));
    }
    let LiveStart { stream: name, source, query, mut parsed } = start;
    let mut pipeline_id = String::new();
    if let Some(webhook) = &node.auth.webhook {
        let request = AuthRequest {
            stream: name.clone(),
            kind: source.as_str().into(),
            query_params: query.clone(),
            gateway_host: node.base_url.clone(),
            status_url: live_url(&node.base_url, &parsed.stream_id, "status"),
            update_url: live_url(&node.base_url, &name, "update"),
            ..Default::default()
        };
        let answer = webhook.authenticate(request).await.map_err(|why| {
            tracing::warn!(stream = %name, reason = %why, "the auth webhook refused a live stream");
            (StatusCode::FORBIDDEN, ERROR_FORBIDDEN.to_owned())
        })?;
        if !answer.rtmp_output_url.is_empty() {
            parsed.rtmp_output = answer.rtmp_output_url;
        }
        if !answer.pipeline.is_empty() {
            parsed.pipeline = answer.pipeline;
        }
        if !answer.stream_id.is_empty() {
            parsed.stream_id = answer.stream_id;
        }
        pipeline_id = answer.pipeline_id;
        match answer.pipeline_parameters {
            None | Some(Value::Null) => {}
            Some(Value::Object(p)) => parsed.params = Some(webhook_params(&parsed.pipeline, p)),
            Some(_) => return Err((StatusCode::FORBIDDEN, ERROR_FORBIDDEN.to_owned())),
        }
    }
    // go keys an id-less stream's status under ""; the name is more use to a caller.
    let stream_id = if parsed.stream_id.is_empty() { name.clone() } else { parsed.stream_id.clone() };
    if let Some(old) = node.live.get(&name) {
        tracing::info!(stream = %name, "a new start replaces the running stream");
        node.stop_live(&old, "replaced by a new start").await;
    }
    let request_id = hex::encode(rand::random::<[u8; 4]>());
    let request = Lv2vRequest {
        model_id: parsed.model().to_owned(),
        params: parsed.params.clone().map(Value::Object),
        stream_id: Some(stream_id.clone()),
        request_id: Some(request_id.clone()),
        orchestrator: Some(parsed.orchestrator.clone()),
        ..Default::default()
    };
    let started = node
        .gateway
        .start_live_stream(
            LiveJobRequest::Lv2v(request),
            Some(VideoPublisherConfig::passthrough_ts()),
            SwapConfig::default(),
        )
        .await;
    let stream = started.map_err(|e| {
        node.metrics.stream_start_failures.get_or_create(&lv2v_label(parsed.model())).inc();
        (StatusCode::SERVICE_UNAVAILABLE, format!("no orchestrator took the stream: {e}"))
    })?;
    let Some(video) = stream.video_handle() else {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, "the stream has no video input".into()));
    };
    let orchestrator = stream.status().orchestrator;
    let mut status = Map::new();
    status.insert("stream_id".into(), Value::String(stream_id.clone()));
    status.insert("request_id".into(), Value::String(request_id.clone()));
    status.insert("pipeline_id".into(), Value::String(pipeline_id.clone()));
    status.insert("orchestrator_info".into(), json!({ "address": "", "url": orchestrator }));
    let entry = Arc::new(LiveEntry {
        name: name.clone(),
        stream_id,
        control: stream.control(),
        video,
        status: Mutex::new(status),
        gateway_status: Mutex::new(Map::new()),
        input_taken: AtomicBool::new(false),
        stream: tokio::sync::Mutex::new(None),
    });
    let events = stream.events();
    let watch = stream.watch_status();
    *entry.stream.lock().await = Some(stream);
    node.live.lock().insert(name.clone(), entry.clone());
    node.count_active();
    node.metrics.streams_started.get_or_create(&lv2v_label(parsed.model())).inc();
    tokio::spawn(follow(node.clone(), entry.clone(), events, watch, request_id, pipeline_id));
    if !parsed.rtmp_output.is_empty() {
        push_output(&entry, &parsed.rtmp_output);
    }
    tracing::info!(stream = %name, orchestrator = %orchestrator, source = source.as_str(), "live stream started");
    Ok(entry)
}

/// Pushes the stream's output to the RTMP server at `url` while the stream runs.
fn push_output(entry: &Arc<LiveEntry>, url: &str) {
    let target = match super::rtmp_push::RtmpTarget::parse(url) {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!(stream = %entry.name, reason = %why, "no RTMP output");
            let error = json!({ "error_message": why, "error_time": now_millis() });
            entry.gateway_status.lock().unwrap_or_else(|e| e.into_inner()).insert("error".into(), error);
            return;
        }
    };
    let source = LiveOutput(entry.clone());
    tokio::spawn(super::rtmp_push::push_while_running(target, entry.name.clone(), source));
}

/// An LV2V stream's output, following its swaps.
struct LiveOutput(Arc<LiveEntry>);

impl super::rtmp_push::OutputSource for LiveOutput {
    async fn subscribe(&self) -> Option<gateway_actors::trickle::TrickleSubscriber> {
        self.0.stream.lock().await.as_ref().map(|stream| stream.output(SeqSpec::Current))
    }
}

fn lv2v_label(model: &str) -> super::metrics::CapabilityLabel {
    super::metrics::CapabilityLabel { capability: format!("live-video-to-video/{model}") }
}

/// Follows a stream: its `status` events become its status (go's fields set by the gateway),
/// its end (a failure the SDK could not swap away) is recorded and the stream forgotten, and a
/// stream whose input never came is stopped after [`INPUT_WAIT`].
async fn follow(
    node: Arc<Node>,
    entry: Arc<LiveEntry>,
    mut events: gateway_actors::channels::JsonReader,
    mut watch: tokio::sync::watch::Receiver<gateway_actors::live::LiveStreamStatus>,
    request_id: String,
    pipeline_id: String,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(16);
    // On a task of its own: `JsonReader::next` is not cancel-safe.
    let reader = tokio::spawn(async move {
        while let Ok(Some(event)) = events.next().await {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let input_deadline = tokio::time::sleep(INPUT_WAIT);
    tokio::pin!(input_deadline);
    let mut waiting_for_input = true;
    loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Value::Object(mut event)) if event.get("type").and_then(Value::as_str) == Some("status") => {
                    let orchestrator = watch.borrow().orchestrator.clone();
                    event.insert("stream_id".into(), Value::String(entry.stream_id.clone()));
                    event.insert("request_id".into(), Value::String(request_id.clone()));
                    event.insert("pipeline_id".into(), Value::String(pipeline_id.clone()));
                    event.insert("orchestrator_info".into(), json!({ "address": "", "url": orchestrator }));
                    *entry.status.lock().unwrap_or_else(|e| e.into_inner()) = event;
                }
                Some(_) => {}
                None => {
                    // The events ended: wait for the stream's end alone.
                    let _ = watch.wait_for(|s| s.ended.is_some()).await;
                    break;
                }
            },
            changed = watch.changed() => {
                if changed.is_err() || watch.borrow().ended.is_some() {
                    break;
                }
            }
            _ = &mut input_deadline, if waiting_for_input => {
                waiting_for_input = false;
                if !entry.input_taken.load(Ordering::SeqCst) {
                    node.stop_live(&entry, "no input came").await;
                    break;
                }
            }
        }
    }
    reader.abort();
    let ended = watch.borrow().ended.clone();
    if let Some(end) = ended.filter(|e| !matches!(e, gateway_actors::live::StreamEnd::Stopped)) {
        let error = json!({ "error_message": end.to_string(), "error_time": now_millis() });
        entry.gateway_status.lock().unwrap_or_else(|e| e.into_inner()).entry("error").or_insert(error);
        tracing::warn!(stream = %entry.name, reason = %end, "live stream ended");
        node.stop_live(&entry, "it ended").await;
    }
}

fn now_millis() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `POST /live/video-to-video/{stream}/start`.
pub async fn start_route(
    State(node): State<Arc<Node>>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path(stream): Path<String>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Caller { addr: caller, prefix: None };
    start_form(node, at, stream, query.0, &headers, &body).await
}

/// `POST /live/video-to-video/{prefix}/{stream}/start`.
pub async fn start_route_prefixed(
    State(node): State<Arc<Node>>,
    ConnectInfo(caller): ConnectInfo<SocketAddr>,
    Path((prefix, stream)): Path<(String, String)>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Caller { addr: caller, prefix: Some(prefix) };
    start_form(node, at, stream, query.0, &headers, &body).await
}

/// Who called a start, and the path prefix it used: where a pull from MediaMTX goes.
struct Caller {
    addr: SocketAddr,
    prefix: Option<String>,
}

async fn start_form(
    node: Arc<Node>,
    caller: Caller,
    stream: String,
    values: Vec<(String, String)>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let form = match form_values(headers, body, values) {
        Ok(form) => form,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let checked = LiveStartForm::check(&stream, form.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let form = match checked {
        Ok(form) => form,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    if form.is_output() {
        return StatusCode::OK.into_response();
    }
    let pull_url = match (form.rtmp_url.is_empty(), node.mediamtx_rtmp_port) {
        (false, _) => Some(form.rtmp_url.clone()),
        (true, Some(port)) => {
            Some(rtmp_pull::caller_url(caller.addr.ip(), port, caller.prefix.as_deref(), &form.stream))
        }
        (true, None) => None,
    };
    let start =
        LiveStart { stream: form.stream, source: form.source, query: form.query, parsed: form.parsed };
    match self::start(&node, start).await {
        Ok(entry) => {
            if let Some(url) = pull_url {
                tokio::spawn(rtmp_pull::pull_into_live(node.clone(), entry.clone(), url));
            }
            started_answer(&node, &entry)
        }
        Err((status, message)) => text(status, message),
    }
}

/// What a start answers: the stream's URLs on the node.
fn started_answer(node: &Node, entry: &LiveEntry) -> Response {
    axum::Json(json!({
            "stream": entry.name,
            "stream_id": entry.stream_id,
            "input_url": live_url(&node.base_url, &entry.name, "input"),
            "output_url": live_url(&node.base_url, &entry.name, "output"),
            "update_url": live_url(&node.base_url, &entry.name, "update"),
            "status_url": live_url(&node.base_url, &entry.stream_id, "status"),
    }))
    .into_response()
}

/// `POST /live/video-to-video/{stream}/update`.
pub async fn update(State(node): State<Arc<Node>>, Path(stream): Path<String>, body: Bytes) -> Response {
    let Some(entry) = node.live.get(&stream) else {
        return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND);
    };
    if body.len() > MAX_STREAM_BODY_BYTES {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    let message: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return text(StatusCode::BAD_REQUEST, "the update must be a JSON object"),
    };
    node.metrics.stream_updates.inc();
    match entry.control.send(&message).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `/live/video-to-video/{stream_id}/status`.
pub async fn status(State(node): State<Arc<Node>>, Path(stream_id): Path<String>) -> Response {
    if stream_id.is_empty() {
        return text(StatusCode::BAD_REQUEST, ERROR_STREAM_ID_REQUIRED);
    }
    match node.live.by_id(&stream_id) {
        Some(entry) => axum::Json(entry.status_json()).into_response(),
        None => text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND),
    }
}

/// `POST /live/video-to-video/{stream}/input`: an MPEG-TS body, cut on its keyframes and
/// published as it comes; the stream stops when the body ends.
pub async fn input(State(node): State<Arc<Node>>, Path(stream): Path<String>, request: Request) -> Response {
    let Some(entry) = node.live.get(&stream) else {
        return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND);
    };
    if !entry.take_input() {
        return text(StatusCode::CONFLICT, "the stream has an input already");
    }
    let mut body = request.into_body().into_data_stream();
    let mut cutter = TsCutter::new(TsCutterConfig::default());
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                failure = Some(format!("reading the input: {e}"));
                break;
            }
        };
        if let Err(e) = cut_and_publish(&mut cutter, &entry, &chunk).await {
            failure = Some(e);
            break;
        }
    }
    let before = cutter.stats().access_units;
    if let Ok(events) = cutter.finish() {
        let _ = entry.video.write_cut(events, cutter.stats().access_units - before).await;
    }
    let units = cutter.stats().access_units;
    node.stop_live(&entry, "its input ended").await;
    match failure {
        None => axum::Json(json!({ "access_units": units })).into_response(),
        Some(why) => text(StatusCode::BAD_REQUEST, format!("{why} (after {units} access units)")),
    }
}

async fn cut_and_publish(cutter: &mut TsCutter, entry: &LiveEntry, chunk: &[u8]) -> Result<(), String> {
    let before = cutter.stats().access_units;
    let events = cutter.push(chunk).map_err(|e| e.to_string())?;
    let units = cutter.stats().access_units - before;
    entry.video.write_cut(events, units).await.map_err(|e| e.to_string())
}

/// `GET /live/video-to-video/{stream}/output`: the output as one MPEG-TS stream from the
/// segment being written now, following swaps, until the stream ends.
pub async fn output(State(node): State<Arc<Node>>, Path(stream): Path<String>) -> Response {
    let Some(entry) = node.live.get(&stream) else {
        return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND);
    };
    let subscriber = match entry.stream.lock().await.as_ref() {
        Some(stream) => stream.output(SeqSpec::Current),
        None => return text(StatusCode::NOT_FOUND, ERROR_STREAM_NOT_FOUND),
    };
    let chunks = futures_util::stream::unfold((subscriber, None), |(mut sub, mut segment)| async move {
        loop {
            let current: &mut gateway_actors::trickle::IncomingSegment = match segment.as_mut() {
                Some(s) => s,
                None => match sub.next_segment().await {
                    Ok(Some(s)) => segment.insert(s),
                    _ => return None,
                },
            };
            match current.chunk().await {
                Ok(Some(bytes)) => return Some((Ok::<_, std::convert::Infallible>(bytes), (sub, segment))),
                // The segment ended (or broke off): on to the next one.
                _ => segment = None,
            }
        }
    });
    ([("content-type", gateway_core::trickle::MIME_MPEGTS)], Body::from_stream(chunks)).into_response()
}
