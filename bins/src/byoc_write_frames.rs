//! `livepeer-gateway byoc-write-frames`: starts a BYOC stream job with video in and out and
//! publishes the moving test pattern to it (H.264 in MPEG-TS, or AV1 in IVF), optionally saving
//! the job's output stream, then prints the totals.

use clap::{Args, ValueEnum};
use gateway_actors::live::LiveJobRequest;
use gateway_actors::ByocJobRequest;
use gateway_media::encoder::Codec;

use crate::cli;
use crate::frames::{stream_frames, AudioIo, FrameArgs, FrameSource};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};
use crate::swaps::{print_swaps, SwapArgs};

/// Codecs a BYOC worker can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CodecArg {
    /// H.264 in MPEG-TS.
    H264,
    /// AV1 in IVF (the worker must decode AV1).
    Av1,
}

/// Options of `byoc-write-frames`.
#[derive(Debug, Args)]
pub struct ByocWriteFramesArgs {
    #[command(flatten)]
    pub frames: FrameArgs,
    /// Codec of the published video.
    #[arg(long, value_enum, default_value_t = CodecArg::H264)]
    pub codec: CodecArg,
    /// Registered BYOC capability name.
    #[arg(long, default_value = "text-reversal")]
    pub capability: String,
    #[command(flatten)]
    pub swap: SwapArgs,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: ByocWriteFramesArgs) -> anyhow::Result<()> {
    // Bad input is refused before any job is started or paid for.
    if args.frames.decode && matches!(args.codec, CodecArg::Av1) {
        return Err(cli::UsageError(
            "--decode reads H.264 output only; AV1 output has no decoder here".into(),
        )
        .into());
    }
    let source = args.frames.open_source()?;
    if source.is_passthrough() && matches!(args.codec, CodecArg::Av1) {
        return Err(cli::UsageError(
            "--input is MPEG-TS, published as it is (H.264): --codec av1 would re-encode it, which is not done"
                .into(),
        )
        .into());
    }
    let audio = args.frames.open_audio(&source, codec(&args.codec))?;
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = run_job(&net, &args, source, audio).await;
    net.shutdown().await;
    result
}

/// The codec `--codec` names.
fn codec(arg: &CodecArg) -> Codec {
    match arg {
        CodecArg::H264 => Codec::H264,
        CodecArg::Av1 => Codec::Av1,
    }
}

async fn run_job(
    net: &Network,
    args: &ByocWriteFramesArgs,
    source: FrameSource,
    audio: AudioIo,
) -> anyhow::Result<()> {
    let console = args.frames.console();
    let codec = codec(&args.codec);
    let mut request = ByocJobRequest::new(&args.capability);
    request.enable_video_ingress = true;
    request.enable_video_egress = true;
    let video = source.publisher_config(codec, audio.input.as_ref());
    let stream = cli::interruptible(net.gateway.start_live_stream(
        LiveJobRequest::Byoc(request),
        Some(video),
        args.swap.config(),
    ))
    .await?;
    let status = stream.status();
    console.line(format!("BYOC job {} ({}) on {}", status.job_id, args.capability, status.orchestrator));
    let swaps = print_swaps(&stream, console);
    let outcome = cli::interruptible(stream_frames(&stream, &args.frames, source, codec, audio)).await;
    let stopped = stream.stop().await;
    swaps.abort();
    let report = outcome?;
    report.print(console, &stopped.status);
    report.verdict(args.frames.allow_partial, &stopped.status)?;
    Ok(())
}
