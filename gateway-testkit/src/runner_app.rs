//! A sample live-runner app on a real socket: what a runner process serves behind an
//! orchestrator. Every request is answered with what arrived (method, path, query, body) and
//! the session headers the orchestrator's proxy adds (`Livepeer-Runner-Route`,
//! `Livepeer-Session-Id`, `Livepeer-Session-Token`, `Livepeer-Session-Control`), so a test sees
//! both the gateway's call and the orchestrator's part in it.
//!
//! A path ending in `/events` streams server-sent events instead, as apps that generate do:
//! `count` events (`event: token`, `data: {"i": k, "session": id}`), `interval_ms` apart (query
//! parameters; 3 and 50 by default), so a test sees an answer arrive piece by piece and a
//! metered call pay while it does.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use gateway_core::runners::{
    HEADER_RUNNER_ROUTE, HEADER_SESSION_CONTROL, HEADER_SESSION_ID, HEADER_SESSION_TOKEN,
};
use tokio::net::TcpListener;

use crate::serve::{serve, ServerHandle};

/// The proxy's session headers, as go-livepeer's `proxyLiveRunner` sets them.
pub const SESSION_HEADERS: [&str; 4] =
    [HEADER_RUNNER_ROUTE, HEADER_SESSION_ID, HEADER_SESSION_TOKEN, HEADER_SESSION_CONTROL];

/// The echo app, serving until [`RunnerApp::shutdown`].
#[derive(Debug)]
pub struct RunnerApp {
    /// Its base URL (`http://127.0.0.1:port/runner`), what it registers as `runner_url`.
    pub url: String,
    server: ServerHandle,
}

impl RunnerApp {
    /// Starts it on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<RunnerApp> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().fallback(echo);
        Ok(RunnerApp { url: format!("http://{addr}/runner"), server: serve(listener, app, None) })
    }

    /// Stops it.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Stops it as a killed process would: answers in flight are cut off.
    pub async fn kill(mut self) {
        let _ = self.server.stop_and_wait(Duration::from_secs(5)).await;
    }
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if uri.path().ends_with("/events") {
        return events(&uri, &headers);
    }
    let session: serde_json::Map<String, serde_json::Value> = SESSION_HEADERS
        .iter()
        .map(|h| {
            let v = headers.get(*h).and_then(|v| v.to_str().ok()).unwrap_or("");
            (h.to_string(), serde_json::Value::from(v))
        })
        .collect();
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or(""),
        "body": String::from_utf8_lossy(&body),
        "session": session,
    }))
    .into_response()
}

/// The `/events` stream.
fn events(uri: &Uri, headers: &HeaderMap) -> Response {
    let query: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let param = |name: &str, default: u64| query.get(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let (count, interval) = (param("count", 3), Duration::from_millis(param("interval_ms", 50)));
    let session = headers.get(HEADER_SESSION_ID).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let stream = futures_util::stream::unfold(0u64, move |i| {
        let session = session.clone();
        async move {
            if i >= count {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            let data = serde_json::json!({ "i": i, "session": session });
            let event = format!("event: token\ndata: {data}\n\n");
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(event)), i + 1))
        }
    });
    ([("content-type", "text/event-stream"), ("cache-control", "no-cache")], Body::from_stream(stream))
        .into_response()
}
