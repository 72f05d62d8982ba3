//! Live runners: apps (a model server, Scope, any HTTP service) that register with an
//! orchestrator by heartbeat and are found by gateways through `GET /discovery`.
//!
//! As go-livepeer master serves them (`ai/runner/live_runner.go`: `Heartbeat`,
//! `normalizeHeartbeat`, `Unregister`, `Runners`, `discoveryRunnerURL`; `server/ai_http.go`:
//! `LiveRunnerHeartbeat`, `UnregisterLiveRunner`, `DiscoverLiveRunners`): a runner bootstraps
//! with the orchestrator's registration secret in `Authorization` (as is, no scheme), gets a
//! `runner_id`, a heartbeat secret and an orchestrator-to-runner (O2R) trickle channel, then
//! heartbeats with that secret every `heartbeat_interval`; one silent for `heartbeat_ttl` is
//! gone (404). Discovery lists ready runners behind the orchestrator's own URLs, never the
//! runner's, with prices converted from USD to wei.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `POST`: register or heartbeat, `Authorization: <secret>`.
pub const HEARTBEAT_PATH: &str = "/runners/heartbeat";
/// `GET`: `[DiscoveryEntry]` of the runners this orchestrator serves.
pub const DISCOVERY_PATH: &str = "/discovery";
/// go's heartbeat interval.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// go's heartbeat TTL: a runner silent this long is removed.
pub const DEFAULT_HEARTBEAT_TTL: Duration = Duration::from_secs(20);
/// Longest `metadata` go accepts, bytes.
pub const MAX_METADATA_BYTES: usize = 1024;
/// A runner that holds sessions (`/apps/{id}/session`).
pub const MODE_PERSISTENT: &str = "persistent";
/// A runner that serves one request per reservation (`/apps/{id}/app`).
pub const MODE_SINGLE_SHOT: &str = "single-shot";

/// Request header of a session reservation: who will pay (`0x` address), so a 402 challenge
/// carries ticket parameters for that sender.
pub const HEADER_PAYER_ADDRESS: &str = "Livepeer-Payer-Address";
/// The proxy's headers to the runner's app (go's `proxyLiveRunner`): the runner's route...
pub const HEADER_RUNNER_ROUTE: &str = "Livepeer-Runner-Route";
/// ...the session the call belongs to...
pub const HEADER_SESSION_ID: &str = "Livepeer-Session-Id";
/// ...the token the runner's callbacks for that session carry (also a request header of
/// those callbacks)...
pub const HEADER_SESSION_TOKEN: &str = "Livepeer-Session-Token";
/// ...and where those callbacks go (`{svc}/runner/{id}/session/{sid}`).
pub const HEADER_SESSION_CONTROL: &str = "Livepeer-Session-Control";
/// Most channels one create or delete callback may name (go's).
pub const MAX_CHANNELS_PER_REQUEST: usize = 25;
/// A session channel's MIME type when the runner names none (go's).
pub const DEFAULT_CHANNEL_MIME_TYPE: &str = "application/octet-stream";
/// How often a gateway pays for a metered runner session (the Python SDK's; go debits every 5 s).
pub const SESSION_PAYMENT_INTERVAL: Duration = Duration::from_secs(3);

/// The 402 answer to a reservation on a priced runner (go's
/// `liveRunnerPaymentChallengeResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentChallenge {
    /// Base64 protobuf `OrchestratorInfo` to pay against.
    pub payment_params: String,
    /// The orchestrator's service URI.
    #[serde(default)]
    pub orchestrator: String,
    /// The id to pay under; it becomes the session's id.
    pub manifest_id: String,
    /// Where the session's later payments go.
    pub payment_url: String,
}

/// The answer to a reservation (go's `liveRunnerSessionResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionReserved {
    /// The session's id.
    pub session_id: String,
    /// Where the app is called for this session.
    pub app_url: String,
    /// The session's control URL (`{control_url}/stop` ends it).
    pub control_url: String,
}

/// What the orchestrator tells a runner about a session on its O2R channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// A gateway reserved the session.
    Reserved,
    /// The session ended (stopped, expired, unpaid, or its runner forgot).
    Released,
}

