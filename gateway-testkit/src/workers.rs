//! Worker doubles behind the local orchestrator: what a runner or BYOC container would do.
//!
//! - LV2V passthrough: reads MPEG-TS segments from the input channel and republishes them, chunk
//!   by chunk, to the output channel; emits a status event every few seconds (go-livepeer
//!   gateways stop a job whose events go silent for 30 s); records control messages.
//! - BYOC `text-reversal`: reads text messages from the control channel and writes the reversed
//!   text to the data channel (JSON lines) or, without one, to the output channel; passes video
//!   from input to output when both are enabled.
//!
//! Workers use the trickle server in-process, as go-livepeer's runner-side local pub/sub does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use gateway_core::jobs::JobParameters;
use gateway_core::trickle::{ChannelNames, SeqSpec};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::trickle_server::TrickleServer;

/// Name of the BYOC capability the local network registers.
pub const TEXT_REVERSAL: &str = "text-reversal";

/// Settings shared by the workers.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// How often a status event is written.
    pub event_interval: Duration,
    /// Pipeline or capability name reported in events.
    pub pipeline: String,
}

/// Reverses text by characters.
pub fn reverse_text(text: &str) -> String {
    text.chars().rev().collect()
}

/// The text of a control message: `{"text": ...}`, a JSON string, or raw UTF-8. Keepalives and
/// other JSON objects carry none.
pub fn message_text(msg: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(msg) {
        Ok(Value::Object(o)) => o.get("text").and_then(Value::as_str).map(str::to_owned),
        Ok(Value::String(s)) => Some(s),
        Ok(_) => None,
        Err(_) => std::str::from_utf8(msg).ok().map(|s| s.trim_end_matches('\n').to_owned()),
    }
}

/// Writes one JSON message as one segment on `channel`.
async fn publish_json(trickle: &TrickleServer, channel: &str, value: &Value) -> bool {
    let Some(mut publisher) = trickle.local_publisher(channel) else { return false };
    publisher.write_segment(Bytes::from(value.to_string())).await.is_ok()
}

