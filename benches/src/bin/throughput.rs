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
//! `--soak --swaps` is the soak with orchestrator deaths (issue 15): live streams on an
//! in-process local network whose orchestrators die and come back on a seeded schedule, every
//! session's frames, bytes and payments checked across its swaps (no server child; see
//! `benches::scenarios::soak::swaps`).
//! Every loop is bounded in count and time; everything talks to 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use benches::python::{clip_args, PythonSide};
use benches::report::{num, ratio, table, write_chart};
use benches::scenarios::clients::{self, Client};
use benches::scenarios::lagging::{self, LaggingClient, LaggingResult};
use benches::scenarios::media::{self, codec_name, MediaResult};
use benches::scenarios::publish::{self, cpu_per_gb_note, median_by, percent_cell, PublishResult, PublishTo};
use benches::scenarios::select;
use benches::scenarios::soak::{self, swaps, SoakConfig};
use benches::scenarios::streams::{self, StreamsResult};
use benches::scenarios::Budget;
use benches::servers::{run_server_child, ServerAddrs, ServerProcess};
use benches::sys::raise_fd_limit;
use clap::Parser;
use gateway_media::Codec;

#[derive(Debug, Parser)]
#[command(about = "Trickle throughput and scale: Rust SDK vs the official Python SDK")]
struct Args {
    /// Run every scenario briefly (smoke test).
    #[arg(long)]
    quick: bool,
    /// Scenarios to run (1-6; repeat or comma-separate); all when omitted.
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<u8>,
    /// Stream counts of scenario 2.
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
        if args.scenario.is_empty() { vec![1, 2, 3, 4, 5, 6] } else { args.scenario.clone() };
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
            other => Err(anyhow::anyhow!("there is no scenario {other} (1-6)")),
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

fn budget(quick: bool, count: u64, secs: f64) -> Budget {
    if quick {
        Budget { max_count: count.min(100), max_time: Duration::from_secs_f64((secs / 6.0).min(0.5)) }
    } else {
        Budget { max_count: count, max_time: Duration::from_secs_f64(secs) }
    }
}

async fn scenario_publish(
    server: &ServerProcess,
    python: Option<&PythonSide>,
    quick: bool,
    rounds: u32,
) -> anyhow::Result<String> {
    let (addrs, pid) = (&server.addrs, server.pid());
    let mut rows = Vec::new();
    let mut cpu_notes = Vec::new();
    for size in [1_000_000usize, 10_000] {
        let b = budget(quick, if size > 100_000 { 5_000 } else { 50_000 }, 3.0);
        // Alternate the two so drift on a shared box hits both alike.
        let (mut raws, mut rusts, mut drained) = (Vec::new(), Vec::new(), Vec::new());
        let (mut percents, mut drained_percents) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let raw = publish::raw_loopback(addrs, pid, size, b).await?;
            let rust = publish::trickle_publish(addrs, PublishTo::TrickleServer, pid, size, b).await?;
            let to_drain = publish::trickle_publish(addrs, PublishTo::DrainServer, pid, size, b).await?;
            percents.push(100.0 * rust.mb_per_s() / raw.mb_per_s().max(1e-9));
            drained_percents.push(100.0 * to_drain.mb_per_s() / raw.mb_per_s().max(1e-9));
            raws.push(raw);
            rusts.push(rust);
            drained.push(to_drain);
        }
        let (raw, rust) =
            (median_by(&raws, PublishResult::mb_per_s), median_by(&rusts, PublishResult::mb_per_s));
        let to_drain = median_by(&drained, PublishResult::mb_per_s);
        let (percent, drained_percent) =
            (percent_cell(percents, rounds), percent_cell(drained_percents, rounds));
        let py: Option<PublishResult> = match python {
            Some(p) => {
                let args = [
                    "publish".to_owned(),
                    "--url".into(),
                    addrs.channel_url(&format!("py1-{size}-{}", std::process::id())),
                    "--segment-bytes".into(),
                    size.to_string(),
                    "--seconds".into(),
                    b.max_time.as_secs_f64().to_string(),
                    "--max-segments".into(),
                    b.max_count.to_string(),
                ];
                p.run(&args, Duration::from_secs(60)).map_err(|e| eprintln!("python publish: {e:#}")).ok()
            }
            None => None,
        };
        let label = if size >= 1_000_000 { "1 MB (64 KiB chunks)" } else { "10 KB (1 chunk)" };
        cpu_notes.push(cpu_per_gb_note(label, &raws, &rusts, &drained));
        rows.push(vec![
            label.to_owned(),
            format!("{:.0} MB/s, {:.0} seg/s", raw.mb_per_s(), raw.segments_per_s()),
            format!("{:.0} MB/s, {drained_percent}", to_drain.mb_per_s()),
            format!("{:.0} MB/s, {:.0} seg/s", rust.mb_per_s(), rust.segments_per_s()),
            percent,
            py.as_ref()
                .map(|p| format!("{:.0} MB/s, {:.0} seg/s", p.mb_per_s(), p.segments_per_s()))
                .unwrap_or("n/a".into()),
            ratio(Some(rust.segments_per_s()), py.as_ref().map(|p| p.segments_per_s())),
            format!(
                "{} / {}",
                rust.failed,
                py.as_ref().map(|p| p.failed.to_string()).unwrap_or("n/a".into())
            ),
        ]);
    }
    Ok(format!(
        "## Scenario 1: single-stream trickle publish\n\n{}\n{}",
        table(
            &[
                "segment",
                "loopback limit (bare reqwest -> bare hyper)",
                "Rust TricklePublisher -> bare hyper, % of limit",
                "Rust TricklePublisher -> trickle server",
                "Rust % of limit",
                "Python TricklePublisher",
                "Rust/Python seg/s",
                "failed Rust / Python"
            ],
            &rows
        ),
        cpu_notes.join("")
    ))
}

