//! What a runner's app asks of the orchestrator for a session it serves, answered as
//! go-livepeer master does (`server/ai_http.go` `CreateLiveRunnerTrickleChannel`,
//! `DeleteLiveRunnerTrickleChannels`, `CreateLiveRunnerSessionProxy`,
//! `StopLiveRunnerSessionInternal`, `tryLiveRunnerProxy`; `ai/runner/live_runner.go`
//! `ValidSessionToken`, `CreateTrickleChannel`, `DeleteTrickleChannel`,
//! `createSessionProxyLocked`, `ResolveSessionProxy`):
//!
//! - Every callback is `{svc}/runner/{id}/session/{sid}/…` (the `Livepeer-Session-Control` the
//!   proxy handed the app) with `Livepeer-Session-Token`: 404 `runner not found` / `runner
//!   session not found`, 401 `invalid authorization`.
//! - `POST …/channels {"channels": [{name, mime_type}]}`: trickle channels `{sid}-{name}` on
//!   the orchestrator's trickle server (1 to 25; an existing name answers the channel it has),
//!   `{"channels": [{name, channel_name, url, internal_url, mime_type}]}`. `DELETE …/channels
//!   {"channels": [names]}` closes them (404 `trickle channel not found`; earlier names in the
//!   list stay deleted), `{"deleted": [...]}`. A session's channels close when it is released.
//! - `POST …/proxy {"target_url"?}`: a public URL `{svc}/run/{proxy_id}` (26 base32 letters)
//!   whose requests reach the target (the runner's URL by default; another URL must have the
//!   runner URL's hostname) with the session headers, like the app proxy.
//! - `POST …/stop`: the app ends its session (204).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::runners::{
    session_channel_name, ChannelRequest, ChannelsBody, ChannelsDeleted, RunnerChannel, SessionProxy,
    DEFAULT_CHANNEL_MIME_TYPE, HEADER_SESSION_TOKEN, MAX_CHANNELS_PER_REQUEST,
};

use super::runner_proxy::{app_path, relay, AppCall, ProxyTarget};
use super::runners::{base32_lower, derive_secret, json_ok, secrets_equal};
use super::{header, http_error, LocalOrchestrator, Reject};

/// Random bytes in a proxy id (go's `proxyIDRandomBytes`).
const PROXY_ID_BYTES: usize = 16;

impl LocalOrchestrator {
    /// go's `ValidSessionToken`.
    fn check_session_token(
        &self,
        runner_id: &str,
        session_id: &str,
        headers: &HeaderMap,
    ) -> Result<(), Reject> {
        self.expire_runners();
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = runners.get(runner_id).filter(|r| matches!(r.request.status.as_str(), "" | "ready"))
        else {
            return Err(Reject(StatusCode::NOT_FOUND, "runner not found".into()));
        };
        if !r.sessions.iter().any(|s| s.id == session_id) {
            return Err(Reject(StatusCode::NOT_FOUND, "runner session not found".into()));
        }
        let expected = derive_secret(&r.seed, &format!("session:{session_id}"));
        if !secrets_equal(header(headers, HEADER_SESSION_TOKEN).unwrap_or(""), &expected) {
            return Err(Reject(StatusCode::UNAUTHORIZED, "invalid authorization".into()));
        }
        Ok(())
    }

    /// Runs `change` on the session (404 as go when it is gone by now).
    fn with_session<T>(
        &self,
        runner_id: &str,
        session_id: &str,
        change: impl FnOnce(&mut super::runners::RunnerSession, &str) -> Result<T, Reject>,
    ) -> Result<T, Reject> {
        let mut runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let r = runners.get_mut(runner_id).ok_or(Reject(StatusCode::NOT_FOUND, "runner not found".into()))?;
        let runner_url = r.request.runner_url.clone();
        let session = r
            .sessions
            .iter_mut()
            .find(|s| s.id == session_id)
            .ok_or(Reject(StatusCode::NOT_FOUND, "runner session not found".into()))?;
        change(session, &runner_url)
    }
}

