//! `livepeer-gateway byoc-text-reversal`: starts a BYOC stream job with a data channel, sends one
//! text on the control channel and prints the worker's reply. The job is stopped on success, on
//! error and on Ctrl-C alike.

use std::time::{Duration, Instant};

use clap::Args;
use gateway_actors::channels::{ControlWriter, JsonReader};
use gateway_actors::{ByocJob, ByocJobRequest};
use serde_json::{json, Value};

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// How long a reply may take before the job is declared failed.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Options of `byoc-text-reversal`.
#[derive(Debug, Args)]
pub struct TextReversalArgs {
    /// The text to send.
    #[arg(long, default_value = "hello livepeer")]
    pub text: String,
    /// Registered BYOC capability name.
    #[arg(long, default_value = "text-reversal")]
    pub capability: String,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: TextReversalArgs) -> anyhow::Result<()> {
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = with_text_job(&net, &args.capability, async |control, data| {
        let started = Instant::now();
        let reply = exchange(control, data, &args.text).await?;
        eprintln!("reply in {} ms", started.elapsed().as_millis());
        println!("{}", reply_text(&reply));
        Ok(())
    })
    .await;
    net.shutdown().await;
    result
}

/// Starts a BYOC job with a data channel for `capability`, runs `work` on its control and data
/// channels (until done or Ctrl-C), then closes the channels and stops the job whatever
/// happened.
pub async fn with_text_job<F>(net: &Network, capability: &str, work: F) -> anyhow::Result<()>
where
    F: AsyncFnOnce(&ControlWriter, &mut JsonReader) -> anyhow::Result<()>,
{
    let mut request = ByocJobRequest::new(capability);
    request.enable_data_output = true;
    let job = cli::interruptible(net.gateway.start_byoc_job(request)).await?;
    eprintln!("BYOC job {} ({capability}) on {}", job.stream_id, job.orchestrator);
    let outcome = cli::interruptible(async {
        let control = job.control().await?;
        let mut data = job.data()?;
        let result = work(&control, &mut data).await;
        data.close();
        control.close().await;
        result
    })
    .await;
    stop(job).await;
    outcome
}

async fn stop(job: ByocJob) {
    cli::cleanup("stopping the job", job.stop()).await;
}

/// Sends `text` as `{"text": ...}` and waits for the next message on the data channel.
pub async fn exchange(control: &ControlWriter, data: &mut JsonReader, text: &str) -> anyhow::Result<Value> {
    control.send(&json!({ "text": text })).await?;
    tokio::time::timeout(REPLY_TIMEOUT, data.next())
        .await
        .map_err(|_| anyhow::anyhow!("no reply within {} s", REPLY_TIMEOUT.as_secs()))??
        .ok_or_else(|| anyhow::anyhow!("the data channel ended before a reply"))
}

/// What to print of a reply: the reversed text of `text-reversal`, else the JSON.
pub fn reply_text(reply: &Value) -> String {
    match reply.get("reversed").and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None => reply.to_string(),
    }
}
