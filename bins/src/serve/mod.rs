//! `livepeer-gateway serve`: a gateway node other programs call over HTTP, as they call
//! go-livepeer's gateway. The SDK does the work (selection, payments, failover); this is its
//! front door.
//!
//! - BYOC streams with go's routes and shapes (`streams`); their media as trickle channels on
//!   the node, relayed to the orchestrator (`media`), RTMP in at their `rtmp_url` with
//!   `--rtmp-listen` (`rtmp`) or pulled from MediaMTX on go's callback (`rtmp_pull`), and out
//!   to their `rtmp_output` (`rtmp_push`).
//! - Single-shot BYOC requests, `POST /process/request/{path}` (`requests`).
//! - LV2V streams with go's `/live/video-to-video/…` routes (`live`), RTMP ingest with
//!   `--rtmp-listen` (`rtmp`) or pulled from MediaMTX (`rtmp_pull`, with `--mediamtx` or a
//!   callback's `rtmp_url`), and RTMP egress to the stream's `rtmpOutput` (`rtmp_push`).
//! - `GET /healthz` (the process answers), `GET /readyz` (503 while draining), `GET /metrics`
//!   (Prometheus text).
//! - Bearer tokens and go's auth webhook (`auth`).
//! - Options from flags, environment variables and a TOML file (`config`).
//! - Logs through `tracing` (`RUST_LOG=info` for the node's own events;
//!   `LIVEPEER_LOG_FORMAT=json` for one JSON object per line).
//! - SIGTERM (or Ctrl-C) drains: `/readyz` and new starts answer 503, running streams get
//!   `--drain-timeout` to be stopped by their clients, then the node stops the rest (each with
//!   its last payment) and exits.
//!
//! Not yet: WHIP ingest and WHEP egress.

mod auth;
pub mod config;
mod go_http;
mod live;
mod live_registry;
mod media;
mod metrics;
mod node;
mod requests;
mod rtmp;
mod rtmp_client;
mod rtmp_ingest;
mod rtmp_pull;
mod rtmp_push;
mod streams;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use axum::Router;
use clap::{ArgAction, Args};
use gateway_core::gateway_api::{MAX_STREAM_BODY_BYTES, STREAM_START_PATH};

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};
use auth::{Auth, Webhook};
use go_http::text;
use node::Node;

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Read options from this TOML file (keys are these long options; flags and environment
    /// variables win over it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8937")]
    pub listen: SocketAddr,
    /// Take RTMP publishers here (`rtmp://ADDR/[app/]{stream}?{query}` starts an LV2V stream).
    #[arg(long, value_name = "ADDR")]
    pub rtmp_listen: Option<SocketAddr>,
    /// The node sits behind MediaMTX, as go's gateway does: a start callback pulls the stream
    /// from `rtmp://{caller}:{RTMP_PORT}/{path}` (MediaMTX's RTMP port, 1935 when not given;
    /// a callback's `rtmp_url` is pulled either way).
    #[arg(long, value_name = "RTMP_PORT", num_args = 0..=1, default_missing_value = "1935")]
    pub mediamtx: Option<u16>,
    /// The URL clients reach this node at, the base of the URLs it answers (default:
    /// http://LISTEN).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// A bearer token clients must send (`Authorization: Bearer …`); repeatable, or
    /// comma-separated in LIVEPEER_GATEWAY_TOKENS. Never printed.
    #[arg(long = "auth-token", env = "LIVEPEER_GATEWAY_TOKENS", hide_env_values = true, value_delimiter = ',', action = ArgAction::Append)]
    pub auth_tokens: Vec<String>,
    /// go's -liveAIAuthWebhookUrl: asked before each stream starts.
    #[arg(long, value_name = "URL")]
    pub auth_webhook: Option<String>,
    /// The webhook's API key (x-api-key and Authorization). Never printed.
    #[arg(long, env = "LIVEPEER_AUTH_WEBHOOK_KEY", hide_env_values = true, default_value = "")]
    pub auth_webhook_key: String,
    /// Seconds running streams get to be stopped by their clients at shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Threads serving HTTP and relaying media (default: one per core). One thread relays
    /// several hundred streams; fewer threads wake each other less (scenario 7 in
    /// BENCHMARKS.md). Jobs' actors and encoders have threads of their own either way.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Print `{"listen": URL}` as one JSON line on stdout once serving.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the node until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if !(args.drain_timeout.is_finite() && args.drain_timeout >= 0.0) {
        return Err(cli::UsageError("--drain-timeout must be a number of seconds".into()).into());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| cli::UsageError(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener.local_addr()?;
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    // The process's TLS provider, which reqwest needs before it builds a client.
    let _ = gateway_actors::tls::provider();
    let webhook = args.auth_webhook.as_ref().map(|url| Webhook {
        url: url.clone(),
        api_key: args.auth_webhook_key.clone(),
        http: reqwest::Client::new(),
    });
    let auth = Auth { tokens: args.auth_tokens.iter().filter(|t| !t.is_empty()).cloned().collect(), webhook };
    let base = args.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let mut node = Node::new(net.gateway.clone(), base, auth);
    node.mediamtx_rtmp_port = args.mediamtx;
    let node = Arc::new(node);
    if !cli::json_logs() {
        eprintln!("serving on http://{local}");
    }
    tracing::info!(listen = %local, base = %node.base_url, tokens = node.auth.tokens.len(), "serving");
    let rtmp = match args.rtmp_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| cli::UsageError(format!("cannot listen for RTMP on {addr}: {e}")))?;
            let rtmp_local = listener.local_addr()?;
            let _ = node.rtmp_base.set(rtmp::public_base(&node.base_url, rtmp_local.port()));
            tracing::info!(rtmp = %rtmp_local, "taking RTMP publishers");
            Some((rtmp_local, tokio::spawn(rtmp::serve(node.clone(), listener))))
        }
        None => None,
    };
    if args.json {
        let mut line = serde_json::json!({ "listen": format!("http://{local}") });
        if let Some((addr, _)) = &rtmp {
            line["rtmp"] = serde_json::Value::String(format!("rtmp://{addr}"));
        }
        println!("{line}");
    }
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = router(node.clone());
    let server = tokio::spawn(async move {
        let stopped = async move {
            let _ = server_stopped.await;
        };
        // The callers' addresses: a start callback's is where MediaMTX is.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        // Small writes (an answer's head, a relayed chunk) go out at once, as on go's gateway:
        // Go sets TCP_NODELAY on every TCP connection (`net`, `newTCPConn`).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).with_graceful_shutdown(stopped).await
    });
    let outcome = shutdown_signal().await;
    tracing::info!(streams = node.stream_ids().len(), "draining");
    if let Some((_, task)) = &rtmp {
        task.abort();
    }
    drain(&node, Duration::from_secs_f64(args.drain_timeout)).await;
    let _ = stop_server.send(());
    // Open answers (a data stream) end with their streams; do not wait on a stuck client.
    if tokio::time::timeout(Duration::from_secs(5), server).await.is_err() {
        tracing::warn!("closing connections still open");
    }
    net.shutdown().await;
    outcome
}

