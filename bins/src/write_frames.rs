//! `livepeer-gateway write-frames`: starts a live video-to-video (LV2V) job and publishes the
//! moving test pattern to it as H.264 in MPEG-TS (what LV2V runners decode; AV1 is offered by
//! `byoc-write-frames` only), optionally saving the job's output stream, then prints the totals.

use clap::Args;
use gateway_actors::live::LiveJobRequest;
use gateway_actors::Lv2vRequest;
use gateway_media::encoder::Codec;

use crate::cli;
use crate::frames::{stream_frames, AudioIo, FrameArgs, FrameSource};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};
use crate::swaps::{print_swaps, SwapArgs};

/// Options of `write-frames`.
#[derive(Debug, Args)]
pub struct WriteFramesArgs {
    #[command(flatten)]
    pub frames: FrameArgs,
    /// Pipeline model to run.
    #[arg(long, default_value = "noop")]
    pub model: String,
    #[command(flatten)]
    pub swap: SwapArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: WriteFramesArgs) -> anyhow::Result<()> {
    // Bad input is refused before any job is started or paid for.
    let source = args.frames.open_source()?;
    let audio = args.frames.open_audio(&source, Codec::H264)?;
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = run_job(&net, &args, source, audio).await;
    net.shutdown().await;
    result
}

async fn run_job(
    net: &Network,
    args: &WriteFramesArgs,
    source: FrameSource,
    audio: AudioIo,
) -> anyhow::Result<()> {
    let console = args.frames.console();
    let request = LiveJobRequest::Lv2v(Lv2vRequest { model_id: args.model.clone(), ..Default::default() });
    let video = source.publisher_config(Codec::H264, audio.input.as_ref());
    let stream =
        cli::interruptible(net.gateway.start_live_stream(request, Some(video), args.swap.config())).await?;
    let status = stream.status();
    console.line(format!("LV2V job {} on {}", status.job_id, status.orchestrator));
    let swaps = print_swaps(&stream, console);
    let outcome = cli::interruptible(stream_frames(&stream, &args.frames, source, Codec::H264, audio)).await;
    let stopped = stream.stop().await;
    swaps.abort();
    let report = outcome?;
    report.print(console, &stopped.status);
    report.verdict(args.frames.allow_partial, &stopped.status)?;
    Ok(())
}