/// Emits status events until cancelled.
async fn status_events(
    trickle: TrickleServer,
    events: String,
    opts: WorkerOptions,
    counter: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    loop {
        let event = json!({
            "type": "status",
            "pipeline": opts.pipeline,
            "segments_processed": counter.load(Ordering::Relaxed),
            "timestamp_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        });
        if !publish_json(&trickle, &events, &event).await {
            return;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(opts.event_interval) => {}
        }
    }
}

/// Copies every segment of `from` to `to`, chunk by chunk, counting segments in `activity`.
async fn relay(
    trickle: &TrickleServer,
    from: &str,
    to: &str,
    activity: &AtomicU64,
    cancel: &CancellationToken,
) {
    let (Some(mut sub), Some(mut publisher)) =
        (trickle.local_subscriber(from, SeqSpec::Next), trickle.local_publisher(to))
    else {
        return;
    };
    loop {
        let segment = tokio::select! {
            _ = cancel.cancelled() => return,
            s = sub.next_segment() => s,
        };
        let Some(mut segment) = segment else { return };
        activity.fetch_add(1, Ordering::Relaxed);
        let Ok(mut writer) = publisher.begin_segment() else { return };
        while let Some(chunk) = segment.next_chunk().await {
            writer.write(chunk);
        }
        writer.finish();
    }
}

/// LV2V passthrough worker; cancels `cancel` when the input channel ends.
pub async fn run_lv2v_passthrough(
    trickle: TrickleServer,
    channels: ChannelNames,
    opts: WorkerOptions,
    activity: Arc<AtomicU64>,
    cancel: CancellationToken,
) {
    tokio::spawn(status_events(
        trickle.clone(),
        channels.events.clone(),
        opts.clone(),
        activity.clone(),
        cancel.clone(),
    ));
    tokio::spawn(watch_control(
        trickle.clone(),
        channels.control.clone(),
        channels.events.clone(),
        cancel.clone(),
    ));
    relay(&trickle, &channels.input, &channels.output, &activity, &cancel).await;
    cancel.cancel();
}

/// Scope worker (no media channels): status events on `events` and acknowledged parameter
/// updates from `control`, until `end`.
pub async fn run_scope(
    trickle: TrickleServer,
    control: String,
    events: String,
    opts: WorkerOptions,
    end: CancellationToken,
) {
    let activity = Arc::new(AtomicU64::new(0));
    tokio::spawn(watch_control(trickle.clone(), control, events.clone(), end.clone()));
    status_events(trickle, events, opts, activity, end).await;
}

/// Where a worker starts reading its control channel: the first segment. The channel is made
/// for this stream, and a real worker is listening before the orchestrator answers the start
/// request, so a message the gateway sends right after start is never skipped. Resolving
/// "next" when the spawned task first runs would skip it on a loaded machine.
const CONTROL_START: SeqSpec = SeqSpec::At(0);

/// Reads control messages and acknowledges parameter updates on the events channel.
async fn watch_control(trickle: TrickleServer, control: String, events: String, cancel: CancellationToken) {
    // From the first segment: see `CONTROL_START`.
    let Some(mut sub) = trickle.local_subscriber(&control, CONTROL_START) else { return };
    loop {
        let segment = tokio::select! {
            _ = cancel.cancelled() => return,
            s = sub.next_segment() => s,
        };
        let Some(segment) = segment else { return };
        let msg = segment.read_all().await;
        if let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(&msg) {
            if o.get("keep").is_none() {
                publish_json(
                    &trickle,
                    &events,
                    &json!({"type": "params_updated", "params": Value::Object(o)}),
                )
                .await;
            }
        }
    }
}

/// BYOC stream worker for `capability`.
pub async fn run_byoc_stream(
    trickle: TrickleServer,
    channels: ChannelNames,
    capability: String,
    params: JobParameters,
    start_params: Value,
    opts: WorkerOptions,
    cancel: CancellationToken,
) {
    let activity = Arc::new(AtomicU64::new(0));
    tokio::spawn(status_events(
        trickle.clone(),
        channels.events.clone(),
        opts.clone(),
        activity.clone(),
        cancel.clone(),
    ));
    if !start_params.is_null() {
        publish_json(&trickle, &channels.events, &json!({"type": "stream_started", "params": start_params}))
            .await;
    }
    if params.enable_video_ingress && params.enable_video_egress {
        let (t, c, a, k) = (trickle.clone(), channels.clone(), activity.clone(), cancel.clone());
        tokio::spawn(async move { relay(&t, &c.input, &c.output, &a, &k).await });
    }
    let Some(mut control) = trickle.local_subscriber(&channels.control, CONTROL_START) else { return };
    let mut data = if params.enable_data_output { trickle.local_publisher(&channels.data) } else { None };
    let mut output = if params.enable_video_egress && !params.enable_video_ingress {
        trickle.local_publisher(&channels.output)
    } else {
        None
    };
    loop {
        let segment = tokio::select! {
            _ = cancel.cancelled() => break,
            s = control.next_segment() => s,
        };
        let Some(segment) = segment else { break };
        let msg = segment.read_all().await;
        let Some(text) = message_text(&msg) else { continue };
        if capability != TEXT_REVERSAL {
            continue;
        }
        activity.fetch_add(1, Ordering::Relaxed);
        let reply = json!({"input": text, "reversed": reverse_text(&text)});
        if let Some(p) = data.as_mut() {
            let _ = p.write_segment(Bytes::from(format!("{reply}\n"))).await;
        } else if let Some(p) = output.as_mut() {
            let _ = p.write_segment(Bytes::from(reverse_text(&text))).await;
        } else {
            publish_json(
                &trickle,
                &channels.events,
                &json!({"type": "text-reversal", "reversed": reverse_text(&text)}),
            )
            .await;
        }
    }
    cancel.cancel();
}

/// Where the orchestrator double's BYOC worker "listens" (it is called in-process; the URL
/// only appears in go-shaped error texts).
pub const WORKER_URL: &str = "http://127.0.0.1:9876";

/// Single-shot path whose answer the worker streams as server-sent events, one event per word.
pub const STREAM_REQUEST_PATH: &str = "stream";

/// A worker's HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerAnswer {
    /// Status code.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Bytes,
}

impl WorkerAnswer {
    fn json(status: StatusCode, value: Value) -> WorkerAnswer {
        WorkerAnswer { status, content_type: "application/json", body: Bytes::from(value.to_string()) }
    }

    fn text(status: StatusCode, text: impl Into<String>) -> WorkerAnswer {
        WorkerAnswer { status, content_type: "text/plain; charset=utf-8", body: Bytes::from(text.into()) }
    }
}

/// A single-shot BYOC request: `text-reversal` answers `{"reversed": ...}` (JSON) for
/// `{"text": ...}`, and reversed text (plain) for any other UTF-8 body.
pub fn handle_request(capability: &str, _path: &str, body: &[u8]) -> WorkerAnswer {
    if capability != TEXT_REVERSAL {
        return WorkerAnswer::text(StatusCode::NOT_FOUND, "unknown capability");
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => match o.get("text").and_then(Value::as_str) {
            Some(t) => WorkerAnswer::json(StatusCode::OK, json!({"reversed": reverse_text(t)})),
            None => WorkerAnswer::text(StatusCode::BAD_REQUEST, "missing \"text\""),
        },
        _ => match std::str::from_utf8(body) {
            Ok(t) => WorkerAnswer::text(StatusCode::OK, reverse_text(t)),
            Err(_) => WorkerAnswer::text(StatusCode::BAD_REQUEST, "body is not UTF-8"),
        },
    }
}

/// A streamed single-shot request ([`STREAM_REQUEST_PATH`]): the lines of a server-sent-event
/// answer, one `data: {"reversed": word}` event per word of the text, then `data: [DONE]`.
pub fn stream_request(capability: &str, body: &[u8]) -> tokio::sync::mpsc::Receiver<String> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let text = message_text(body).filter(|_| capability == TEXT_REVERSAL).unwrap_or_default();
    tokio::spawn(async move {
        for word in text.split_whitespace() {
            let event = json!({"reversed": reverse_text(word)});
            if tx.send(format!("data: {event}")).await.is_err() || tx.send(String::new()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tx.send("data: [DONE]".to_owned()).await;
        let _ = tx.send(String::new()).await;
    });
    rx
}

/// The worker's `POST /stream/params`: a running stream (its events channel) announces the new
/// parameters as a `params_updated` event; an unknown stream is a 404.
pub async fn stream_params(trickle: &TrickleServer, events: Option<&str>, body: &[u8]) -> WorkerAnswer {
    let Some(events) = events else {
        return WorkerAnswer::text(StatusCode::NOT_FOUND, "stream not found");
    };
    let params = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    publish_json(trickle, events, &json!({"type": "params_updated", "params": params})).await;
    WorkerAnswer::json(StatusCode::OK, json!({"status": "ok"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_handling() {
        assert_eq!(reverse_text("héllo"), "olléh");
        assert_eq!(message_text(br#"{"text":"abc"}"#).as_deref(), Some("abc"));
        assert_eq!(message_text(br#""abc""#).as_deref(), Some("abc"));
        assert_eq!(message_text(br#"{"keep":"alive"}"#), None);
        assert_eq!(message_text(b"plain\n").as_deref(), Some("plain"));
        assert_eq!(
            handle_request(TEXT_REVERSAL, "", br#"{"text":"ab"}"#).body,
            Bytes::from(r#"{"reversed":"ba"}"#)
        );
        assert_eq!(handle_request(TEXT_REVERSAL, "", b"xy").body, Bytes::from("yx"));
        assert_eq!(handle_request("other", "", b"xy").status, StatusCode::NOT_FOUND);
    }
}
