//! The live-runner app proxy, as go-livepeer master serves it (`server/ai_http.go`
//! `ProxyLiveRunnerSession`, `ProxyLiveRunnerSingleShot`, `proxyLiveRunner`):
//!
//! - `ANY /apps/{id}/session/{sid}/app/{path...}` calls a reserved session's app.
//! - `ANY /apps/{id}/app/{path...}` is a single-shot runner's call: a session is reserved for
//!   the one call (free, or paid like a session reservation: a 402 challenge first) and
//!   released when the answer ends. A metered call is debited while it runs and cut off when
//!   its balance runs out (go cancels the proxied request).
//!
//! Both reverse-proxy to the runner's URL path joined with `path` (query kept), adding the
//! session headers, and stream the runner's answer back as it comes: 404 for an unknown
//! session, 502 when the runner cannot be reached. Without the slash after `app`, go's mux
//! redirects (301) to it. The request body is read whole before it is relayed (go streams it).

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use gateway_core::runners::{
    HEADER_RUNNER_ROUTE, HEADER_SESSION_CONTROL, HEADER_SESSION_ID, HEADER_SESSION_TOKEN, MODE_SINGLE_SHOT,
};
use tokio_util::sync::CancellationToken;

use super::runners::derive_secret;
use super::{http_error, LocalOrchestrator};

/// A request to relay, taken whole from the incoming one.
pub(super) struct AppCall {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for AppCall {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (method, uri, headers) = (req.method().clone(), req.uri().clone(), req.headers().clone());
        let body = Bytes::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        Ok(AppCall { method, uri, headers, body })
    }
}

/// The path below `app` (or the proxy) in a route's captures; empty for the root.
pub(super) fn app_path(captures: &HashMap<String, String>) -> &str {
    captures.get("path").map(String::as_str).unwrap_or("")
}

/// Where a session's calls go: the runner's URL (or a proxy's target), the session, and the
/// token the runner checks its callbacks with.
pub(super) struct ProxyTarget {
    pub(super) url: String,
    pub(super) runner_id: String,
    pub(super) session_id: String,
    pub(super) session_token: String,
}

impl LocalOrchestrator {
    fn proxy_target(&self, runner_id: &str, session_id: &str) -> Option<ProxyTarget> {
        self.expire_runners();
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let r = runners.get(runner_id).filter(|r| r.sessions.iter().any(|s| s.id == session_id))?;
        Some(ProxyTarget {
            url: r.request.runner_url.clone(),
            runner_id: runner_id.to_owned(),
            session_id: session_id.to_owned(),
            session_token: derive_secret(&r.seed, &format!("session:{session_id}")),
        })
    }
}

/// `…/app` without the slash: go's mux redirects to `…/app/`.
pub(super) async fn app_redirect(uri: Uri) -> Response {
    let location = format!("{}/", uri.path());
    (StatusCode::MOVED_PERMANENTLY, [("location", location)]).into_response()
}

/// `ANY /apps/{id}/session/{sid}/app/{path...}` (and the root, `…/app/`).
pub(super) async fn session(
    State(orch): State<LocalOrchestrator>,
    Path(captures): Path<HashMap<String, String>>,
    call: AppCall,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    let (runner_id, session_id) = (&captures["id"], &captures["sid"]);
    let Some(target) = orch.proxy_target(runner_id, session_id) else {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    };
    relay(&orch, target, app_path(&captures), call, None).await
}

/// `ANY /apps/{id}/app/{path...}` (and the root): reserve, relay, release when the answer ends.
pub(super) async fn single_shot(
    State(orch): State<LocalOrchestrator>,
    Path(captures): Path<HashMap<String, String>>,
    call: AppCall,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    let runner_id = &captures["id"];
    let Some(terms) = orch.runner_terms(runner_id) else {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    };
    if terms.mode != MODE_SINGLE_SHOT {
        return http_error(StatusCode::BAD_REQUEST, "runner is not single-shot");
    }
    let (session_id, end) = match orch.reserve_for(runner_id, &terms, &call.headers) {
        Ok(reserved) => reserved,
        Err(refusal) => return *refusal,
    };
    let release =
        Release { orch: orch.clone(), runner_id: runner_id.clone(), session_id: session_id.clone() };
    let Some(target) = orch.proxy_target(runner_id, &session_id) else {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    };
    relay(&orch, target, app_path(&captures), call, Some((end, release))).await
}

