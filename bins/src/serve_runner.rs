//! `livepeer-gateway serve-runner`: a Rust live runner. It serves the sample app
//! (`gateway_testkit::runner_app`: echo, streamed text events at `…/events`, a Scope app at
//! `…/scope`), registers it with an orchestrator, heartbeats until Ctrl-C, and unregisters.
//! Each session the orchestrator reserves or releases is a line on stderr; `--json` prints the
//! registration as one JSON line on stdout once listed.
//!
//! The registration secret comes from `--secret` or `LIVEPEER_RUNNER_SECRET` and is never
//! printed.

use std::net::SocketAddr;

use clap::Args;
use gateway_actors::http::HttpClients;
use gateway_actors::live_runners::RunnerRegistration;
use gateway_actors::tls::OrchestratorTrust;
use gateway_core::runners::{HeartbeatRequest, RunnerPriceInfo, SessionEventKind, MODE_PERSISTENT};
use gateway_testkit::runner_app::RunnerApp;

use crate::cli;

/// Options of `serve-runner`.
#[derive(Debug, Args)]
pub struct ServeRunnerArgs {
    /// The orchestrator to register with (its URL).
    #[arg(long, value_name = "URL")]
    pub orchestrator: String,
    /// The orchestrator's registration secret (go's -orchSecret).
    #[arg(long, env = "LIVEPEER_RUNNER_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The app name gateways discover it by.
    #[arg(long, default_value = "echo")]
    pub app: String,
    /// `persistent` (sessions) or `single-shot` (one call at a time).
    #[arg(long, default_value = MODE_PERSISTENT)]
    pub mode: String,
    /// Sessions (or calls) it takes at once.
    #[arg(long, default_value_t = 1)]
    pub capacity: i64,
    /// Price in USD per --unit (on-chain orchestrators require one).
    #[arg(long, value_name = "USD")]
    pub price: Option<f64>,
    /// What --price is for: hour, 720p (an hour of 720p30) or fixed (per session or call).
    #[arg(long, default_value = "hour")]
    pub unit: String,
    /// Where the app listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The URL the orchestrator reaches the app at (default: http://LISTEN/runner).
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Accept any orchestrator certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Print the registration as one JSON line once listed.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command.
pub async fn run(args: ServeRunnerArgs) -> anyhow::Result<()> {
    if args.capacity < 1 {
        return Err(cli::UsageError("--capacity must be at least 1".into()).into());
    }
    if args.price.is_some_and(|p| !(p.is_finite() && p > 0.0)) {
        return Err(cli::UsageError("--price must be a positive number of USD".into()).into());
    }
    let app = RunnerApp::start_on(args.listen)
        .await
        .map_err(|e| cli::UsageError(format!("cannot listen on {}: {e}", args.listen)))?;
    let heartbeat = HeartbeatRequest {
        runner_url: args.public_url.clone().unwrap_or_else(|| app.url.clone()),
        app: args.app.clone(),
        mode: args.mode.clone(),
        capacity: args.capacity,
        price_info: match args.price {
            Some(price) => {
                RunnerPriceInfo { price: price.into(), currency: "usd".into(), unit: args.unit.clone() }
            }
            None => RunnerPriceInfo::default(),
        },
        ..Default::default()
    };
    let trust = if args.insecure { OrchestratorTrust::Insecure } else { OrchestratorTrust::default() };
    let clients = HttpClients::new(trust)?;
    let registered =
        RunnerRegistration::register(&clients, &args.orchestrator, &args.secret, heartbeat).await;
    let registration = match registered {
        Ok(r) => r,
        Err(e) => {
            app.shutdown().await;
            return Err(anyhow::anyhow!("registering with {}: {e}", args.orchestrator));
        }
    };
    eprintln!("runner {} serving {} ({}) at {}", registration.runner_id(), args.app, args.mode, app.url);
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "runner_id": registration.runner_id(), "url": app.url, "app": args.app })
        );
    }
    let mut heard = registration.session_events();
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = cli::interrupted() => break Err(cli::Interrupted.into()),
            event = heard.recv() => match event {
                Ok(e) => {
                    let what = if e.kind == SessionEventKind::Reserved { "reserved" } else { "released" };
                    eprintln!("session {} {what}", e.session_id);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("({n} session events missed)"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break Ok(()),
            },
        }
    };
    cli::cleanup("unregistering the runner", registration.unregister()).await;
    app.shutdown().await;
    outcome
}