/// One O2R session event (`{"event": "reserved" | "released", "session", "timestamp"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEvent {
    /// Reserved or released.
    pub kind: SessionEventKind,
    /// The session.
    pub session_id: String,
    /// When, as the orchestrator wrote it (RFC 3339), if it did.
    pub timestamp: Option<String>,
}

impl SessionEvent {
    /// The event an O2R message carries; `None` for keep-alives and messages it does not know
    /// (the Python SDK ignores those too).
    pub fn from_o2r(message: &serde_json::Value) -> Option<SessionEvent> {
        let kind = match message.get("event")?.as_str()? {
            "reserved" => SessionEventKind::Reserved,
            "released" => SessionEventKind::Released,
            _ => return None,
        };
        let session_id = message.get("session")?.as_str()?.trim();
        if session_id.is_empty() {
            return None;
        }
        let timestamp = message.get("timestamp").and_then(|t| t.as_str()).map(str::to_owned);
        Some(SessionEvent { kind, session_id: session_id.to_owned(), timestamp })
    }
}

/// The app a Scope runner is discovered under (the Python SDK's `start_scope` filter).
pub const SCOPE_APP: &str = "live-video-to-video/scope";
/// How a serverless worker's version starts (go's is `serverless-1.0.0`): its discovery URL is
/// the orchestrator's `/scope`, called directly; any other Scope runner is a persistent app whose
/// session's `…/app/scope` starts the job.
pub const SERVERLESS_VERSION_PREFIX: &str = "serverless";

/// The answer to a Scope start (go's `worker.LiveVideoToVideoResponse` as `StartScope` fills
/// it: control and events channels; a runner app may add media channels).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeStarted {
    /// The job's manifest id.
    #[serde(default)]
    pub manifest_id: String,
    /// Gateway → app control messages.
    #[serde(default)]
    pub control_url: String,
    /// App → gateway events.
    #[serde(default)]
    pub events_url: String,
    /// Media in, when the app has a channel for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_url: Option<String>,
    /// Media out, when the app has a channel for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_url: Option<String>,
}

/// `POST /runners/{id}/unregister`, `Authorization: <heartbeat secret>`.
pub fn unregister_path(runner_id: &str) -> String {
    format!("/runners/{runner_id}/unregister")
}

/// The GPU a runner runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerGpu {
    /// Device id (e.g. a UUID).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Model name, e.g. `NVIDIA H100`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Memory, MiB.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub vram_mb: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A price: what a runner asks (USD per `hour`, per `720p` hour, or `fixed` per request), or,
/// in discovery, what the orchestrator charges (wei per `seconds`, `720p-pixel-seconds` or
/// `fixed`). go keeps the number as written (`json.Number`, which takes a JSON number or a
/// numeric string).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunnerPriceInfo {
    /// The amount, a JSON number or a numeric string.
    #[serde(default)]
    pub price: serde_json::Value,
    /// `usd` when registering; `wei` in discovery.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub currency: String,
    /// What the price is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

impl RunnerPriceInfo {
    /// The amount as written (empty when missing).
    pub fn price_text(&self) -> String {
        match &self.price {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.trim().to_owned(),
            _ => String::new(),
        }
    }

    /// The amount as a number, when it parses as a finite decimal.
    pub fn price_value(&self) -> Option<f64> {
        self.price_text().parse::<f64>().ok().filter(|p| p.is_finite())
    }
}

/// A heartbeat (go's `LiveRunnerHeartbeatRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    /// Empty on the first heartbeat: the orchestrator makes one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub runner_id: String,
    /// A label for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Serve single-shot requests through the orchestrator's proxy host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proxy: bool,
    /// Where the orchestrator reaches the runner (absolute http(s) URL; never shown to gateways).
    pub runner_url: String,
    /// The runner's version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Free-form, at most [`MAX_METADATA_BYTES`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// `ready` (or empty) to be listed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// [`MODE_PERSISTENT`] (the default) or [`MODE_SINGLE_SHOT`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// The GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<RunnerGpu>,
    /// The app it serves, e.g. `live-video-to-video/scope`.
    pub app: String,
    /// Sessions it can hold at once (0 means 1).
    pub capacity: i64,
    /// What it asks.
    pub price_info: RunnerPriceInfo,
    /// Sessions it holds, as it sees them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_ids: Vec<String>,
}