/// Releases a single-shot call's session when dropped: when its answer has been sent, or
/// abandoned.
pub(super) struct Release {
    orch: LocalOrchestrator,
    runner_id: String,
    session_id: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.orch.release_runner_session(&self.runner_id, &self.session_id);
    }
}

/// go's `proxyLiveRunner`. A single-shot call carries its session's end (payment ran out: the
/// answer is cut off) and its release, which the answer's body holds until it ends.
pub(super) async fn relay(
    orch: &LocalOrchestrator,
    target: ProxyTarget,
    path: &str,
    call: AppCall,
    single_shot: Option<(CancellationToken, Release)>,
) -> Response {
    let (runner_id, session_id) = (target.runner_id.as_str(), target.session_id.as_str());
    let Ok(mut url) = url::Url::parse(&target.url) else {
        return http_error(StatusCode::BAD_GATEWAY, "invalid runner_url");
    };
    url.set_path(&go_join_path(url.path(), path));
    url.set_query(call.uri.query());
    let control = format!("{}/runner/{runner_id}/session/{session_id}", orch.inner.service_uri);
    let mut req = proxy_client().request(call.method, url);
    for (name, value) in call.headers.iter() {
        if !matches!(name.as_str(), "host" | "content-length" | "connection" | "transfer-encoding") {
            req = req.header(name, value);
        }
    }
    let req = req
        .header(HEADER_RUNNER_ROUTE, runner_id)
        .header(HEADER_SESSION_ID, session_id)
        .header(HEADER_SESSION_TOKEN, &target.session_token)
        .header(HEADER_SESSION_CONTROL, control)
        .body(call.body);
    let end = single_shot.as_ref().map(|(end, _)| end.clone()).unwrap_or_default();
    let answer = tokio::select! {
        answer = req.send() => answer,
        _ = end.cancelled() => return http_error(StatusCode::BAD_GATEWAY, "context canceled"),
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return http_error(StatusCode::BAD_GATEWAY, e.to_string()),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for hop in ["connection", "transfer-encoding", "content-length", "keep-alive"] {
        headers.remove(hop);
    }
    let release = single_shot.map(|(_, release)| release);
    // The body ends with the runner's answer, or when a single-shot call's session ends; the
    // release goes with the last chunk.
    let chunks = answer.bytes_stream().take_until(async move { end.cancelled().await }).map(move |chunk| {
        let _held = &release;
        chunk
    });
    let mut resp = (status, Body::from_stream(chunks)).into_response();
    resp.headers_mut().extend(headers);
    resp
}

/// go's `url.JoinPath("/", base, app_path)`: the parts joined and cleaned (`.` and `..`
/// resolved, no empty segments), a trailing slash kept only when `app_path` ends with one.
fn go_join_path(base: &str, app_path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in base.split('/').chain(app_path.split('/')) {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut joined = format!("/{}", parts.join("/"));
    if app_path.ends_with('/') && !joined.ends_with('/') {
        joined.push('/');
    }
    joined
}

/// The proxy's client: plain HTTP and TLS to runners alike (a test double trusts any).
fn proxy_client() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .no_proxy()
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::go_join_path;

    #[test]
    fn paths_join_as_gos_url_join_path() {
        assert_eq!(go_join_path("/runner", ""), "/runner");
        assert_eq!(go_join_path("/runner/", "v1/x"), "/runner/v1/x");
        assert_eq!(go_join_path("", "v1/x/"), "/v1/x/");
        assert_eq!(go_join_path("/base", "a/../b/./c"), "/base/b/c");
        assert_eq!(go_join_path("/base", "../../etc"), "/etc");
        assert_eq!(go_join_path("", ""), "/");
    }
}
