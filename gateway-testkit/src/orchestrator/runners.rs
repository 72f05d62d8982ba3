//! The live-runner registry, answering as go-livepeer master does (`ai/runner/live_runner.go`
//! `Heartbeat`, `Unregister`, `Runners`; `server/ai_http.go` `LiveRunnerHeartbeat`,
//! `UnregisterLiveRunner`, `DiscoverLiveRunners`): `POST /runners/heartbeat`,
//! `POST /runners/{id}/unregister` and `GET /discovery`.
//!
//! A runner bootstraps with the registration secret (go's `-orchSecret`, compared as sent in
//! `Authorization`), gets an id (`runner_` and 8 base32 letters unless it chose one), a heartbeat
//! secret (HMAC-SHA256 of a random seed, base32) and an O2R trickle channel that carries
//! `{"keep":"alive"}` every 10 s; it stays listed while it heartbeats within the TTL.
//! Discovery shows `…/apps/{id}/session` (persistent) or `…/apps/{id}/app` (single-shot),
//! never the runner's URL, and, on chain, the price converted from USD to whole wei per second
//! (per 720p pixel-second, or per request for `fixed`) at `OrchestratorConfig::usd_per_eth`
//! (go reads an ETH/USD feed). Sessions are `runner_sessions`, the app proxy `runner_proxy`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::runners::{
    discovery_unit, normalize_heartbeat, DiscoveredRunner, DiscoveryEntry, HeartbeatRequest,
    HeartbeatResponse, RunnerChannel, RunnerPriceInfo, MODE_SINGLE_SHOT,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::{header, http_error, LocalOrchestrator};

/// go's O2R keep-alive interval.
const O2R_KEEPALIVE: Duration = Duration::from_secs(10);
/// go's O2R keep-alive message.
const O2R_KEEPALIVE_MESSAGE: &str = r#"{"keep":"alive"}"#;

/// One registered runner.
pub(super) struct RegisteredRunner {
    pub(super) request: HeartbeatRequest,
    heartbeat_secret: String,
    /// Derives the runner's secrets (go's `liveRunner.seed`): heartbeat and session tokens.
    pub(super) seed: [u8; 32],
    last_heartbeat: Instant,
    pub(super) o2r: RunnerChannel,
    /// Ends the O2R keep-alives.
    cancel: CancellationToken,
    /// Sessions it holds, oldest first.
    pub(super) sessions: Vec<RunnerSession>,
}

/// A session a runner holds (go's `liveRunnerSession`).
pub(super) struct RunnerSession {
    pub(super) id: String,
    /// Ends its accounting (and a single-shot call's proxying).
    pub(super) end: CancellationToken,
    /// Paid once at reservation (`fixed`): takes no follow-up payment.
    pub(super) fixed: bool,
    /// Trickle channels the runner made for it, by name (closed on release).
    pub(super) channels: Vec<gateway_core::runners::RunnerChannel>,
    /// Public proxies the runner made for it: id and target URL.
    pub(super) proxies: Vec<(String, String)>,
}

/// The registry (go's `LiveRunnerRegistry`, dynamic runners only).
pub(super) type RunnerRegistry = std::sync::Mutex<HashMap<String, RegisteredRunner>>;