/// The channel count go accepts in one callback.
fn check_count(n: usize) -> Result<(), Reject> {
    match n {
        0 => Err(Reject(StatusCode::BAD_REQUEST, "channels is required".into())),
        n if n > MAX_CHANNELS_PER_REQUEST => Err(Reject(
            StatusCode::BAD_REQUEST,
            format!("channels cannot contain more than {MAX_CHANNELS_PER_REQUEST} entries"),
        )),
        _ => Ok(()),
    }
}

/// A session callback as go answers it: 404 without live runners, the session's token checked
/// (404, 401), then `work`: its value as JSON, or go's refusal.
fn callback<T: serde::Serialize>(
    orch: &LocalOrchestrator,
    (runner_id, session_id): &(String, String),
    headers: &HeaderMap,
    work: impl FnOnce() -> Result<T, Reject>,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    match orch.check_session_token(runner_id, session_id, headers).and_then(|()| work()) {
        Ok(answer) => json_ok(&answer),
        Err(refusal) => refusal.into_response(),
    }
}

/// A callback's JSON body (go's `json.Decoder`: 400 with its error).
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| Reject(StatusCode::BAD_REQUEST, e.to_string()))
}

/// `POST /runner/{id}/session/{sid}/channels`.
pub(super) async fn create_channels(
    State(orch): State<LocalOrchestrator>,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    callback(&orch, &ids, &headers, || {
        let (runner_id, session_id) = &ids;
        let req: ChannelsBody<ChannelRequest> = decode(&body)?;
        check_count(req.channels.len())?;
        let mut made = Vec::with_capacity(req.channels.len());
        for wanted in req.channels {
            let (name, channel_name) = session_channel_name(session_id, &wanted.name)
                .map_err(|m| Reject(StatusCode::BAD_REQUEST, m))?;
            let mime_type = match wanted.mime_type.trim() {
                "" => DEFAULT_CHANNEL_MIME_TYPE.to_owned(),
                _ => wanted.mime_type.clone(),
            };
            let url = format!("{}/ai/trickle/{channel_name}", orch.inner.service_uri);
            let channel = orch.with_session(runner_id, session_id, |session, _| {
                if let Some(existing) = session.channels.iter().find(|c| c.name == name) {
                    return Ok(existing.clone());
                }
                orch.inner.trickle.create_channel(&channel_name, &mime_type);
                let channel = RunnerChannel {
                    name: name.clone(),
                    channel_name,
                    internal_url: url.clone(),
                    url,
                    mime_type,
                };
                session.channels.push(channel.clone());
                Ok(channel)
            })?;
            made.push(channel);
        }
        Ok(ChannelsBody { channels: made })
    })
}

/// `DELETE /runner/{id}/session/{sid}/channels`.
pub(super) async fn delete_channels(
    State(orch): State<LocalOrchestrator>,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    callback(&orch, &ids, &headers, || {
        let (runner_id, session_id) = &ids;
        let req: ChannelsBody<String> = decode(&body)?;
        check_count(req.channels.len())?;
        for name in &req.channels {
            let (name, _) =
                session_channel_name(session_id, name).map_err(|m| Reject(StatusCode::BAD_REQUEST, m))?;
            orch.with_session(runner_id, session_id, |session, _| {
                let Some(i) = session.channels.iter().position(|c| c.name == name) else {
                    return Err(Reject(StatusCode::NOT_FOUND, "trickle channel not found".into()));
                };
                let channel = session.channels.remove(i);
                orch.inner.trickle.close_channel(&channel.channel_name);
                Ok(())
            })?;
        }
        Ok(ChannelsDeleted { deleted: req.channels })
    })
}

