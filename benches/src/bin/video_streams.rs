//! Threads, memory and CPU of many live video streams in one process: N `VideoPublisher`s
//! (H.264 test pattern, small frames, live pace) publishing to the local trickle server, each
//! stream count in a fresh worker process so its figures are its own.
//!
//! ```sh
//! cargo run --release -p benches --bin video_streams -- --streams 10,100,500 --seconds 10
//! ```
//!
//! The trickle server runs in a child process (`--serve`); each count runs as
//! `--worker N`, which prints one JSON line. Only the SDK's public API is used, so the same
//! file measures any version of it side by side (see BENCHMARKS.md).

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use benches::servers::{run_server_child, ServerProcess};
use benches::sys::{cpu_seconds, peak_rss_kib, raise_fd_limit};
use clap::Parser;
use gateway_actors::http::HttpClients;
use gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{PublisherConfig, TricklePublisher};
use gateway_media::{Rational, TestPattern};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
struct Args {
    /// Stream counts to measure, each in a fresh worker process.
    #[arg(long, value_delimiter = ',', default_value = "10,100,500")]
    streams: Vec<usize>,
    /// Seconds each count publishes.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Frame width and height.
    #[arg(long, default_value_t = 128)]
    width: u32,
    #[arg(long, default_value_t = 72)]
    height: u32,
    /// Frames per second of each stream.
    #[arg(long, default_value_t = 10)]
    fps: u32,
    /// Label of this build in the table (e.g. a commit).
    #[arg(long, default_value = "this build")]
    label: String,
    /// Internal: serve the trickle server.
    #[arg(long, hide = true)]
    serve: bool,
    /// Internal: run N streams against this trickle base URL.
    #[arg(long, hide = true)]
    worker: Option<usize>,
    #[arg(long, hide = true)]
    base: Option<String>,
}

/// What one worker measured.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    streams: usize,
    /// Most threads seen in the process while the streams ran.
    threads_peak: u64,
    /// Peak resident set size, MiB.
    rss_peak_mib: f64,
    /// CPU seconds (user + system) per stream-minute.
    cpu_per_stream_min: f64,
    frames_in: u64,
    frames_encoded: u64,
    frames_dropped: u64,
    bytes_published: u64,
    segments_failed: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve {
        return run_server_child();
    }
    if let (Some(n), Some(base)) = (args.worker, args.base.as_deref()) {
        let report = worker(n, base, &args)?;
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let server = ServerProcess::spawn(&exe)?;
    println!("| build | streams | threads (peak) | peak RSS MiB | CPU s / stream-min | frames in / encoded / dropped | MB published | failed segments |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &args.streams {
        let r = run_worker(&exe, n, &server.addrs.trickle_base(), &args)?;
        println!(
            "| {} | {} | {} | {:.0} | {:.4} | {} / {} / {} | {:.1} | {} |",
            args.label,
            r.streams,
            r.threads_peak,
            r.rss_peak_mib,
            r.cpu_per_stream_min,
            r.frames_in,
            r.frames_encoded,
            r.frames_dropped,
            r.bytes_published as f64 / 1e6,
            r.segments_failed
        );
    }
    Ok(())
}

fn run_worker(exe: &std::path::Path, n: usize, base: &str, args: &Args) -> anyhow::Result<Report> {
    let out = Command::new(exe)
        .args(["--worker", &n.to_string(), "--base", base])
        .args(["--seconds", &args.seconds.to_string(), "--fps", &args.fps.to_string()])
        .args(["--width", &args.width.to_string(), "--height", &args.height.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run a worker")?;
    let line = out.stdout.lines().map_while(Result::ok).last().unwrap_or_default();
    serde_json::from_str(&line).with_context(|| format!("worker for {n} streams answered {line:?}"))
}

fn threads_now() -> u64 {
    std::fs::read_dir("/proc/self/task").map(|d| d.count() as u64).unwrap_or(0)
}

fn worker(n: usize, base: &str, args: &Args) -> anyhow::Result<Report> {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let http = HttpClients::new(OrchestratorTrust::Insecure)?;
        let mut cfg = VideoPublisherConfig::h264(args.width, args.height);
        cfg.frame_rate = Rational::new(args.fps, 1);
        cfg.bitrate_bps = 200_000;
        let mut streams = Vec::with_capacity(n);
        for i in 0..n {
            let url = format!("{}/vs-{}-{i}", base.trim_end_matches('/'), std::process::id());
            let client = http.orchestrator(&url)?;
            let config = PublisherConfig { mime: cfg.mime().into(), ..Default::default() };
            let trickle = TricklePublisher::start(client, &url, config).await;
            streams.push(VideoPublisher::start(trickle, cfg.clone())?);
        }
        let streams = Arc::new(streams);
        let pattern = TestPattern::new(args.width, args.height, cfg.frame_rate)?;
        let (cpu0, started) = (cpu_seconds(), Instant::now());
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.fps)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut index, mut threads_peak) = (0u64, threads_now());
        while started.elapsed() < Duration::from_secs(args.seconds) {
            tick.tick().await;
            let frame = pattern.frame(index);
            for s in streams.iter() {
                s.write_frame(frame.clone())?;
            }
            index += 1;
            threads_peak = threads_peak.max(threads_now());
        }
        let minutes = started.elapsed().as_secs_f64() / 60.0;
        let cpu = cpu_seconds() - cpu0;
        let streams = Arc::try_unwrap(streams).map_err(|_| anyhow!("streams still shared"))?;
        let mut report = Report {
            streams: n,
            threads_peak,
            rss_peak_mib: peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
            cpu_per_stream_min: cpu / (minutes * n as f64),
            frames_in: 0,
            frames_encoded: 0,
            frames_dropped: 0,
            bytes_published: 0,
            segments_failed: 0,
        };
        for s in streams {
            let m = s.finish().await?;
            report.frames_in += m.frames_in;
            report.frames_encoded += m.frames_encoded;
            report.frames_dropped += m.frames_dropped;
            report.bytes_published += m.bytes_published;
            report.segments_failed += m.segments_failed;
        }
        Ok(report)
    })
}