/// The node's routes.
fn router(node: Arc<Node>) -> Router {
    let process = Router::new()
        .route(STREAM_START_PATH, post(streams::start))
        .route("/process/stream/{id}/update", post(streams::update))
        .route("/process/stream/{id}/status", get(streams::status))
        .route("/process/stream/{id}/stop", post(streams::stop))
        .route("/process/stream/{id}/data", get(streams::data))
        .route("/process/stream/{id}/rtmp", post(streams::rtmp_callback))
        // go reads 10 MB and answers 413 beyond: read one byte more to know.
        .layer(DefaultBodyLimit::max(MAX_STREAM_BODY_BYTES + 1))
        // Requests go through whatever their size, as go reads them.
        .route("/process/request/", post(requests::request).layer(DefaultBodyLimit::disable()))
        .route("/process/request/{*path}", post(requests::request).layer(DefaultBodyLimit::disable()))
        .merge(live_routes())
        .layer(axum::middleware::from_fn_with_state(node.clone(), authorize));
    // Media channels: the stream's key in the path is their credential; segments of any size.
    let media = Router::new()
        .route("/process/stream/{id}/trickle/{key}/{dir}", any(media::channel))
        .route("/process/stream/{id}/trickle/{key}/{dir}/{*rest}", any(media::channel))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(process)
        .merge(media)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .layer(axum::middleware::from_fn_with_state(node.clone(), timed))
        .with_state(node)
}

/// go's LV2V routes (`server/ai_mediaserver.go`) and the node's media routes for them.
fn live_routes() -> Router<Arc<Node>> {
    // One parameter name per position (the router's rule): `{stream}` is the prefix in the
    // five-segment start route, and the stream id in the status route.
    Router::new()
        .route("/live/video-to-video/{stream}/start", post(live::start_route))
        .route("/live/video-to-video/{stream}/{inner}/start", post(live::start_route_prefixed))
        .route("/live/video-to-video/{stream}/update", post(live::update))
        .route("/live/video-to-video/{stream}/status", any(live::status))
        .route("/live/video-to-video/{stream}/output", get(live::output))
        .route("/live/video-to-video/{stream}/input", post(live::input).layer(DefaultBodyLimit::disable()))
        .layer(DefaultBodyLimit::max(MAX_STREAM_BODY_BYTES + 1))
}

/// 401 without an accepted bearer token (when tokens are configured).
async fn authorize(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let given = request.headers().get("authorization").and_then(|v| v.to_str().ok());
    if !node.auth.allows(given) {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    next.run(request).await
}

/// Times every answer by route and status.
async fn timed(State(node): State<Arc<Node>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    if let Some(route) = route {
        let label = metrics::RouteLabel { route, status: response.status().as_u16() };
        node.metrics.request_seconds.get_or_create(&label).observe(started.elapsed().as_secs_f64());
    }
    response
}

async fn ready(State(node): State<Arc<Node>>) -> Response {
    if node.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining");
    }
    "ready\n".into_response()
}

async fn metrics_text(State(node): State<Arc<Node>>) -> Response {
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], node.metrics.render()).into_response()
}

/// Waits for SIGTERM (`Ok`) or Ctrl-C (`Interrupted`).
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => Ok(()),
            _ = cli::interrupted() => Err(cli::Interrupted.into()),
        }
    }
    #[cfg(not(unix))]
    {
        cli::interrupted().await;
        Err(cli::Interrupted.into())
    }
}

/// No new streams; running ones get `within` to be stopped by their clients, then the node
/// stops them.
async fn drain(node: &Arc<Node>, within: Duration) {
    node.drain();
    let deadline = tokio::time::Instant::now() + within;
    let running = || !node.stream_ids().is_empty() || !node.live.names().is_empty();
    while running() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in node.stream_ids() {
        let Some(stream) = node.remove(&id) else { continue };
        let job = stream.job.lock().await.take();
        if let Some(job) = job {
            if !cli::json_logs() {
                eprintln!("stopping stream {id}");
            }
            tracing::info!(stream = %id, "stopping a stream left running at shutdown");
            cli::cleanup("stopping a stream", job.stop()).await;
        }
    }
    for name in node.live.names() {
        if let Some(entry) = node.live.get(&name) {
            if !cli::json_logs() {
                eprintln!("stopping live stream {name}");
            }
            node.stop_live(&entry, "the node shuts down").await;
        }
    }
}
