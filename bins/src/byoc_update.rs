//! `livepeer-gateway byoc-update`: sends new parameters to a running BYOC stream by its id
//! (`/ai/stream/update`), from any process: the stream may have been started by another
//! command (`byoc-write-frames` prints its id) or another gateway. The worker's reply goes to
//! stdout, the orchestrator that answered to stderr; exit 1 when no orchestrator runs the
//! stream or the update is refused, 2 for bad options.

use std::path::PathBuf;

use bytes::Bytes;
use clap::Args;

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `byoc-update`.
#[derive(Debug, Args)]
pub struct ByocUpdateArgs {
    /// The stream's id.
    #[arg(long, value_name = "ID")]
    pub stream_id: String,
    /// Registered BYOC capability the stream runs.
    #[arg(long, default_value = "text-reversal")]
    pub capability: String,
    /// The new parameters, a JSON object.
    #[arg(long, value_name = "JSON", value_parser = cli::parse_json_object, conflicts_with = "params_file")]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    /// Read the parameters from this file (`-` for stdin), sent as they are.
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// Print `{stream_id, orchestrator, reply}` as one JSON object (the reply parsed when it is
    /// JSON).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: ByocUpdateArgs) -> anyhow::Result<()> {
    let body = match (&args.params, &args.params_file) {
        (None, None) => {
            return Err(
                cli::UsageError("give the new parameters with --params or --params-file".into()).into()
            )
        }
        (Some(p), _) => Bytes::from(serde_json::Value::Object(p.clone()).to_string()),
        (None, Some(path)) => cli::request_body(None, Some(path)).await?,
    };
    if body.len() > gateway_core::jobs::MAX_STREAM_UPDATE_BYTES {
        return Err(cli::UsageError(format!(
            "the parameters are {} bytes; go's gateway takes at most {}",
            body.len(),
            gateway_core::jobs::MAX_STREAM_UPDATE_BYTES
        ))
        .into());
    }
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result =
        cli::interruptible(net.gateway.update_byoc_stream(&args.capability, &args.stream_id, body)).await;
    net.shutdown().await;
    let updated = result?;
    eprintln!("stream {} updated on {}", args.stream_id, updated.orchestrator);
    let reply = String::from_utf8_lossy(&updated.body).trim_end().to_owned();
    if args.json {
        let reply = serde_json::from_str(&reply).unwrap_or(serde_json::Value::String(reply));
        let out = serde_json::json!({ "stream_id": args.stream_id, "orchestrator": updated.orchestrator, "reply": reply });
        println!("{out}");
    } else {
        println!("{reply}");
    }
    Ok(())
}