/// A trickle channel the orchestrator made for a runner: its O2R channel, or one a session
/// asked for (go's `LiveRunnerTrickleChannel`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerChannel {
    /// Its role, e.g. `o2r`, or the name the session gave it.
    pub name: String,
    /// The trickle channel's name (a session's: `{session}-{name}`).
    pub channel_name: String,
    /// Its public URL.
    pub url: String,
    /// Its URL as the runner reaches it (session channels only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub internal_url: String,
    /// MIME type of its messages.
    pub mime_type: String,
}

/// A channel a session asks for (`POST {control}/channels`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRequest {
    /// Its name within the session.
    pub name: String,
    /// MIME type of its messages ([`DEFAULT_CHANNEL_MIME_TYPE`] when empty).
    #[serde(default)]
    pub mime_type: String,
}

/// The body of a channel create callback, and (with names only) of a delete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct ChannelsBody<T> {
    /// The channels.
    #[serde(default = "Vec::new", deserialize_with = "crate::go_json::null_as_default")]
    pub channels: Vec<T>,
}

/// The answer to a channel delete callback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelsDeleted {
    /// The names deleted.
    #[serde(default, deserialize_with = "crate::go_json::null_as_default")]
    pub deleted: Vec<String>,
}

/// A public proxy URL for a session (`POST {control}/proxy`, go's `LiveRunnerProxy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionProxy {
    /// Its id (the last segment of `url`).
    pub proxy_id: String,
    /// Where clients call it: `{svc}/run/{proxy_id}/…` reaches the target.
    pub url: String,
}

/// go's `normalizeTrickleChannelName`: the trimmed name with `/` made `-`, and the trickle
/// channel's name `{session}-{name}`; `Err` with go's text for an empty name or one outside
/// `[A-Za-z0-9_-]`.
pub fn session_channel_name(session_id: &str, name: &str) -> Result<(String, String), String> {
    let name = name.trim().replace('/', "-");
    if name.is_empty() {
        return Err("trickle channel name is required".into());
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err("trickle channel name may only contain alphanumerics, underscores, or hyphens".into());
    }
    let channel = format!("{session_id}-{name}");
    Ok((name, channel))
}

/// The answer to a heartbeat (go's `LiveRunnerHeartbeatResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// The runner's id from now on.
    pub runner_id: String,
    /// Where to send later heartbeats.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orchestrator: String,
    /// A go duration, e.g. `5s`.
    pub heartbeat_interval: String,
    /// A go duration, e.g. `20s`.
    pub heartbeat_ttl: String,
    /// Only on the first heartbeat: the secret every later one carries.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub heartbeat_secret: String,
    /// Only on the first heartbeat: the orchestrator-to-runner channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o2r: Option<RunnerChannel>,
    /// Sessions the orchestrator says the runner holds, oldest first.
    #[serde(default, deserialize_with = "crate::go_json::null_as_default")]
    pub session_ids: Vec<String>,
}

/// A runner as discovery lists it (go's `LiveRunnerDiscoveryRunner`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredRunner {
    /// The orchestrator's URL for it: `…/apps/{id}/session` (persistent) or `…/apps/{id}/app`.
    pub url: String,
    /// The GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<RunnerGpu>,
    /// The app.
    pub app: String,
    /// Its version.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Its metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Its mode.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// Sessions it can hold.
    #[serde(default)]
    pub capacity: i64,
    /// Sessions it holds.
    #[serde(default)]
    pub capacity_used: i64,
    /// Sessions it can still take.
    #[serde(default)]
    pub capacity_available: i64,
    /// The orchestrator's price for it (none offchain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_info: Option<RunnerPriceInfo>,
}

/// One orchestrator's runners (an element of the `GET /discovery` array).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiscoveryEntry {
    /// The orchestrator's service URI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Its runners.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::go_json::null_as_default"
    )]
    pub runners: Vec<DiscoveredRunner>,
}

/// Which runners a gateway wants: any of `apps` (exact) and any of `gpus` (exact GPU name);
/// an empty list takes any, as the Python SDK filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunnerFilter {
    /// Apps, e.g. `live-video-to-video/scope`.
    pub apps: Vec<String>,
    /// GPU names, e.g. `NVIDIA H100`.
    pub gpus: Vec<String>,
}