/// `POST /runner/{id}/session/{sid}/proxy`.
pub(super) async fn create_proxy(
    State(orch): State<LocalOrchestrator>,
    Path(ids): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    #[derive(serde::Deserialize, Default)]
    struct ProxyRequest {
        #[serde(default)]
        target_url: String,
    }
    callback(&orch, &ids, &headers, || {
        let (runner_id, session_id) = &ids;
        // go decodes with `json.Decoder`: an empty body is no target.
        let req: ProxyRequest =
            if body.iter().all(u8::is_ascii_whitespace) { ProxyRequest::default() } else { decode(&body)? };
        orch.with_session(runner_id, session_id, |session, runner_url| {
            let target = proxy_target_url(runner_url, &req.target_url)?;
            let proxy_id = base32_lower(&rand::random::<[u8; PROXY_ID_BYTES]>());
            session.proxies.push((proxy_id.clone(), target));
            Ok(SessionProxy { url: format!("{}/run/{proxy_id}", orch.inner.service_uri), proxy_id })
        })
    })
}

/// go's `createSessionProxyLocked` target checks (`normalizeProxyTargetURL`).
fn proxy_target_url(runner_url: &str, target_url: &str) -> Result<String, Reject> {
    let bad = |m: &str| Reject(StatusCode::BAD_REQUEST, m.into());
    let runner = url::Url::parse(runner_url)
        .ok()
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or(Reject(StatusCode::BAD_GATEWAY, "invalid registered runner_url".into()))?;
    let raw = target_url.trim();
    if raw.is_empty() {
        return Ok(runner.to_string());
    }
    let target = url::Url::parse(raw)
        .ok()
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
        .ok_or_else(|| bad("target_url must be an absolute URL"))?;
    if !matches!(target.scheme(), "http" | "https") {
        return Err(bad("target_url scheme must be http or https"));
    }
    if target.fragment().is_some() {
        return Err(bad("target_url must not include a fragment"));
    }
    if !target.host_str().unwrap_or("").eq_ignore_ascii_case(runner.host_str().unwrap_or("")) {
        return Err(bad("target_url hostname must match registered runner_url hostname"));
    }
    Ok(target.to_string())
}

/// `POST /runner/{id}/session/{sid}/stop`: the app ends its own session.
pub(super) async fn stop(
    State(orch): State<LocalOrchestrator>,
    Path((runner_id, session_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    if let Err(r) = orch.check_session_token(&runner_id, &session_id, &headers) {
        return r.into_response();
    }
    orch.release_runner_session(&runner_id, &session_id);
    StatusCode::NO_CONTENT.into_response()
}

/// `ANY /run/{proxy}/{path...}` (and the proxy's root): go's `tryLiveRunnerProxy` for the
/// default proxy URL template (`{svc}/run/{proxy}`), to the proxy's target with the session's
/// headers.
pub(super) async fn run(
    State(orch): State<LocalOrchestrator>,
    Path(captures): Path<HashMap<String, String>>,
    call: AppCall,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    let Some(target) = orch.session_proxy(&captures["proxy"].to_ascii_lowercase()) else {
        return http_error(StatusCode::NOT_FOUND, "live runner proxy not found");
    };
    relay(&orch, target, app_path(&captures), call, None).await
}

impl LocalOrchestrator {
    /// go's `ResolveSessionProxy` over ready runners' sessions.
    fn session_proxy(&self, proxy_id: &str) -> Option<ProxyTarget> {
        self.expire_runners();
        let runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        runners.iter().filter(|(_, r)| matches!(r.request.status.as_str(), "" | "ready")).find_map(
            |(id, r)| {
                r.sessions.iter().find_map(|s| {
                    let (_, target) = s.proxies.iter().find(|(p, _)| p == proxy_id)?;
                    Some(ProxyTarget {
                        url: target.clone(),
                        runner_id: id.clone(),
                        session_id: s.id.clone(),
                        session_token: derive_secret(&r.seed, &format!("session:{}", s.id)),
                    })
                })
            },
        )
    }
}
