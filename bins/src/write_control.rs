//! `livepeer-gateway write-control`: starts a live video-to-video job and writes control
//! messages to it (`--message` with a counter field `n` added), `--count` times every
//! `--interval-ms`.

use std::time::Duration;

use clap::Args;
use gateway_actors::Lv2vRequest;
use serde_json::{Map, Value};

use crate::cli::{self, parse_json_object};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `write-control`.
#[derive(Debug, Args)]
pub struct WriteControlArgs {
    /// The message, a JSON object; a field `n` (0, 1, ...) is added to each copy.
    #[arg(long, default_value = r#"{"type":"ping"}"#, value_parser = parse_json_object)]
    pub message: Map<String, Value>,
    /// Messages to send.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Pause between messages, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// Pipeline model to run.
    #[arg(long, default_value = "noop")]
    pub model: String,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: WriteControlArgs) -> anyhow::Result<()> {
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = run_job(&net, &args).await;
    net.shutdown().await;
    result
}

async fn run_job(net: &Network, args: &WriteControlArgs) -> anyhow::Result<()> {
    let request = Lv2vRequest { model_id: args.model.clone(), ..Default::default() };
    let job = cli::interruptible(net.gateway.start_lv2v(request)).await?;
    eprintln!("LV2V job {} on {}", job.session.manifest_id, job.orchestrator);
    let outcome = cli::interruptible(async {
        let control = job.control().await;
        for n in 0..args.count {
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
            }
            let mut message = args.message.clone();
            message.insert("n".into(), n.into());
            let message = Value::Object(message);
            let seq = control.send(&message).await?;
            println!("sent {message} as segment {seq}");
        }
        control.close().await;
        anyhow::Ok(())
    })
    .await;
    cli::cleanup("stopping the job", job.stop()).await;
    outcome
}