impl RunnerFilter {
    /// Whether `runner` passes.
    pub fn matches(&self, runner: &DiscoveredRunner) -> bool {
        if runner.url.is_empty() || runner.app.is_empty() {
            return false;
        }
        let app_ok = self.apps.is_empty() || self.apps.contains(&runner.app);
        let gpu_name = runner.gpu.as_ref().map(|g| g.name.as_str()).unwrap_or("");
        let gpu_ok = self.gpus.is_empty() || self.gpus.iter().any(|g| g == gpu_name);
        app_ok && gpu_ok
    }
}

/// go's `normalizeHeartbeat`: the checks and defaults a heartbeat gets before it is stored; the
/// error text is go's (answered as a 400). Offchain, prices are not checked.
pub fn normalize_heartbeat(mut req: HeartbeatRequest, offchain: bool) -> Result<HeartbeatRequest, String> {
    let url_ok = url::Url::parse(&req.runner_url).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if !url_ok {
        return Err("invalid runner_url".into());
    }
    if req.app.is_empty() || req.app != req.app.trim() {
        return Err("app must be trimmed".into());
    }
    if req.metadata.len() > MAX_METADATA_BYTES {
        return Err(format!("metadata must be at most {MAX_METADATA_BYTES} bytes"));
    }
    if req.metadata.contains('\u{FFFD}') {
        return Err("metadata must not contain Unicode replacement character U+FFFD".into());
    }
    if req.status != req.status.trim().to_lowercase() {
        return Err("status must be lowercase and trimmed".into());
    }
    match req.mode.as_str() {
        "" => req.mode = MODE_PERSISTENT.into(),
        "single_shot" => req.mode = MODE_SINGLE_SHOT.into(),
        MODE_PERSISTENT | MODE_SINGLE_SHOT => {}
        _ => return Err(format!("mode must be {MODE_PERSISTENT:?} or {MODE_SINGLE_SHOT:?}")),
    }
    if req.capacity < 0 {
        return Err("capacity must be >= 0".into());
    }
    if req.capacity == 0 {
        req.capacity = 1;
    }
    if offchain {
        return Ok(req);
    }
    if req.price_info.price_text().is_empty() {
        return Err("price_info.price is required".into());
    }
    if !req.price_info.price_value().is_some_and(|p| p > 0.0) {
        return Err("price_info.price must be a positive decimal".into());
    }
    let currency = req.price_info.currency.trim().to_lowercase();
    let currency = if currency.is_empty() { "usd".to_owned() } else { currency };
    if currency != "usd" {
        return Err("price_info.currency must be usd".into());
    }
    let unit = req.price_info.unit.trim().to_lowercase();
    let unit = if unit.is_empty() { "hour".to_owned() } else { unit };
    if !matches!(unit.as_str(), "hour" | "720p" | "fixed") {
        return Err("price_info.unit must be hour, 720p, or fixed".into());
    }
    req.price_info.currency = currency;
    req.price_info.unit = unit;
    Ok(req)
}

/// The unit discovery shows for a registered unit (go's `convertedLiveRunnerPriceUnit`).
pub fn discovery_unit(registered: &str) -> &'static str {
    match registered.trim().to_lowercase().as_str() {
        "720p" => "720p-pixel-seconds",
        "fixed" => "fixed",
        _ => "seconds",
    }
}

