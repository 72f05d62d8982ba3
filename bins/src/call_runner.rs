//! `livepeer-gateway call-runner`: one call to a live runner's app, found by discovery (app and
//! GPU filters). A single-shot runner is called through `/apps/{id}/app/{path}`; a persistent
//! one gets a session for the call, stopped after it. Payment follows the orchestrator's 402
//! challenge through the signer, and recurs while a metered answer streams.
//!
//! The answer streams to stdout (or `--output`) as it arrives; `--events` prints each
//! server-sent event's data on its own line. `--json` prints one object instead, when the
//! answer has ended: status, content type, session, the body (or the events) and payments.
//! A busy (503) or unreachable runner is skipped for the next match. Exit 1 when the app
//! answers an error status or no runner could be called; 130 on Ctrl-C (payments stop and
//! the session is released).

use std::path::PathBuf;

use clap::{ArgAction, Args};
use gateway_actors::live_runners::answer::MAX_APP_ANSWER_BYTES;
use gateway_actors::live_runners::{RunnerAnswer, RunnerCall, RunnerCandidate, RunnerSession};
use gateway_actors::payments::{PaymentStats, PaymentStop};
use gateway_actors::{Gateway, GatewayError};
use gateway_core::rejection::JobError;
use gateway_core::runners::{RunnerFilter, MODE_PERSISTENT};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `call-runner`.
#[derive(Debug, Args)]
pub struct CallRunnerArgs {
    /// The app to call (exact; repeat or comma-separate to accept any of them).
    #[arg(long, required = true, action = ArgAction::Append, value_delimiter = ',')]
    pub app: Vec<String>,
    /// Only runners on these GPU names (exact; repeatable).
    #[arg(long, action = ArgAction::Append)]
    pub gpu: Vec<String>,
    /// Path below the app's URL (`v1/generate`; empty for its root).
    #[arg(long, default_value = "")]
    pub path: String,
    /// HTTP method (default: POST with a body, else GET).
    #[arg(long, short = 'X')]
    pub method: Option<String>,
    #[command(flatten)]
    pub body: cli::BodyArgs,
    /// More request headers, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    pub headers: Vec<String>,
    /// Print the data of each server-sent event on its own line.
    #[arg(long)]
    pub events: bool,
    /// Print one JSON object when the answer has ended.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
    /// Write the answer to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: CallRunnerArgs) -> anyhow::Result<()> {
    let call = build_call(&args).await?;
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = cli::interruptible(call_first_free(&net.gateway, &args, call)).await;
    net.shutdown().await;
    result
}

/// The call the arguments describe; a bad method or header is a usage error.
async fn build_call(args: &CallRunnerArgs) -> anyhow::Result<RunnerCall> {
    let (body, content_type) = args.body.read().await?;
    let method = match &args.method {
        Some(m) => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| cli::UsageError(format!("--method {m:?} is not an HTTP method")))?,
        None if body.is_empty() => reqwest::Method::GET,
        None => reqwest::Method::POST,
    };
    let mut call = RunnerCall::new(method, args.path.clone());
    if !body.is_empty() {
        call = call.with_body(body, &content_type);
    }
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(cli::UsageError(format!("--header {header:?} is not `Name: value`")).into());
        };
        let (name, value) = (name.trim(), value.trim());
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(value).is_err()
        {
            return Err(cli::UsageError(format!("--header {header:?} is not a valid header")).into());
        }
        call = call.with_header(name, value);
    }
    Ok(call)
}

