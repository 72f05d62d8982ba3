//! Scenario 7: live streams through a `livepeer-gateway serve` node against the SDK alone
//! (`benches::scenarios::relay`). Four processes, so each CPU figure is one party's: the local
//! network (`--serve-network`), the node (the `livepeer-gateway` binary beside this one, or
//! `--gateway-exe`), and one worker per run (`--worker-relay`) that is the SDK process or the
//! node's client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use benches::report::{num, ratio, table};
use benches::scenarios::relay::{self, RelayPath, RelayResult, RelayTarget};
use benches::scenarios::streams::Timing;
use benches::servers::{ChildProcess, NetworkAddrs};
use serde::Deserialize;

use super::{run_json, run_size_args, Args};

/// The name of the node's binary.
const GATEWAY_BINARY: &str = "livepeer-gateway";

/// What `serve --json` prints first.
#[derive(Debug, Deserialize)]
struct NodeAnnouncement {
    listen: String,
}

/// The node's binary: `--gateway-exe`, else the one built beside this runner.
fn gateway_exe(exe: &Path, args: &Args) -> anyhow::Result<PathBuf> {
    let path = match &args.gateway_exe {
        Some(p) => p.clone(),
        None => exe.with_file_name(GATEWAY_BINARY),
    };
    anyhow::ensure!(
        path.is_file(),
        "no node binary at {} (build it with `cargo build --release -p livepeer-gateway`, or pass --gateway-exe)",
        path.display()
    );
    Ok(path)
}

/// Starts a node on `net`, its logs at `warn` (a line per stream at `info`).
fn start_node(
    gateway: &Path,
    net: &NetworkAddrs,
    threads: Option<u16>,
) -> anyhow::Result<ChildProcess<NodeAnnouncement>> {
    let mut command = Command::new(gateway);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--json", "--orchestrator", &net.orchestrator])
        .args(["--signer", &net.signer])
        .args(threads.map(|n| format!("--threads={n}")))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    ChildProcess::start(command, "the serve node")
}

pub(crate) fn scenario_through_serve(exe: &Path, args: &Args) -> anyhow::Result<String> {
    let gateway = gateway_exe(exe, args)?;
    let counts: Vec<u64> = if !args.streams.is_empty() {
        args.streams.clone()
    } else if args.quick {
        vec![5]
    } else {
        vec![100, 500]
    };
    let (warmup, window) = if args.quick { (1.0, 2.0) } else { (args.warmup, args.window) };
    let capacity = counts.iter().copied().max().unwrap_or(1).clamp(1, 5000) as u32;
    let mut command = Command::new(exe);
    command.args(["--serve-network", &capacity.to_string()]).stdin(Stdio::piped());
    let network: ChildProcess<NetworkAddrs> = ChildProcess::start(command, "the network child")?;
    let timeout = Duration::from_secs_f64(warmup + window + 150.0);
    let mut results: Vec<(u64, RelayResult)> = Vec::new();
    let mut notes = String::new();
    for &n in &counts {
        let n = n.clamp(1, 5000);
        for (round, path) in (0..args.rounds).flat_map(|r| [(r, RelayPath::Sdk), (r, RelayPath::Serve)]) {
            let node = match path {
                RelayPath::Serve => Some(start_node(&gateway, &network.addrs, args.node_threads)?),
                RelayPath::Sdk => None,
            };
            let target = RelayTarget {
                path,
                orchestrator: network.addrs.orchestrator.clone(),
                signer: network.addrs.signer.clone(),
                serve_url: node.as_ref().map(|n| n.addrs.listen.clone()),
                serve_pid: node.as_ref().map(ChildProcess::pid),
                network_pid: network.pid(),
                prefix: format!("s7-{}-{n}-{round}-{}", path_name(path), std::process::id()),
            };
            let mut worker_args = vec!["--worker-relay".to_owned(), serde_json::to_string(&target)?];
            worker_args.extend(run_size_args(n, warmup, window));
            match run_json::<RelayResult>(exe, &worker_args, timeout) {
                Ok(r) => results.push((n, r)),
                Err(e) => notes.push_str(&format!("- {}, {n} streams: failed: {e:#}\n", path_label(path))),
            }
        }
    }
    if let Some(n) = args.node_threads {
        notes.push_str(&format!("- the node ran with `--threads {n}`\n"));
    }
    Ok(report(&counts, &results, warmup, window, notes))
}

