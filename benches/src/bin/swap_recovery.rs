//! How fast a live stream recovers when its orchestrator fails (issue 15): on the local network
//! (in this process, plain HTTP, payments through the local signer), an LV2V `LiveStream`
//! publishes the test pattern at live pace with an output reader; the orchestrator running it
//! is then killed (its server stopped: connections cut, new ones refused) or ends the stream
//! (closes its channels). Each trial reports, from the stream's `SwapRecord`: failure to
//! detection, detection to the job restarted elsewhere, to the first bytes the new
//! orchestrator took, to its first complete segment and to the first output segment back;
//! and the frames and bytes lost in between.
//!
//! ```sh
//! cargo run --release -p benches --bin swap_recovery -- --trials 5
//! ```
//!
//! Targets (issue 15): first segment within 2 s of detection, first output within 3 s. The
//! first segment after a swap ends at a keyframe asked for 1 s after it opened
//! (`FIRST_SEGMENT_AFTER_SWAP`); the first bytes say when the new orchestrator took the stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Parser, ValueEnum};
use gateway_actors::live::{LiveJobRequest, LiveStream, SwapConfig, SwapRecord};
use gateway_actors::media::VideoPublisherConfig;
use gateway_actors::{Gateway, GatewayConfig, Lv2vRequest};
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::SeqSpec;
use gateway_media::{Rational, TestPattern};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

#[derive(Debug, Parser)]
struct Args {
    /// Trials per failure kind.
    #[arg(long, default_value_t = 5)]
    trials: usize,
    /// Failure kinds to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Failure::Kill, Failure::Close])]
    failures: Vec<Failure>,
    /// Frame size.
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 360)]
    height: u32,
    /// Frames per second (live pace).
    #[arg(long, default_value_t = 30)]
    fps: u32,
}

/// How the orchestrator fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Failure {
    /// Its server stops: connections cut, new ones refused.
    Kill,
    /// It ends the stream: every channel closed.
    Close,
}

/// One trial's figures, in milliseconds.
#[derive(Debug, Clone)]
struct Trial {
    failure: Failure,
    detect_ms: f64,
    restart_ms: f64,
    first_bytes_ms: Option<f64>,
    first_segment_ms: Option<f64>,
    first_output_ms: Option<f64>,
    frames_dropped: u64,
    bytes_drained: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut trials = Vec::new();
    for &failure in &args.failures {
        for i in 0..args.trials {
            let trial = runtime
                .block_on(run_trial(&args, failure))
                .with_context(|| format!("{failure:?} trial {i}"))?;
            eprintln!("{trial:?}");
            trials.push(trial);
        }
    }
    print_table(&args, &trials);
    Ok(())
}

async fn run_trial(args: &Args, failure: Failure) -> anyhow::Result<Trial> {
    let net =
        LocalNetwork::start(NetworkConfig { orchestrators: 2, tls: false, ..Default::default() }).await?;
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let gateway = Gateway::start(GatewayConfig { network, ..Default::default() })?;
    let video = VideoPublisherConfig::h264(args.width, args.height);
    let request = LiveJobRequest::Lv2v(Lv2vRequest::default());
    let stream = Arc::new(gateway.start_live_stream(request, Some(video), SwapConfig::default()).await?);
    let units = Arc::new(AtomicU64::new(0));
    let reader = spawn_reader(&stream, units.clone());
    let writer = spawn_writer(stream.clone(), args.width, args.height, args.fps)?;

    // Warm up: output flowing.
    let warm = Instant::now();
    while units.load(Ordering::Relaxed) < 30 {
        anyhow::ensure!(warm.elapsed() < Duration::from_secs(15), "no output during warm-up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = stream.status().orchestrator;
    let i = net
        .orchestrator_urls()
        .iter()
        .position(|u| u.trim_end_matches('/') == now)
        .ok_or_else(|| anyhow!("unknown orchestrator {now}"))?;
    let failed_at = Instant::now();
    match failure {
        Failure::Kill => net.orchestrators[i].server.stop(),
        Failure::Close => net.orchestrators[i].orchestrator.stop_all_sessions(),
    }
    let swap = wait_for_recovery(&stream).await?;
    writer.abort();
    reader.abort();
    let _ = writer.await;
    let stream = Arc::try_unwrap(stream).map_err(|_| anyhow!("the stream is still shared"))?;
    stream.stop().await;
    gateway.shutdown();
    net.shutdown().await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(Trial {
        failure,
        detect_ms: ms(swap.detected_at.saturating_duration_since(failed_at)),
        restart_ms: ms(swap.restarted_after),
        first_bytes_ms: swap.first_bytes_after.map(ms),
        first_segment_ms: swap.first_segment_after.map(ms),
        first_output_ms: swap.first_output_after.map(ms),
        frames_dropped: swap.frames_dropped,
        bytes_drained: swap.bytes_drained,
    })
}

/// Waits until the first swap's recovery times are in (or 20 s).
async fn wait_for_recovery(stream: &LiveStream) -> anyhow::Result<SwapRecord> {
    let started = Instant::now();
    loop {
        let status = stream.status();
        if let Some(end) = status.ended {
            anyhow::bail!("the stream ended: {end}");
        }
        if let Some(swap) = status.swaps.first() {
            let done = swap.first_segment_after.is_some() && swap.first_output_after.is_some();
            if done || started.elapsed() > Duration::from_secs(20) {
                return Ok(swap.clone());
            }
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "no swap within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_reader(stream: &LiveStream, units: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let mut output = stream.output_video(SeqSpec::Current);
    tokio::spawn(async move {
        while let Ok(Some(_)) = output.next_access_unit().await {
            units.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn spawn_writer(
    stream: Arc<LiveStream>,
    width: u32,
    height: u32,
    fps: u32,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut pattern = TestPattern::new(width, height, Rational::new(fps, 1))?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(fps.max(1))));
        loop {
            tick.tick().await;
            let Some(video) = stream.video() else { return };
            if video.write_frame(pattern.next_frame()).is_err() {
                return;
            }
        }
    }))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn print_table(args: &Args, trials: &[Trial]) {
    println!(
        "\n{} trials per kind, LV2V {}x{} at {} fps, 2 orchestrators, release build\n",
        args.trials, args.width, args.height, args.fps
    );
    println!("| failure | detection ms | restarted ms | first bytes ms | first segment ms | first output ms | frames dropped | bytes drained |");
    println!("|---|---|---|---|---|---|---|---|");
    for &failure in &args.failures {
        let of: Vec<&Trial> = trials.iter().filter(|t| t.failure == failure).collect();
        let col = |f: &dyn Fn(&Trial) -> Option<f64>| {
            let v: Vec<f64> = of.iter().filter_map(|t| f(t)).collect();
            let max = v.iter().copied().fold(f64::NAN, f64::max);
            match median(v.clone()) {
                Some(m) => format!("{m:.0} (max {max:.0}, {}/{})", v.len(), of.len()),
                None => "-".into(),
            }
        };
        println!(
            "| {:?} | {} | {} | {} | {} | {} | {} | {} |",
            failure,
            col(&|t| Some(t.detect_ms)),
            col(&|t| Some(t.restart_ms)),
            col(&|t| t.first_bytes_ms),
            col(&|t| t.first_segment_ms),
            col(&|t| t.first_output_ms),
            col(&|t| Some(t.frames_dropped as f64)),
            col(&|t| Some(t.bytes_drained as f64)),
        );
    }
    println!("\nmedian (max, trials with a value / trials)");
}
