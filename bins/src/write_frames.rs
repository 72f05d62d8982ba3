//! `livepeer-gateway write-frames`: starts a live video-to-video (LV2V) job and publishes the
//! moving test pattern to it as H.264 in MPEG-TS (what LV2V runners decode; AV1 is offered by
//! `byoc-write-frames` only), optionally saving the job's output stream, then prints the totals.

use clap::Args;
use gateway_actors::Lv2vRequest;
use gateway_core::trickle::SeqSpec;
use gateway_media::encoder::Codec;

use crate::cli;
use crate::frames::{stream_frames, FrameArgs, FrameSource};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `write-frames`.
#[derive(Debug, Args)]
pub struct WriteFramesArgs {
    #[command(flatten)]
    pub frames: FrameArgs,
    /// Pipeline model to run.
    #[arg(long, default_value = "noop")]
    pub model: String,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: WriteFramesArgs) -> anyhow::Result<()> {
    // Bad input is refused before any job is started or paid for.
    let source = args.frames.open_source()?;
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = run_job(&net, &args, source).await;
    net.shutdown().await;
    result
}

async fn run_job(net: &Network, args: &WriteFramesArgs, source: FrameSource) -> anyhow::Result<()> {
    let console = args.frames.console();
    let request = Lv2vRequest { model_id: args.model.clone(), ..Default::default() };
    let job = cli::interruptible(net.gateway.start_lv2v(request)).await?;
    console.line(format!("LV2V job {} on {}", job.session.manifest_id, job.orchestrator));
    // The output channel is new, so reading from its first segment misses nothing.
    let output = job.output(SeqSpec::At(0));
    let outcome = cli::interruptible(async {
        let publisher = job.publisher().await;
        stream_frames(publisher, output, &args.frames, source, Codec::H264).await
    })
    .await;
    let payments = job.payment_stats();
    cli::cleanup("stopping the job", job.stop()).await;
    let report = outcome?;
    report.print(console, &payments);
    report.verdict(args.frames.allow_partial)?;
    Ok(())
}
