//! The throughput runner: this SDK and the official Python SDK side by side against the same
//! local trickle server, printing one markdown table per scenario (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p benches --bin throughput -- [--quick] [--scenario N]... [--streams 10,100,1000,2000] [--no-python]
//! cargo run --release -p benches --bin throughput -- --soak [--seconds 300] [--streams 100] [--seed 42]
//! cargo run --release -p benches --bin throughput -- --soak --swaps [--orchestrators 4] [--orchestrator-deaths N] [--seconds 120] [--streams 20] [--seed 42]
//! ```
//!
//! Servers run in a child process (`--serve`) and scenario 2 runs each stream count in a
//! worker process (`--worker-streams`), so every CPU and memory figure is the client's alone.
//! Scenario 7 (streams through a `livepeer-gateway serve` node against the SDK alone) runs a
//! local network child (`--serve-network`), the node, and a worker per run (`--worker-relay`).
//! `--soak --swaps` is the soak with orchestrator deaths (issue 15): live streams on an
//! in-process local network whose orchestrators die and come back on a seeded schedule, every
//! session's frames, bytes and payments checked across its swaps (no server child; see
//! `benches::scenarios::soak::swaps`).
//! Every loop is bounded in count and time; everything talks to 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use benches::python::PythonSide;
use benches::scenarios::lagging::LaggingClient;
use benches::scenarios::soak::{self, swaps, SoakConfig};
use benches::scenarios::Budget;
use benches::servers::{run_network_child, run_server_child, ServerProcess};
use benches::sys::raise_fd_limit;
use clap::Parser;

mod many_streams;
mod one_stream;
mod selection_and_http;
mod through_serve;

use many_streams::{scenario_lagging, scenario_streams, worker_lagging, worker_streams};
use one_stream::{scenario_media, scenario_publish};
use selection_and_http::{scenario_clients, scenario_select};
use through_serve::{scenario_through_serve, worker_relay};

#[derive(Debug, Parser)]
#[command(about = "Trickle throughput and scale: Rust SDK vs the official Python SDK")]
pub(crate) struct Args {
    /// Run every scenario briefly (smoke test).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (1-7; repeat or comma-separate); all when omitted.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<u8>,
    /// Stream counts of scenarios 2 and 7.
    #[arg(long, value_delimiter = ',')]
    streams: Vec<u64>,
    /// Skip the Python SDK.
    #[arg(long)]
    no_python: bool,
    /// Where to write the scenario-2 chart (default: benches/latency-cpu.svg on full runs).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Run the seeded-fault soak instead of the scenarios (`--streams` slots, default 100).
    #[arg(long)]
    soak: bool,
    /// Soak length in seconds.
    #[arg(long)]
    seconds: Option<f64>,
    /// Seed of the soak's fault schedule.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// With `--soak`: the soak with orchestrator deaths (live streams that swap) instead of the
    /// trickle-level one (`--streams` slots, default 20; `--seconds` default 120 there too).
    #[arg(long)]
    swaps: bool,
    /// Orchestrators of the swap soak (at least 3 for deaths: 2 always serve).
    #[arg(long, default_value_t = 4)]
    orchestrators: usize,
    /// Orchestrator deaths of the swap soak (default: one per 20 s, as many as fit).
    #[arg(long)]
    orchestrator_deaths: Option<usize>,
    /// Allowed RSS growth of the soak in MiB (or 10 %, whichever is larger).
    #[arg(long, default_value_t = soak::RSS_TOLERANCE_MIB)]
    rss_tolerance_mib: f64,
    /// Internal: run the server child.
    #[arg(long, hide = true)]
    serve: bool,
    /// Internal: run one scenario-2 stream count against this trickle base URL.
    #[arg(long, hide = true)]
    worker_streams: Option<String>,
    /// The tokio runtime scenario 2's Rust worker runs on: `multi-thread` (tokio's default,
    /// a worker per core) or `current-thread` (one thread, like the Python SDK's asyncio loop).
    #[arg(long, value_enum, default_value_t = RuntimeKind::MultiThread)]
    runtime: RuntimeKind,
    /// Scenario 1: rounds of (loopback limit, Rust publisher), alternated; the table shows
    /// medians and the range of the per-round percentage.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    publish_rounds: u32,
    /// Subscribers of scenario 6 (lagging readers).
    #[arg(long, default_value_t = 200)]
    lagging: u64,
    /// Internal: run scenario 6 with this client kind against `--worker-lagging-base`.
    #[arg(long, hide = true)]
    worker_lagging: Option<LaggingClient>,
    /// Internal: the trickle base URL of a scenario-6 worker.
    #[arg(long, hide = true)]
    worker_lagging_base: Option<String>,
    /// Scenario 7: the `livepeer-gateway` binary to run as the node (default: the one beside
    /// this runner).
    #[arg(long)]
    gateway_exe: Option<PathBuf>,
    /// Scenario 7: the node's `serve --threads` (default: its own, one per core).
    #[arg(long, value_name = "N")]
    node_threads: Option<u16>,
    /// Scenario 7: run the two paths this many times each per stream count, alternating (one
    /// run's CPU ratio can be off by a tenth on a shared machine); the report adds the median.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Internal: run the local network child, its BYOC offer taking this many streams.
    #[arg(long, hide = true)]
    serve_network: Option<u32>,
    /// Internal: run one scenario-7 run (a JSON `RelayTarget`).
    #[arg(long, hide = true)]
    worker_relay: Option<String>,
    /// Internal: scenario-2 warm-up seconds.
    #[arg(long, hide = true, default_value_t = 3.0)]
    warmup: f64,
    /// Internal: scenario-2 measurement window seconds.
    #[arg(long, hide = true, default_value_t = 12.0)]
    window: f64,
}

