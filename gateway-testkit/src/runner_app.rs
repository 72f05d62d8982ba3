//! A sample live-runner app on a real socket: what a runner process serves behind an
//! orchestrator. Every request is answered with what arrived (method, path, query, body) and
//! the session headers the orchestrator's proxy adds (`Livepeer-Runner-Route`,
//! `Livepeer-Session-Id`, `Livepeer-Session-Token`, `Livepeer-Session-Control`), so a test sees
//! both the gateway's call and the orchestrator's part in it.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::serve::{serve, ServerHandle};

/// The proxy's session headers, as go-livepeer's `proxyLiveRunner` sets them.
pub const SESSION_HEADERS: [&str; 4] =
    ["Livepeer-Runner-Route", "Livepeer-Session-Id", "Livepeer-Session-Token", "Livepeer-Session-Control"];

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
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
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
}