impl LocalOrchestrator {
    /// Removes runners silent for longer than the TTL, closing their O2R channels.
    pub(super) fn expire_runners(&self) {
        let ttl = self.inner.config.runner_heartbeat_ttl;
        let mut runners = self.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
        let expired: Vec<String> = runners
            .iter()
            .filter(|(_, r)| r.last_heartbeat.elapsed() > ttl)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(r) = runners.remove(&id) {
                self.remove_runner_channels(&r);
            }
        }
    }

    /// go's `expiryLoop`: every heartbeat interval, forgets the runners whose heartbeats
    /// stopped (releasing their sessions), whether or not anyone asks. One loop per
    /// orchestrator, started by the first registration; it ends with the orchestrator.
    fn watch_runner_expiry(&self) {
        if self.inner.expiry_watched.swap(true, std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let weak = std::sync::Arc::downgrade(&self.inner);
        let interval = self.inner.config.runner_heartbeat_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                LocalOrchestrator { inner }.expire_runners();
            }
        });
    }

    fn remove_runner_channels(&self, runner: &RegisteredRunner) {
        for session in &runner.sessions {
            session.end.cancel();
            for channel in &session.channels {
                self.inner.trickle.close_channel(&channel.channel_name);
            }
        }
        runner.cancel.cancel();
        self.inner.trickle.close_channel(&runner.o2r.channel_name);
    }

    /// go's answer where live runners are not enabled (no registration secret configured).
    pub(super) fn live_runners_off(&self) -> Option<Response> {
        self.inner
            .config
            .runner_registration_secret
            .is_none()
            .then(|| http_error(StatusCode::NOT_FOUND, "live runners are not supported"))
    }

    /// Ids of the runners registered now (expired ones removed first).
    pub fn runner_ids(&self) -> Vec<String> {
        self.expire_runners();
        let mut ids: Vec<String> =
            self.inner.runners.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// `POST /runners/heartbeat`.
pub(super) async fn heartbeat(
    State(orch): State<LocalOrchestrator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(registration_secret) = orch.inner.config.runner_registration_secret.clone() else {
        return http_error(StatusCode::NOT_FOUND, "live runners are not supported");
    };
    let mut req: HeartbeatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return http_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let auth = header(&headers, "authorization").unwrap_or("").to_owned();
    req.runner_id = req.runner_id.trim().to_owned();
    if req.runner_id.is_empty() {
        req.runner_id = format!("runner_{}", base32_lower(&rand::random::<[u8; 5]>()));
    }
    let req = match normalize_heartbeat(req, orch.inner.config.offchain) {
        Ok(r) => r,
        Err(e) => return http_error(StatusCode::BAD_REQUEST, e),
    };
    orch.expire_runners();
    let config = &orch.inner.config;
    let mut runners = orch.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
    let answer = match runners.get_mut(&req.runner_id) {
        None => {
            if !secrets_equal(&auth, &registration_secret) {
                return http_error(StatusCode::UNAUTHORIZED, "invalid registration authorization");
            }
            let seed = rand::random::<[u8; 32]>();
            let heartbeat_secret = derive_secret(&seed, "heartbeat");
            // go's `createBootstrapTrickleChannel`: `{id}-{16 letters of a seed secret}-o2r`.
            let label = derive_secret(&seed, "trickle:o2r");
            let channel_name = format!("{}-{}-o2r", req.runner_id, &label[..16]);
            let o2r = RunnerChannel {
                name: "o2r".into(),
                url: format!("{}/ai/trickle/{channel_name}", orch.inner.service_uri),
                channel_name,
                internal_url: String::new(),
                mime_type: "application/json".into(),
            };
            let cancel = CancellationToken::new();
            orch.watch_runner_expiry();
            orch.inner.trickle.create_channel(&o2r.channel_name, &o2r.mime_type);
            tokio::spawn(o2r_keepalives(orch.clone(), o2r.channel_name.clone(), cancel.clone()));
            let answer = HeartbeatResponse {
                runner_id: req.runner_id.clone(),
                orchestrator: orch.inner.service_uri.clone(),
                heartbeat_interval: go_duration(config.runner_heartbeat_interval),
                heartbeat_ttl: go_duration(config.runner_heartbeat_ttl),
                heartbeat_secret: heartbeat_secret.clone(),
                o2r: Some(o2r.clone()),
                session_ids: Vec::new(),
            };
            let registered = RegisteredRunner {
                request: req.clone(),
                heartbeat_secret,
                seed,
                last_heartbeat: Instant::now(),
                o2r,
                cancel,
                sessions: Vec::new(),
            };
            runners.insert(req.runner_id.clone(), registered);
            answer
        }
        Some(runner) => {
            if !secrets_equal(&auth, &runner.heartbeat_secret) {
                return http_error(StatusCode::UNAUTHORIZED, "invalid heartbeat authorization");
            }
            runner.request = req.clone();
            runner.last_heartbeat = Instant::now();
            let session_ids = runner.sessions.iter().map(|s| s.id.clone()).collect();
            HeartbeatResponse {
                runner_id: req.runner_id.clone(),
                orchestrator: orch.inner.service_uri.clone(),
                heartbeat_interval: go_duration(config.runner_heartbeat_interval),
                heartbeat_ttl: go_duration(config.runner_heartbeat_ttl),
                heartbeat_secret: String::new(),
                o2r: None,
                session_ids,
            }
        }
    };
    json_ok(&answer)
}

/// `POST /runners/{id}/unregister`: 204.
pub(super) async fn unregister(
    State(orch): State<LocalOrchestrator>,
    Path(runner_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(off) = orch.live_runners_off() {
        return off;
    }
    orch.expire_runners();
    let auth = header(&headers, "authorization").unwrap_or("");
    let mut runners = orch.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
    let Some(runner) = runners.get(&runner_id) else {
        return http_error(StatusCode::NOT_FOUND, "runner not found");
    };
    if !secrets_equal(auth, &runner.heartbeat_secret) {
        return http_error(StatusCode::UNAUTHORIZED, "invalid authorization");
    }
    if let Some(runner) = runners.remove(&runner_id) {
        orch.remove_runner_channels(&runner);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /discovery`: this orchestrator's ready runners, behind its own URLs.
pub(super) async fn discovery(State(orch): State<LocalOrchestrator>) -> Response {
    let serverless = orch.serverless_runners();
    if let Some(off) = orch.live_runners_off().filter(|_| !orch.inner.config.serverless_scope) {
        return off;
    }
    orch.expire_runners();
    let service = orch.inner.service_uri.trim_end_matches('/').to_owned();
    let runners = orch.inner.runners.lock().unwrap_or_else(|e| e.into_inner());
    let mut listed: Vec<(&String, &RegisteredRunner)> =
        runners.iter().filter(|(_, r)| matches!(r.request.status.as_str(), "" | "ready")).collect();
    listed.sort_by_key(|(id, _)| id.as_str());
    let runners: Vec<DiscoveredRunner> = listed
        .into_iter()
        .map(|(id, r)| {
            let q = &r.request;
            let kind = if q.mode == MODE_SINGLE_SHOT { "app" } else { "session" };
            DiscoveredRunner {
                url: format!("{service}/apps/{id}/{kind}"),
                gpu: q.gpu.clone(),
                app: q.app.clone(),
                version: q.version.clone(),
                metadata: q.metadata.clone(),
                mode: q.mode.clone(),
                capacity: q.capacity,
                capacity_used: r.sessions.len() as i64,
                capacity_available: q.capacity - r.sessions.len() as i64,
                price_info: (!orch.inner.config.offchain)
                    .then(|| wei_price(&q.price_info, orch.inner.config.usd_per_eth))
                    .flatten(),
            }
        })
        .chain(serverless)
        .collect();
    let entries = vec![DiscoveryEntry { address: service, runners }];
    json_ok(&entries)
}

/// go's price conversion: USD per hour (or per 720p hour, or per request) to whole wei per
/// second (per 720p pixel-second, per request), rounded down; `None` below one wei.
pub(super) fn wei_price(usd: &RunnerPriceInfo, usd_per_eth: f64) -> Option<RunnerPriceInfo> {
    let per_unit = match usd.unit.as_str() {
        "hour" | "" => 3600.0,
        "720p" => 3600.0 * 1280.0 * 720.0 * 30.0,
        _ => 1.0,
    };
    let wei = (usd.price_value()? / per_unit / usd_per_eth * 1e18).floor();
    (wei >= 1.0).then(|| RunnerPriceInfo {
        price: serde_json::Value::from(wei as i64),
        currency: "wei".into(),
        unit: discovery_unit(&usd.unit).into(),
    })
}

async fn o2r_keepalives(orch: LocalOrchestrator, channel: String, cancel: CancellationToken) {
    loop {
        if let Some(mut publisher) = orch.inner.trickle.local_publisher(&channel) {
            let _ = publisher.write_segment(Bytes::from_static(O2R_KEEPALIVE_MESSAGE.as_bytes())).await;
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(O2R_KEEPALIVE) => {}
        }
    }
}

pub(super) fn json_ok<T: serde::Serialize>(v: &T) -> Response {
    ([("content-type", "application/json")], serde_json::to_vec(v).unwrap_or_default()).into_response()
}

/// go's `time.Duration.String` for the whole seconds and milliseconds the double uses.
fn go_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// go's `validSecret`: `hmac.Equal`, constant time.
pub(super) fn secrets_equal(got: &str, want: &str) -> bool {
    got.len() == want.len() && got.bytes().zip(want.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// go's `deriveSecret`: HMAC-SHA256(seed, label), lower-case base32 without padding.
pub(super) fn derive_secret(seed: &[u8], label: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(seed) else { return String::new() };
    mac.update(label.as_bytes());
    base32_lower(&mac.finalize().into_bytes())
}

/// RFC 4648 base32, lower case, no padding (go's `base32.StdEncoding.WithPadding(NoPadding)`
/// then `strings.ToLower`).
pub(super) fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_is_rfc4648_lower_unpadded() {
        assert_eq!(base32_lower(b""), "");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower(&[0u8; 5]).len(), 8, "5 random bytes: go's 8-letter runner ids");
    }

    #[test]
    fn prices_convert_as_go_converts_them() {
        let usd = |price: f64, unit: &str| RunnerPriceInfo {
            price: price.into(),
            currency: "usd".into(),
            unit: unit.into(),
        };
        // $3.60 an hour at $2000 per ETH: 0.001 USD/s = 5e11 wei/s.
        let p = wei_price(&usd(3.6, "hour"), 2000.0).unwrap();
        assert_eq!(
            (p.price_text().as_str(), p.unit.as_str(), p.currency.as_str()),
            ("500000000000", "seconds", "wei")
        );
        assert_eq!(wei_price(&usd(0.5, "fixed"), 2000.0).unwrap().price_text(), "250000000000000");
        assert_eq!(wei_price(&usd(1.0, "720p"), 2000.0).unwrap().unit, "720p-pixel-seconds");
        assert!(wei_price(&usd(1e-30, "hour"), 2000.0).is_none(), "below one wei");
    }

    #[test]
    fn durations_render_as_go_renders_them() {
        assert_eq!(go_duration(Duration::from_secs(5)), "5s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    }
}