fn scenario_streams(
    exe: &Path,
    server: &ServerProcess,
    python: Option<&PythonSide>,
    args: &Args,
) -> anyhow::Result<String> {
    let addrs = &server.addrs;
    let counts: Vec<u64> = if !args.streams.is_empty() {
        args.streams.clone()
    } else if args.quick {
        vec![10]
    } else {
        vec![10, 100, 300, 1000, 2000]
    };
    let (warmup, window) = if args.quick { (1.0, 2.0) } else { (args.warmup, args.window) };
    let timeout = Duration::from_secs_f64(warmup + window + 90.0);
    let (mut rust, mut py) = (Vec::new(), Vec::new());
    // The server child's CPU over each whole run (ramp and teardown included): when it nears
    // 2 cores, the server, not the client, is what saturates.
    let mut server_load: Vec<(u64, &str, f64)> = Vec::new();
    let mut notes = String::new();
    let mut measure = |n: u64, who: &'static str, run: &mut dyn FnMut()| {
        let (cpu0, t0) = (server.cpu_seconds(), std::time::Instant::now());
        run();
        server_load.push((n, who, (server.cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64()));
    };
    for &n in &counts {
        let n = n.clamp(1, 5000);
        let worker_args = vec![
            "--worker-streams".to_owned(),
            addrs.trickle_base(),
            "--streams".into(),
            n.to_string(),
            "--warmup".into(),
            warmup.to_string(),
            "--window".into(),
            window.to_string(),
            "--runtime".into(),
            args.runtime.name().into(),
        ];
        measure(n, "Rust", &mut || match run_json::<StreamsResult>(exe, &worker_args, timeout) {
            Ok(r) => rust.push(r),
            Err(e) => notes.push_str(&format!("- Rust, {n} streams: failed: {e:#}\n")),
        });
        if let Some(p) = python {
            let a = vec![
                "streams".to_owned(),
                "--base".into(),
                addrs.trickle_base(),
                "--streams".into(),
                n.to_string(),
                "--warmup".into(),
                warmup.to_string(),
                "--window".into(),
                window.to_string(),
            ];
            measure(n, "Python", &mut || match p.run::<StreamsResult>(&a, timeout) {
                Ok(r) => py.push(r),
                Err(e) => notes.push_str(&format!("- Python, {n} streams: failed: {e:#}\n")),
            });
        }
    }
    let find = |v: &[StreamsResult], n: u64| v.iter().find(|r| r.streams == n).cloned();
    let delivered = |r: &StreamsResult| {
        format!("{:.1} %", 100.0 * r.chunks_received as f64 / r.chunks_sent.max(1) as f64)
    };
    let mut cpu_rows = Vec::new();
    let mut lat_rows = Vec::new();
    for &n in &counts {
        let (r, p) = (find(&rust, n), find(&py, n));
        let get = |x: &Option<StreamsResult>, f: fn(&StreamsResult) -> Option<f64>| x.as_ref().and_then(f);
        let cpu = |r: &StreamsResult| Some(r.cpu_s_per_stream_minute);
        let rss = |r: &StreamsResult| Some(r.peak_rss_mib);
        cpu_rows.push(vec![
            n.to_string(),
            num(get(&r, cpu), 4),
            num(get(&p, cpu), 4),
            ratio(get(&r, cpu), get(&p, cpu)),
            num(get(&r, rss), 0),
            num(get(&p, rss), 0),
            ratio(get(&r, rss), get(&p, rss)),
        ]);
        let p50 = |r: &StreamsResult| r.p50_ms;
        let p99 = |r: &StreamsResult| r.p99_ms;
        let health = |x: &Option<StreamsResult>| {
            x.as_ref()
                .map(|r| format!("{} / {} / {}", delivered(r), r.segments_failed, r.subscriber_errors))
                .unwrap_or("n/a".into())
        };
        lat_rows.push(vec![
            n.to_string(),
            num(get(&r, p50), 1),
            num(get(&p, p50), 1),
            num(get(&r, p99), 1),
            num(get(&p, p99), 1),
            ratio(get(&r, p99), get(&p, p99)),
            health(&r),
            health(&p),
        ]);
    }
    for (who, results) in [("Rust", &rust), ("Python", &py)] {
        for r in results.iter() {
            for (kind, count) in &r.subscriber_error_kinds {
                notes.push_str(&format!(
                    "- {who}, {} streams: {count} subscriber(s) stopped: {kind}\n",
                    r.streams
                ));
            }
        }
    }
    let load: Vec<String> =
        server_load.iter().map(|(n, who, cores)| format!("{who} {n}: {cores:.2}")).collect();
    notes.push_str(&format!("- server child CPU during each run, in cores: {}\n", load.join(", ")));
    let svg = match &args.svg {
        Some(p) => Some(p.clone()),
        None if !args.quick => Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("latency-cpu.svg")),
        None => None,
    };
    let mut chart_note = String::new();
    if let Some(path) = svg {
        match write_chart(&path, &rust, &py) {
            Ok(()) => chart_note = format!("\nchart: {}\n", path.display()),
            Err(e) => chart_note = format!("\nchart failed: {e:#}\n"),
        }
    }
    Ok(format!(
        "## Scenario 2: concurrent live streams (1 Mbps each, 8 writes per 1 s segment, one subscriber each; {warmup:.0} s warm-up, {window:.0} s measured; Rust on a {} tokio runtime)\n\n{}\n{}\n{notes}{}",
        args.runtime.name(),
        table(
            &["streams", "Rust CPU s / stream-min", "Python CPU s / stream-min", "Rust/Python", "Rust peak RSS MiB", "Python peak RSS MiB", "Rust/Python"],
            &cpu_rows
        ),
        table(
            &["streams", "Rust p50 ms", "Python p50 ms", "Rust p99 ms", "Python p99 ms", "Rust/Python p99", "Rust delivered / failed segs / sub errors", "Python delivered / failed segs / sub errors"],
            &lat_rows
        ),
        chart_note
    ))
}

