//! `livepeer-gateway byoc-request`: one single-shot BYOC request (`/process/request/{path}`),
//! paid up front, its answer streamed to stdout or a file as it arrives (server-sent events
//! line by line). The status line goes to stderr; the exit code is 1 when the answer is an error
//! status or no orchestrator could take the request.

use std::path::PathBuf;

use clap::Args;
use gateway_actors::ByocRequest;
use tokio::io::AsyncWriteExt;

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `byoc-request`.
#[derive(Debug, Args)]
pub struct ByocRequestArgs {
    /// Registered BYOC capability name.
    #[arg(long, default_value = "text-reversal")]
    pub capability: String,
    /// Path below /process/request/ that the worker serves (the local worker streams events on
    /// `stream`).
    #[arg(long, default_value = "")]
    pub path: String,
    #[command(flatten)]
    pub body: cli::BodyArgs,
    /// Seconds the worker may take (sent as the job's timeout_seconds; the orchestrator gets 5 s
    /// more to answer).
    #[arg(long, value_name = "SECS", default_value_t = 70, value_parser = clap::value_parser!(u32).range(1..))]
    pub timeout: u32,
    /// Highest acceptable price, wei per second.
    #[arg(long, value_name = "WEI")]
    pub max_price: Option<f64>,
    /// Write the answer to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: ByocRequestArgs) -> anyhow::Result<()> {
    if args.max_price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(cli::UsageError("--max-price must be a non-negative number".into()).into());
    }
    let (body, content_type) = args.body.read().await?;
    let mut request = ByocRequest::new(args.capability.clone(), args.path.clone(), body);
    request.content_type = Some(content_type);
    request.timeout_seconds = args.timeout;
    request.max_price_wei_per_unit = args.max_price;
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = cli::interruptible(send(&net, request, args.output.as_deref())).await;
    net.shutdown().await;
    result
}

async fn send(net: &Network, request: ByocRequest, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    let response = net.gateway.byoc_request_stream(request).await?;
    let status = response.status;
    eprintln!(
        "{} answered HTTP {status}{}{}",
        response.orchestrator,
        response.content_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
        response.balance.as_deref().map(|b| format!(", balance {b} wei")).unwrap_or_default(),
    );
    let written = match output {
        Some(path) => {
            let mut file = tokio::fs::File::create(path)
                .await
                .map_err(|e| cli::UsageError(format!("cannot create {}: {e}", path.display())))?;
            let n = response.write_to(&mut file).await?;
            file.sync_all().await?;
            n
        }
        None => {
            let mut stdout = tokio::io::stdout();
            let n = response.write_to(&mut stdout).await?;
            stdout.flush().await?;
            // The answer is written as is; on a terminal, keep the status line on its own.
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                eprintln!();
            }
            n
        }
    };
    eprintln!("{written} byte(s) received");
    if status >= 400 {
        anyhow::bail!("the request failed with HTTP {status}");
    }
    Ok(())
}