/// A go duration string (`5s`, `1m30s`, `500ms`, `1h`), as go's `time.Duration.String` writes
/// them; `None` when it does not parse.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat() -> HeartbeatRequest {
        HeartbeatRequest {
            runner_url: "http://10.0.0.2:9000".into(),
            app: "echo".into(),
            price_info: RunnerPriceInfo { price: 2.into(), ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn heartbeats_get_gos_defaults_and_refusals() {
        let ok = normalize_heartbeat(heartbeat(), false).unwrap();
        assert_eq!((ok.mode.as_str(), ok.capacity), (MODE_PERSISTENT, 1));
        assert_eq!((ok.price_info.currency.as_str(), ok.price_info.unit.as_str()), ("usd", "hour"));
        let bad = |f: fn(&mut HeartbeatRequest)| {
            let mut h = heartbeat();
            f(&mut h);
            normalize_heartbeat(h, false).unwrap_err()
        };
        assert_eq!(bad(|h| h.runner_url = "ftp://x".into()), "invalid runner_url");
        assert_eq!(bad(|h| h.runner_url = "/relative".into()), "invalid runner_url");
        assert_eq!(bad(|h| h.app = " echo".into()), "app must be trimmed");
        assert_eq!(bad(|h| h.status = "Ready".into()), "status must be lowercase and trimmed");
        assert!(bad(|h| h.mode = "batch".into()).starts_with("mode must be"));
        assert_eq!(bad(|h| h.capacity = -1), "capacity must be >= 0");
        assert_eq!(bad(|h| h.metadata = "x".repeat(1025)), "metadata must be at most 1024 bytes");
        assert_eq!(bad(|h| h.price_info.price = 0.into()), "price_info.price must be a positive decimal");
        assert_eq!(bad(|h| h.price_info.currency = "eur".into()), "price_info.currency must be usd");
        assert_eq!(
            bad(|h| h.price_info.unit = "minute".into()),
            "price_info.unit must be hour, 720p, or fixed"
        );
        let mut free = heartbeat();
        free.price_info = RunnerPriceInfo::default();
        free.mode = "single_shot".into();
        let free = normalize_heartbeat(free, true).unwrap();
        assert_eq!(free.mode, MODE_SINGLE_SHOT, "offchain: no price needed, the alias normalized");
    }

    #[test]
    fn session_channel_names_are_gos() {
        assert_eq!(
            session_channel_name("s1", " out/video "),
            Ok(("out-video".into(), "s1-out-video".into()))
        );
        assert_eq!(session_channel_name("s1", "  "), Err("trickle channel name is required".into()));
        assert!(session_channel_name("s1", "a.b").unwrap_err().contains("alphanumerics"));
    }

    #[test]
    fn o2r_messages_are_session_events_or_nothing() {
        let reserved =
            serde_json::json!({"event": "reserved", "session": " s1 ", "timestamp": "2026-12-06T00:00:00Z"});
        let event = SessionEvent::from_o2r(&reserved).unwrap();
        assert_eq!((event.kind, event.session_id.as_str()), (SessionEventKind::Reserved, "s1"));
        assert_eq!(event.timestamp.as_deref(), Some("2026-12-06T00:00:00Z"));
        assert_eq!(SessionEvent::from_o2r(&serde_json::json!({"keep": "alive"})), None);
        assert_eq!(SessionEvent::from_o2r(&serde_json::json!({"event": "moved", "session": "s"})), None);
        assert_eq!(SessionEvent::from_o2r(&serde_json::json!({"event": "released", "session": ""})), None);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn filters_take_any_of_each_list() {
        let runner = DiscoveredRunner {
            url: "https://o/apps/r/session".into(),
            app: "echo".into(),
            gpu: Some(RunnerGpu { name: "NVIDIA H100".into(), ..Default::default() }),
            ..Default::default()
        };
        assert!(RunnerFilter::default().matches(&runner));
        assert!(RunnerFilter { apps: vec!["x".into(), "echo".into()], gpus: vec![] }.matches(&runner));
        assert!(!RunnerFilter { apps: vec!["x".into()], gpus: vec![] }.matches(&runner));
        assert!(!RunnerFilter { apps: vec![], gpus: vec!["A100".into()] }.matches(&runner));
        assert!(!RunnerFilter::default().matches(&DiscoveredRunner { url: String::new(), ..runner }));
    }

    #[test]
    fn discovery_json_decodes_with_gos_nulls() {
        let raw = r#"[{"address":"https://o:8935","runners":[{"url":"https://o:8935/apps/runner_ab/session","app":"echo","mode":"persistent","capacity":2,"capacity_used":0,"capacity_available":2,"price_info":{"price":123,"currency":"wei","unit":"seconds"}}]},{"address":"x","runners":null}]"#;
        let entries: Vec<DiscoveryEntry> = serde_json::from_str(raw).unwrap();
        assert_eq!(entries[0].runners[0].price_info.as_ref().unwrap().price_text(), "123");
        assert!(entries[1].runners.is_empty());
    }
}
