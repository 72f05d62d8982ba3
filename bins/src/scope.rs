//! `livepeer-gateway scope`: starts a Scope job through a live runner (an orchestrator's
//! serverless worker, or a persistent `live-video-to-video/scope` runner app), paying when
//! asked, then prints its events as JSON lines until `--for` elapses or Ctrl-C. With
//! `--control-stdin` each JSON object read from stdin goes to the job as a parameter update.
//! Ending stops the payments and releases a runner app's session. The started job goes to
//! stderr (`--json`: as the first stdout line). Exit 1 when no runner starts the job or the
//! job's events end (the orchestrator stopped it); 130 on Ctrl-C.

use std::time::Duration;

use clap::Args;
use gateway_core::jobs::LiveVideoToVideoRequest;
use tokio::io::AsyncBufReadExt;

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `scope`.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// The job's parameters as a JSON object.
    #[arg(long, value_name = "JSON", value_parser = cli::parse_json_object)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// One parameter, `key=value` (value parsed as JSON when it is JSON, else a string);
    /// repeatable, applied over --params.
    #[arg(long = "param", value_name = "K=V", value_parser = cli::parse_param)]
    pub param: Vec<(String, serde_json::Value)>,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long = "for", value_name = "SECS")]
    pub run_for: Option<f64>,
    /// Send each JSON object read from stdin (one per line) as a parameter update.
    #[arg(long)]
    pub control_stdin: bool,
    /// Print the started job as one JSON line before the events.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: ScopeArgs) -> anyhow::Result<()> {
    let run_for = match args.run_for {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(cli::UsageError("--for must be a positive number of seconds".into()).into())
        }
        other => other.map(Duration::from_secs_f64),
    };
    let mut params = args.params.clone().unwrap_or_default();
    params.extend(args.param.iter().cloned());
    let request = LiveVideoToVideoRequest {
        params: (!params.is_empty()).then_some(serde_json::Value::Object(params)),
        ..Default::default()
    };
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = match cli::interruptible(net.gateway.start_scope(&request)).await {
        Ok(job) => follow(job, &args, run_for).await,
        Err(e) => Err(e),
    };
    net.shutdown().await;
    result
}

/// Prints the job and its events until the end, then stops it.
async fn follow(
    job: gateway_actors::live_runners::ScopeJob,
    args: &ScopeArgs,
    run_for: Option<Duration>,
) -> anyhow::Result<()> {
    let started = &job.started;
    eprintln!(
        "scope job {} on {}: control {}, events {}",
        started.manifest_id, job.runner.runner.url, started.control_url, started.events_url
    );
    if args.json {
        println!("{}", serde_json::json!({ "job": started, "runner": job.runner.runner.url }));
    }
    // Read on a task of its own: a read cut off by `select!` would lose its segment.
    let mut events = job.events();
    let (tx, mut received) = tokio::sync::mpsc::channel(64);
    let reader = tokio::spawn(async move {
        loop {
            let next = events.next().await;
            let last = !matches!(next, Ok(Some(_)));
            if tx.send(next).await.is_err() || last {
                return;
            }
        }
    });
    let control = if args.control_stdin { Some(job.control().await) } else { None };
    let mut stdin = control.as_ref().map(|_| tokio::io::BufReader::new(tokio::io::stdin()).lines());
    let deadline = run_for.map(|d| tokio::time::Instant::now() + d);
    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            _ = cli::interrupted() => break Err(cli::Interrupted.into()),
            _ = until(deadline) => break Ok(()),
            event = received.recv() => match event {
                Some(Ok(Some(event))) => println!("{event}"),
                Some(Ok(None)) | None => break Err(anyhow::anyhow!("the job's events ended: the orchestrator stopped it")),
                Some(Err(e)) => break Err(anyhow::anyhow!("reading the job's events: {e}")),
            },
            line = next_line(&mut stdin) => match line {
                Some(line) if line.trim().is_empty() => {}
                Some(line) => match (serde_json::from_str::<serde_json::Value>(&line), &control) {
                    (Ok(message @ serde_json::Value::Object(_)), Some(control)) => {
                        if let Err(e) = control.send(&message).await {
                            break Err(anyhow::anyhow!("sending the update: {e}"));
                        }
                    }
                    _ => eprintln!("ignored (not a JSON object): {line}"),
                },
                None => stdin = None,
            },
        }
    };
    reader.abort();
    if let Some(control) = control {
        control.close().await;
    }
    let stats = job.payment_stats();
    cli::cleanup("stopping the scope job", job.stop()).await;
    eprintln!("{} recurring payment(s)", stats.payments_sent);
    outcome
}

async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The next stdin line; `None` at its end (never resolves once stdin is gone).
async fn next_line(
    stdin: &mut Option<tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>>,
) -> Option<String> {
    match stdin {
        Some(lines) => lines.next_line().await.ok().flatten(),
        None => std::future::pending().await,
    }
}