/// `--worker-relay TARGET`: one run, its result printed as a JSON line.
pub(crate) fn worker_relay(target: &str, args: &Args) -> anyhow::Result<()> {
    let target: RelayTarget = serde_json::from_str(target)?;
    for url in
        [Some(&target.orchestrator), Some(&target.signer), target.serve_url.as_ref()].into_iter().flatten()
    {
        anyhow::ensure!(url.starts_with("http://127.0.0.1:"), "only 127.0.0.1 is allowed: {url}");
    }
    let n = args.streams.first().copied().unwrap_or(10).clamp(1, 5000);
    let timing = Timing {
        warmup: Duration::from_secs_f64(args.warmup.clamp(0.0, 60.0)),
        window: Duration::from_secs_f64(args.window.clamp(0.5, 120.0)),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(relay::run_relay(&target, n, timing))?;
    println!("{}", serde_json::to_string(&result)?);
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The median of sorted `values` (not empty).
fn median(values: &[f64]) -> f64 {
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

fn path_name(path: RelayPath) -> &'static str {
    match path {
        RelayPath::Sdk => "sdk",
        RelayPath::Serve => "serve",
    }
}

fn path_label(path: RelayPath) -> &'static str {
    match path {
        RelayPath::Sdk => "SDK alone",
        RelayPath::Serve => "through serve",
    }
}

fn report(
    counts: &[u64],
    results: &[(u64, RelayResult)],
    warmup: f64,
    window: f64,
    mut notes: String,
) -> String {
    // The runs of `n` streams on `path`, in the order they ran.
    let runs = |n: u64, path| results.iter().filter(move |(m, r)| *m == n && r.path == path).map(|(_, r)| r);
    let mut rows = Vec::new();
    let mut cost = Vec::new();
    for &n in counts {
        for r in results.iter().filter(|(m, _)| *m == n).map(|(_, r)| r) {
            let path = r.path;
            let s = &r.streams;
            let (gateway, client) = match path {
                RelayPath::Sdk => (Some(r.client_cores()), None),
                RelayPath::Serve => (r.serve_cores(), Some(r.client_cores())),
            };
            let delivered = 100.0 * s.chunks_received as f64 / s.chunks_sent.max(1) as f64;
            rows.push(vec![
                n.to_string(),
                path_label(path).into(),
                format!("{} / {:.1}", s.streams, r.start_s),
                num(gateway, 3),
                num(client, 3),
                num(r.network_cores(), 3),
                num(s.p50_ms, 1),
                num(s.p99_ms, 1),
                format!("{delivered:.1} % / {} / {}", s.segments_failed, s.subscriber_errors),
            ]);
            for (why, count) in &r.start_errors {
                notes.push_str(&format!(
                    "- {}, {n} streams: {count} start(s) failed: {why}\n",
                    path_label(path)
                ));
            }
            for (why, count) in &r.stop_failures {
                notes.push_str(&format!(
                    "- {}, {n} streams: {count} stop(s) failed: {why}\n",
                    path_label(path)
                ));
            }
            for (kind, count) in &s.subscriber_error_kinds {
                notes.push_str(&format!(
                    "- {}, {n} streams: {count} subscriber(s) stopped: {kind}\n",
                    path_label(path)
                ));
            }
        }
        // Each round's serve run against the SDK run just before it.
        let mut ratios = Vec::new();
        for (sdk, node) in runs(n, RelayPath::Sdk).zip(runs(n, RelayPath::Serve)) {
            let added = node.streams.p99_ms.zip(sdk.streams.p99_ms).map(|(a, b)| a - b);
            let both = node.serve_cores().map(|c| c + node.client_cores());
            ratios.extend(node.serve_cores().map(|c| c / sdk.client_cores()).filter(|r| r.is_finite()));
            cost.push(vec![
                n.to_string(),
                num(added, 1),
                ratio(node.serve_cores(), Some(sdk.client_cores())),
                num(node.serve_cores().map(|c| c - sdk.client_cores()), 3),
                ratio(both, Some(sdk.client_cores())),
            ]);
        }
        if ratios.len() > 1 {
            ratios.sort_by(f64::total_cmp);
            notes.push_str(&format!(
                "- {n} streams, {} rounds: node / SDK process CPU median {:.2} (from {:.2} to {:.2})\n",
                ratios.len(),
                median(&ratios),
                ratios[0],
                ratios[ratios.len() - 1],
            ));
        }
    }
    format!(
        "## Scenario 7: BYOC streams through `serve` against the SDK alone (video in and out through the orchestrator's worker, 1 Mbps each; {warmup:.0} s warm-up, {window:.0} s measured)\n\n{}\nWhat the node adds:\n\n{}\n{notes}",
        table(
            &["streams", "path", "started / start s", "gateway cores (SDK process or node)", "node's client cores", "orchestrator cores", "p50 ms", "p99 ms", "delivered / failed segs / sub errors"],
            &rows
        ),
        table(
            &["streams", "p99 added ms", "node / SDK process CPU", "node - SDK process cores", "(node + its client) / SDK process CPU"],
            &cost
        ),
    )
}
