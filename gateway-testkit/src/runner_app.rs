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
//!
//! `POST …/scope` is a Scope app as a persistent runner serves one: it asks the orchestrator
//! for the session's `control` and `events` channels (the session callback, with the token
//! the proxy handed it), writes a first status event, and answers
//! `{manifest_id, control_url, events_url}` as a Scope start does.

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
        RunnerApp::start_on(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts it on `addr` (port 0: a free one).
    pub async fn start_on(addr: std::net::SocketAddr) -> std::io::Result<RunnerApp> {
        let listener = TcpListener::bind(addr).await?;
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
    if uri.path().ends_with("/scope") && method == Method::POST {
        return scope(&headers).await;
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

/// The `/scope` app: channels from the orchestrator, a first event, the Scope answer.
async fn scope(headers: &HeaderMap) -> Response {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (control, token, session) =
        (get(HEADER_SESSION_CONTROL), get(HEADER_SESSION_TOKEN), get(HEADER_SESSION_ID));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap_or_default();
    let wanted = serde_json::json!({ "channels": [
        { "name": "control", "mime_type": "application/json" },
        { "name": "events", "mime_type": "application/json" },
    ]});
    let made = client
        .post(format!("{control}/channels"))
        .header(HEADER_SESSION_TOKEN, token)
        .json(&wanted)
        .send()
        .await;
    let channels: serde_json::Value = match made {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => {
            return (axum::http::StatusCode::BAD_GATEWAY, format!("channels: HTTP {}", r.status()))
                .into_response()
        }
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, format!("channels: {e}")).into_response(),
    };
    let url = |i: usize| channels["channels"][i]["url"].as_str().unwrap_or("").to_owned();
    let (control_url, events_url) = (url(0), url(1));
    let first = serde_json::json!({ "type": "status", "pipeline": "scope", "session": session });
    let _ = client.post(format!("{events_url}/0")).body(first.to_string()).send().await;
    axum::Json(serde_json::json!({
        "manifest_id": session,
        "control_url": control_url,
        "events_url": events_url,
    }))
    .into_response()
}