/// Calls the first matching runner that takes the call: a busy (503) or unreachable one is
/// skipped, anything else is the answer.
async fn call_first_free(gateway: &Gateway, args: &CallRunnerArgs, call: RunnerCall) -> anyhow::Result<()> {
    let filter = RunnerFilter { apps: args.app.clone(), gpus: args.gpu.clone() };
    let found = gateway.discover_runners(&filter).await?;
    for failure in &found.failures {
        eprintln!("{failure}");
    }
    if found.runners.is_empty() {
        anyhow::bail!("no runner serves {}", args.app.join(" or "));
    }
    let mut last_refusal = String::new();
    for candidate in &found.runners {
        let (answer, session) = match open(gateway, candidate, call.clone()).await {
            Ok(opened) => opened,
            Err(e) if skippable(&e) => {
                eprintln!("{}: {e}; trying the next runner", candidate.runner.url);
                last_refusal = e.to_string();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if answer.status == 503 {
            let refusal = answer.collect().await.map(|a| String::from_utf8_lossy(&a.body).trim().to_owned());
            last_refusal = refusal.unwrap_or_else(|e| e.to_string());
            eprintln!("{}: busy ({last_refusal}); trying the next runner", candidate.runner.url);
            release(session).await;
            continue;
        }
        let outcome = deliver(args, candidate, answer).await;
        release(session).await;
        return outcome;
    }
    anyhow::bail!("no runner took the call (last: {last_refusal})")
}

/// Opens the call on `candidate`: directly on a single-shot runner, in a new session on a
/// persistent one (returned so it can be stopped).
async fn open(
    gateway: &Gateway,
    candidate: &RunnerCandidate,
    call: RunnerCall,
) -> Result<(RunnerAnswer, Option<RunnerSession>), GatewayError> {
    if candidate.runner.mode != MODE_PERSISTENT {
        return Ok((gateway.call_runner(candidate, call).await?, None));
    }
    let session = gateway.reserve_runner_session(candidate).await?;
    match session.call_app(call).await {
        Ok(answer) => Ok((answer, Some(session))),
        Err(e) => {
            release(Some(session)).await;
            Err(e.into())
        }
    }
}

/// Whether another runner may do better: a transport failure before any answer, or a runner
/// already taken (503 on a session reservation).
fn skippable(e: &GatewayError) -> bool {
    matches!(e, GatewayError::Job(JobError::Http { status: 0 | 503, .. }))
}

async fn release(session: Option<RunnerSession>) {
    if let Some(session) = session {
        cli::cleanup("stopping the runner session", session.stop()).await;
    }
}

/// Prints the answer as the options ask, and says how it went.
async fn deliver(
    args: &CallRunnerArgs,
    candidate: &RunnerCandidate,
    mut answer: RunnerAnswer,
) -> anyhow::Result<()> {
    let status = answer.status;
    if args.json {
        let events = args.events || answer.is_event_stream();
        let summary = json_summary(candidate, &mut answer, events).await?;
        println!("{summary}");
    } else {
        eprintln!(
            "{} answered HTTP {status}{}{}",
            candidate.runner.url,
            answer.content_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
            answer.session_id.as_deref().map(|s| format!(", session {s}")).unwrap_or_default(),
        );
        let written = match &args.output {
            Some(path) => {
                let mut file = tokio::fs::File::create(path)
                    .await
                    .map_err(|e| cli::UsageError(format!("cannot create {}: {e}", path.display())))?;
                let n = copy(&mut answer, &mut file, args.events).await?;
                file.sync_all().await?;
                n
            }
            None => {
                let mut stdout = tokio::io::stdout();
                let n = copy(&mut answer, &mut stdout, args.events).await?;
                if std::io::IsTerminal::is_terminal(&std::io::stdout()) && !args.events {
                    eprintln!();
                }
                n
            }
        };
        eprintln!("{written} byte(s) received; {}", payments_line(&answer.payment_stats()));
    }
    if status >= 400 {
        anyhow::bail!("the runner's app answered HTTP {status}");
    }
    Ok(())
}

/// Copies the answer to `out` as it arrives (event data line by line with `events`); bytes
/// written.
async fn copy(
    answer: &mut RunnerAnswer,
    out: &mut (impl AsyncWrite + Unpin),
    events: bool,
) -> anyhow::Result<u64> {
    let mut written = 0u64;
    if events {
        while let Some(event) = answer.next_event().await? {
            out.write_all(event.data.as_bytes()).await?;
            out.write_all(b"\n").await?;
            out.flush().await?;
            written += event.data.len() as u64 + 1;
        }
    } else {
        while let Some(chunk) = answer.chunk().await? {
            out.write_all(&chunk).await?;
            out.flush().await?;
            written += chunk.len() as u64;
        }
    }
    Ok(written)
}

async fn json_summary(
    candidate: &RunnerCandidate,
    answer: &mut RunnerAnswer,
    events: bool,
) -> anyhow::Result<serde_json::Value> {
    let mut summary = serde_json::json!({
        "orchestrator": candidate.orchestrator,
        "runner": candidate.runner.url,
        "app": candidate.runner.app,
        "status": answer.status,
        "content_type": answer.content_type,
        "session_id": answer.session_id,
    });
    if events {
        let mut list = Vec::new();
        while let Some(event) = answer.next_event().await? {
            let data = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::String(event.data));
            list.push(serde_json::json!({ "event": event.event, "data": data, "id": event.id }));
        }
        summary["events"] = serde_json::Value::Array(list);
    } else {
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await? {
            if body.len() + chunk.len() > MAX_APP_ANSWER_BYTES {
                anyhow::bail!(
                    "the answer exceeds {MAX_APP_ANSWER_BYTES} bytes: write it with --output instead"
                );
            }
            body.extend_from_slice(&chunk);
        }
        summary["body"] = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(json) => json,
            Err(_) => serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()),
        };
    }
    let stats = answer.payment_stats();
    summary["payments"] = serde_json::json!({
        "recurring_sent": stats.payments_sent,
        "failures": stats.failures,
        "stopped": stats.stopped.as_ref().map(|s| s.to_string()),
    });
    Ok(summary)
}

fn payments_line(stats: &PaymentStats) -> String {
    match &stats.stopped {
        Some(stop @ (PaymentStop::FixedPrice | PaymentStop::FreeOrchestrator | PaymentStop::NotPaying)) => {
            format!("payments: {stop}")
        }
        _ => format!("{} recurring payment(s)", stats.payments_sent),
    }
}