/// Runs `exe ARGS` and parses the last JSON line it prints.
fn run_json<T: serde::de::DeserializeOwned>(
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

fn worker_streams(base: &str, args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(base.starts_with("http://127.0.0.1:"), "only 127.0.0.1 is allowed");
    let n = args.streams.first().copied().unwrap_or(10).clamp(1, 5000);
    let rt = args.runtime.build()?;
    let warmup = Duration::from_secs_f64(args.warmup.clamp(0.0, 60.0));
    let window = Duration::from_secs_f64(args.window.clamp(0.5, 120.0));
    let result = rt.block_on(streams::run_streams(base, n, warmup, window))?;
    println!("{}", serde_json::to_string(&result)?);
    // Do not wait for abandoned tasks.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn worker_lagging(base: &str, client: LaggingClient, n: u64) -> anyhow::Result<()> {
    anyhow::ensure!(base.starts_with("http://127.0.0.1:"), "only 127.0.0.1 is allowed");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(lagging::run_lagging(base, n.clamp(1, 2000), client))?;
    println!("{}", serde_json::to_string(&result)?);
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Scenario 6: the subscriber's memory behind a backlog, bounded client against reqwest, each
/// in its own worker process.
fn scenario_lagging(exe: &Path, server: &ServerProcess, args: &Args) -> anyhow::Result<String> {
    let n = if args.quick { args.lagging.min(20) } else { args.lagging };
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for client in [LaggingClient::Reqwest, LaggingClient::Bounded] {
        let kind = format!("{client:?}").to_lowercase();
        let worker_args = vec![
            "--worker-lagging".to_owned(),
            kind.clone(),
            "--worker-lagging-base".into(),
            server.addrs.trickle_base(),
            "--lagging".into(),
            n.to_string(),
        ];
        let r: LaggingResult = run_json(exe, &worker_args, Duration::from_secs(300))?;
        let expected = r.subscribers * lagging::SEGMENTS * lagging::SEGMENT_BYTES as u64;
        rows.push(vec![
            kind,
            r.subscribers.to_string(),
            format!("{:.0}", r.baseline_mib),
            format!("{:.0}", r.peak_rss_mib),
            format!("{:.0}", r.kib_per_subscriber),
            format!("{} of {expected}", r.bytes_read),
            r.errors.to_string(),
        ]);
        results.push(r);
    }
    let ratio_note = match results.as_slice() {
        [reqwest, bounded] if reqwest.kib_per_subscriber > 0.0 => format!(
            "\nbounded / reqwest memory per subscriber: {:.2}\n",
            bounded.kib_per_subscriber / reqwest.kib_per_subscriber
        ),
        _ => String::new(),
    };
    Ok(format!(
        "## Scenario 6: lagging subscribers ({} x {} MiB per channel in {} MiB pieces, read at 16 MB/s each)\n\n{}{ratio_note}",
        lagging::SEGMENTS,
        lagging::SEGMENT_BYTES >> 20,
        lagging::PIECE_BYTES >> 20,
        table(
            &["client", "subscribers", "baseline MiB", "peak RSS MiB", "KiB per subscriber", "bytes read", "errors"],
            &rows
        )
    ))
}

/// The Python SDK's `MediaPublish` live at 30 fps with a 48 kHz stereo audio track, on the
/// same frames.
fn python_live_audio(
    p: &PythonSide,
    addrs: &ServerAddrs,
    frames: &[gateway_media::VideoFrame],
    w: u32,
    h: u32,
    live_secs: f64,
) -> anyhow::Result<Option<media::LiveResult>> {
    let raw = std::env::temp_dir().join(format!("lpgw-bench-av-{}-{w}x{h}.yuv", std::process::id()));
    media::write_i420(&raw, frames)?;
    let mut a = clip_args(
        &["live", "--audio"],
        &addrs.channel_url(&format!("py3av-{w}x{h}-{}", std::process::id())),
        &raw,
        w,
        h,
        frames.len() as u64,
    );
    a.extend(["--live-seconds".into(), live_secs.to_string()]);
    let r = p.run(&a, Duration::from_secs(180)).map_err(|e| eprintln!("python live audio: {e:#}")).ok();
    let _ = std::fs::remove_file(&raw);
    Ok(r)
}

async fn scenario_media(
    addrs: &ServerAddrs,
    python: Option<&PythonSide>,
    quick: bool,
) -> anyhow::Result<String> {
    let cases: &[(Codec, u32, u32)] = if quick {
        &[(Codec::H264, 640, 360)]
    } else {
        &[(Codec::H264, 640, 360), (Codec::H264, 1280, 720), (Codec::Av1, 640, 360)]
    };
    let live_secs = if quick { 1.0 } else { 10.0 };
    let clip_len = 30;
    let (mut fast_rows, mut live_rows) = (Vec::new(), Vec::new());
    for &(codec, w, h) in cases {
        let frames = media::clip(w, h, clip_len)?;
        let b = if codec == Codec::Av1 { budget(quick, 90, 15.0) } else { budget(quick, 600, 10.0) };
        let encoder_fps = media::encoder_fps(codec, &frames, b)?;
        let (e2e_fps, e2e_frames) = media::e2e_fast(addrs, codec, &frames, b).await?;
        let live = media::live(addrs, codec, &frames, Duration::from_secs_f64(live_secs), false).await?;
        let rust = MediaResult {
            codec: codec_name(codec).into(),
            width: w,
            height: h,
            encoder_fps,
            e2e_fps,
            e2e_frames,
            live,
        };
        // Python publishes H.264 only (MediaPublish's libx264); same frames, via a raw file.
        let py: Option<MediaResult> = match python {
            Some(p) if codec == Codec::H264 => {
                let raw = std::env::temp_dir().join(format!("lpgw-bench-{}-{w}x{h}.yuv", std::process::id()));
                media::write_i420(&raw, &frames)?;
                let mut a = clip_args(
                    &["media"],
                    &addrs.channel_url(&format!("py3-{w}x{h}-{}", std::process::id())),
                    &raw,
                    w,
                    h,
                    clip_len,
                );
                a.extend([
                    "--max-frames".into(),
                    b.max_count.to_string(),
                    "--max-seconds".into(),
                    b.max_time.as_secs_f64().to_string(),
                    "--live-seconds".into(),
                    live_secs.to_string(),
                ]);
                let r =
                    p.run(&a, Duration::from_secs(180)).map_err(|e| eprintln!("python media: {e:#}")).ok();
                let _ = std::fs::remove_file(&raw);
                r
            }
            _ => None,
        };
        let label = format!("{} {w}x{h}", rust.codec);
        let overhead =
            |m: &MediaResult| format!("{:.0} %", 100.0 * (1.0 - m.e2e_fps / m.encoder_fps.max(1e-9)));
        fast_rows.push(vec![
            label.clone(),
            format!("{:.0}", rust.encoder_fps),
            format!("{:.0} ({} frames)", rust.e2e_fps, rust.e2e_frames),
            overhead(&rust),
            py.as_ref().map(|p| format!("{:.0}", p.encoder_fps)).unwrap_or("n/a".into()),
            py.as_ref()
                .map(|p| format!("{:.0} ({} frames)", p.e2e_fps, p.e2e_frames))
                .unwrap_or("n/a".into()),
            py.as_ref().map(overhead).unwrap_or("n/a".into()),
            ratio(Some(rust.e2e_fps), py.as_ref().map(|p| p.e2e_fps)),
        ]);
        let lv = |m: &MediaResult| {
            format!(
                "{:.2} core, {:.0} kB in {} seg, {}/{} dropped",
                m.live.cpu_core_share,
                m.live.bytes as f64 / 1e3,
                m.live.segments,
                m.live.frames_dropped,
                m.live.frames_in
            )
        };
        live_rows.push(vec![
            label.clone(),
            lv(&rust),
            py.as_ref().map(lv).unwrap_or("n/a".into()),
            ratio(Some(rust.live.cpu_core_share), py.as_ref().map(|p| p.live.cpu_core_share)),
        ]);
        // The largest H.264 case again with a 48 kHz stereo track (Opus on both sides).
        let widest = cases.iter().filter(|c| c.0 == Codec::H264).map(|c| c.1).max();
        if codec == Codec::H264 && Some(w) == widest {
            let secs = Duration::from_secs_f64(live_secs);
            let rust_av = media::live(addrs, codec, &frames, secs, true).await?;
            let py_av = match python {
                Some(p) => python_live_audio(p, addrs, &frames, w, h, live_secs)?,
                None => None,
            };
            let lva = |l: &media::LiveResult| {
                format!(
                    "{:.2} core, {:.0} kB in {} seg, video {}/{} dropped, audio {}/{} dropped",
                    l.cpu_core_share,
                    l.bytes as f64 / 1e3,
                    l.segments,
                    l.frames_dropped,
                    l.frames_in,
                    l.audio_dropped,
                    l.audio_frames_in
                )
            };
            live_rows.push(vec![
                format!("{label} + 48 kHz stereo Opus"),
                lva(&rust_av),
                py_av.as_ref().map(lva).unwrap_or("n/a".into()),
                ratio(Some(rust_av.cpu_core_share), py_av.as_ref().map(|p| p.cpu_core_share)),
            ]);
        }
    }
    Ok(format!(
        "## Scenario 3: encode and publish the test pattern\n\nAs fast as possible (frames/s):\n\n{}\nLive at 30 fps for {live_secs:.0} s:\n\n{}",
        table(
            &["codec", "Rust encoder only", "Rust end to end", "Rust pipeline overhead", "Python encoder only (libx264)", "Python end to end", "Python pipeline overhead", "Rust/Python e2e fps"],
            &fast_rows
        ),
        table(&["codec", "Rust", "Python", "Rust/Python CPU"], &live_rows)
    ))
}

async fn scenario_select(quick: bool) -> anyhow::Result<String> {
    let total = if quick { 20 } else { 100 };
    let results = select::run_selection(total).await?;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                format!("{} ({} slow, {} dead)", r.orchestrators, r.slow, r.dead),
                r.batch_size.to_string(),
                r.pass.clone(),
                format!("{:.0}", r.ms),
                num(r.chosen_rpc_ms, 1),
                r.candidates.to_string(),
                r.rejections.to_string(),
            ]
        })
        .collect();
    Ok(format!(
        "## Scenario 4: orchestrator selection (per-call timeout {} ms, slow ones answer after 3x that)\n\n{}",
        select::PER_CALL.as_millis(),
        table(&["orchestrators", "calls in flight", "pass", "time to choice ms", "chosen one's RPC ms", "candidates", "rejected"], &rows)
    ))
}

fn scenario_clients(addrs: &ServerAddrs, quick: bool) -> anyhow::Result<String> {
    let chunks = if quick { 10 } else { 20 };
    let mut rows = Vec::new();
    for client in [Client::Reqwest, Client::Awc] {
        let a = clients::arrivals(client, addrs, chunks, Duration::from_millis(50))?;
        let s = clients::segments(client, addrs, budget(quick, 5_000, 3.0))?;
        rows.push(vec![
            client.name().to_owned(),
            format!("{:.1}", a.first_ms),
            format!("{:.1}", a.p50_ms),
            format!("{:.1}", a.max_ms),
            format!("{:.0}", s.segments_per_s()),
            format!("{:.0}", s.mb_per_s()),
        ]);
    }
    Ok(format!(
        "## Scenario 5: HTTP client for the segment writer (HTTP/1.1 plaintext)\n\n{chunks} chunks of 1 KB every 50 ms: delay until the server reads each chunk; then back-to-back 1 MB segments of 64 KiB chunks.\n\n{}",
        table(&["client", "first chunk ms", "p50 ms", "max ms", "1 MB seg/s", "MB/s"], &rows)
    ))
}