/// The tokio runtime of a scenario-2 worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeKind {
    MultiThread,
    CurrentThread,
}

impl RuntimeKind {
    fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            RuntimeKind::MultiThread => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
            RuntimeKind::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            RuntimeKind::MultiThread => "multi-thread",
            RuntimeKind::CurrentThread => "current-thread",
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // reqwest is built without a default TLS provider; the library installs ring.
    let _ = gateway_actors::tls::provider();
    if args.serve {
        return run_server_child();
    }
    if let Some(capacity) = args.serve_network {
        return run_network_child(capacity);
    }
    if let Some(target) = &args.worker_relay {
        return worker_relay(target, &args);
    }
    if let Some(base) = &args.worker_streams {
        return worker_streams(base, &args);
    }
    if let (Some(client), Some(base)) = (args.worker_lagging, &args.worker_lagging_base) {
        return worker_lagging(base, client, args.lagging);
    }
    if args.soak && args.swaps {
        return swap_soak(&args);
    }
    let only_local = |u: &str| u.starts_with("http://127.0.0.1:");
    let fd_limit = raise_fd_limit();
    let exe = std::env::current_exe()?;
    let server = ServerProcess::spawn(&exe)?;
    anyhow::ensure!(only_local(&server.addrs.channel_url("x")), "server child is not on 127.0.0.1");
    if args.soak {
        let streams = args.streams.first().copied().unwrap_or(100).clamp(1, 1000) as usize;
        let report = soak::run(
            &server,
            SoakConfig {
                streams,
                seconds: args.seconds.unwrap_or(300.0),
                seed: args.seed,
                rss_tolerance_mib: args.rss_tolerance_mib,
            },
        )?;
        println!("{}", report.markdown());
        drop(server);
        std::process::exit(if report.failures.is_empty() { 0 } else { 1 });
    }
    let python = if args.no_python {
        None
    } else {
        match PythonSide::locate() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("python side disabled: {e:#}");
                None
            }
        }
    };
    let scenarios: Vec<u8> =
        if args.scenario.is_empty() { vec![1, 2, 3, 4, 5, 6, 7] } else { args.scenario.clone() };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    println!("{}", machine(fd_limit, args.quick));
    for s in scenarios {
        let started = std::time::Instant::now();
        let out = match s {
            1 => rt.block_on(scenario_publish(&server, python.as_ref(), args.quick, args.publish_rounds)),
            2 => scenario_streams(&exe, &server, python.as_ref(), &args),
            3 => rt.block_on(scenario_media(&server.addrs, python.as_ref(), args.quick)),
            4 => rt.block_on(scenario_select(args.quick)),
            5 => scenario_clients(&server.addrs, args.quick),
            6 => scenario_lagging(&exe, &server, &args),
            7 => scenario_through_serve(&exe, &args),
            other => Err(anyhow::anyhow!("there is no scenario {other} (1-7)")),
        };
        match out {
            Ok(text) => println!("{text}\n_(scenario {s} took {:.0} s)_\n", started.elapsed().as_secs_f64()),
            Err(e) => println!("## Scenario {s}\n\nfailed: {e:#}\n"),
        }
    }
    drop(rt);
    drop(server);
    Ok(())
}

/// `--soak --swaps`: the soak with orchestrator deaths; exits 1 if a check failed.
fn swap_soak(args: &Args) -> anyhow::Result<()> {
    let seconds = args.seconds.unwrap_or(120.0);
    let config = swaps::SwapSoakConfig {
        streams: args.streams.first().copied().unwrap_or(20).clamp(1, 1000) as usize,
        seconds,
        seed: args.seed,
        orchestrators: args.orchestrators.clamp(1, 64),
        deaths: args.orchestrator_deaths.unwrap_or((seconds / 20.0) as usize),
    };
    let report = swaps::run(config)?;
    println!("{}", machine(raise_fd_limit(), false));
    println!("{}", report.markdown());
    std::process::exit(if report.passed() { 0 } else { 1 });
}

fn machine(fd_limit: u64, quick: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!(
        "# Throughput run{}\n\nmachine: {cores} vCPU ({cpu}), {mem_gib:.1} GiB RAM, open-file limit {fd_limit}\n",
        if quick { " (--quick)" } else { "" }
    )
}

/// `--streams N --warmup S --window S`: how a worker (Rust or Python) is told a run's size.
pub(crate) fn run_size_args(n: u64, warmup: f64, window: f64) -> [String; 6] {
    let flag = |f: &str| f.to_owned();
    [
        flag("--streams"),
        n.to_string(),
        flag("--warmup"),
        warmup.to_string(),
        flag("--window"),
        window.to_string(),
    ]
}

pub(crate) fn budget(quick: bool, count: u64, secs: f64) -> Budget {
    if quick {
        Budget { max_count: count.min(100), max_time: Duration::from_secs_f64((secs / 6.0).min(0.5)) }
    } else {
        Budget { max_count: count, max_time: Duration::from_secs_f64(secs) }
    }
}

/// Runs `exe ARGS` and parses the last JSON line it prints.
pub(crate) fn run_json<T: serde::de::DeserializeOwned>(
    exe: &Path,
    args: &[String],
    timeout: Duration,
) -> anyhow::Result<T> {
    let mut child = std::process::Command::new(exe)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "worker exited with {status}");
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("worker timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = reader.join().unwrap_or_default();
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("worker printed no result: {out:?}"))
}
