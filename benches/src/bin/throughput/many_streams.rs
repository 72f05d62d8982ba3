//! Scenarios 2 and 6: many concurrent streams, and lagging subscribers, each count in a
//! worker process of its own so CPU and memory figures are that run's alone.

use std::path::Path;
use std::time::Duration;

use benches::python::PythonSide;
use benches::report::{num, ratio, table, write_chart};
use benches::scenarios::lagging::{self, LaggingClient, LaggingResult};
use benches::scenarios::streams::{self, StreamsResult};
use benches::servers::ServerProcess;

use super::{run_json, run_size_args, Args};

pub(crate) fn scenario_streams(
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
        let mut worker_args = vec!["--worker-streams".to_owned(), addrs.trickle_base()];
        worker_args.extend(run_size_args(n, warmup, window));
        worker_args.extend(["--runtime".to_owned(), args.runtime.name().into()]);
        measure(n, "Rust", &mut || match run_json::<StreamsResult>(exe, &worker_args, timeout) {
            Ok(r) => rust.push(r),
            Err(e) => notes.push_str(&format!("- Rust, {n} streams: failed: {e:#}\n")),
        });
        if let Some(p) = python {
            let mut a = vec!["streams".to_owned(), "--base".into(), addrs.trickle_base()];
            a.extend(run_size_args(n, warmup, window));
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

pub(crate) fn worker_streams(base: &str, args: &Args) -> anyhow::Result<()> {
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

pub(crate) fn worker_lagging(base: &str, client: LaggingClient, n: u64) -> anyhow::Result<()> {
    anyhow::ensure!(base.starts_with("http://127.0.0.1:"), "only 127.0.0.1 is allowed");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(lagging::run_lagging(base, n.clamp(1, 2000), client))?;
    println!("{}", serde_json::to_string(&result)?);
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// Scenario 6: the subscriber's memory behind a backlog, bounded client against reqwest, each
/// in its own worker process.
pub(crate) fn scenario_lagging(exe: &Path, server: &ServerProcess, args: &Args) -> anyhow::Result<String> {
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
