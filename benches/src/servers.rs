//! The server side of every scenario, run in a child process (`throughput --serve`) so its CPU
//! time and memory are not counted as the client's:
//! - the testkit's [`TrickleServer`] (autocreate on), which both SDKs publish to;
//! - a bare hyper HTTP/1.1 server that drains request bodies: the loopback limit;
//! - on the same port, `POST /arrivals`: a body of fixed-size records, each starting with the
//!   sender's CLOCK_MONOTONIC nanoseconds, answered with the arrival delay of every record
//!   (scenario 5's "when does a small chunk reach the server").
//!
//! - on the trickle port, the trickle server's admin API (faults and per-channel totals, see
//!   `TrickleServer::admin_router`) and `GET /admin/connections`, the open connections of that
//!   port (the soak's fault injection and leak checks).
//!
//! - with `--serve-network`, a local network instead (orchestrator, signer, workers) for the
//!   scenarios that run jobs ([`run_network_child`]).
//!
//! The child prints one JSON line with its addresses, then serves until its stdin closes, so
//! it never outlives the runner.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::serve::{serve, ConnectionGauge};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::sys::{mono_ns, raise_fd_limit};

/// Size of one timestamped record sent to `/arrivals`.
pub const ARRIVAL_RECORD: usize = 1000;
/// Path of the arrival-delay endpoint on the drain server.
pub const ARRIVALS_PATH: &str = "/arrivals";
/// Path of the open-connection count on the trickle port.
pub const CONNECTIONS_PATH: &str = "/admin/connections";

/// The addresses the server child announces.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerAddrs {
    /// The trickle server (`http://{trickle}/ai/trickle/{channel}`).
    pub trickle: SocketAddr,
    /// The bare drain server (any path drains; `/arrivals` reports delays).
    pub drain: SocketAddr,
}

impl ServerAddrs {
    /// URL of trickle channel `name`.
    pub fn channel_url(&self, name: &str) -> String {
        format!("http://{}/ai/trickle/{name}", self.trickle)
    }

    /// Base URL of every channel (`{base}{name}`).
    pub fn trickle_base(&self) -> String {
        format!("http://{}/ai/trickle/", self.trickle)
    }

    /// URL of the drain endpoint.
    pub fn drain_url(&self) -> String {
        format!("http://{}/drain", self.drain)
    }

    /// URL of the arrival-delay endpoint.
    pub fn arrivals_url(&self) -> String {
        format!("http://{}{ARRIVALS_PATH}", self.drain)
    }
}

/// Runs the servers until stdin reaches end of file (the `--serve` mode of the runner).
pub fn run_server_child() -> anyhow::Result<()> {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        // Channels of finished runs are deleted by their publishers; the idle sweep is a
        // backstop for ones abandoned by a crashed worker.
        let config = TrickleConfig {
            autocreate: true,
            idle_timeout: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(10),
        };
        let trickle = TrickleServer::new(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let gauge: Arc<OnceLock<ConnectionGauge>> = Arc::default();
        let connections = {
            let gauge = gauge.clone();
            move || std::future::ready(gauge.get().map_or(0, ConnectionGauge::get).to_string())
        };
        let app = trickle
            .router()
            .merge(trickle.admin_router())
            .route(CONNECTIONS_PATH, axum::routing::get(connections));
        let handle = serve(listener, app, None);
        let _ = gauge.set(handle.connection_gauge());
        let drain = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addrs = ServerAddrs { trickle: handle.addr, drain: drain.local_addr()? };
        tokio::spawn(run_drain_server(drain));
        println!("{}", serde_json::to_string(&addrs)?);
        // Serve until the parent closes our stdin (or dies).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        trickle.shutdown();
        Ok(())
    })
}

/// The local network's addresses, as the network child announces them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkAddrs {
    /// The orchestrator (plain HTTP).
    pub orchestrator: String,
    /// Its remote signer.
    pub signer: String,
}

/// Runs a local network (one orchestrator without TLS, its signer, BYOC workers that pass
/// video from input to output) until stdin closes: the `--serve-network` mode of the runner.
/// Its BYOC offer takes `capacity` streams.
pub fn run_network_child(capacity: u32) -> anyhow::Result<()> {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
        for offer in &mut config.orchestrator.offers {
            offer.capacity = offer.capacity.max(capacity);
        }
        let net = LocalNetwork::start(config).await?;
        let addrs =
            NetworkAddrs { orchestrator: net.orchestrator_urls()[0].clone(), signer: net.signer_url() };
        println!("{}", serde_json::to_string(&addrs)?);
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        net.shutdown().await;
        Ok(())
    })
}

async fn run_drain_server(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(drain_request);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn drain_request(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let timestamps = req.uri().path() == ARRIVALS_PATH;
    let mut body = req.into_body();
    let mut total: u64 = 0;
    // Only the first 8 bytes of each record matter: keep the partial header across frames.
    let mut header = Vec::with_capacity(8);
    let mut delays_us: Vec<f64> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Ok(data) = frame.into_data() else { continue };
        if timestamps {
            let now = mono_ns();
            for (i, byte) in data.iter().enumerate() {
                let offset = (total as usize + i) % ARRIVAL_RECORD;
                if offset < 8 {
                    header.push(*byte);
                    if header.len() == 8 {
                        let sent = u64::from_le_bytes(header[..8].try_into().unwrap_or([0; 8]));
                        delays_us.push(now.saturating_sub(sent) as f64 / 1e3);
                        header.clear();
                    }
                }
            }
        }
        total += data.len() as u64;
    }
    let reply = if timestamps {
        serde_json::to_vec(&delays_us).unwrap_or_default()
    } else {
        total.to_string().into_bytes()
    };
    Ok(Response::new(Full::new(Bytes::from(reply))))
}

/// The running server child; dropping it closes its stdin and reaps it.
pub type ServerProcess = ChildProcess<ServerAddrs>;

/// A child process that announces its addresses as one JSON line on stdout. Dropping it
/// closes its stdin (the runner's own children then exit) and reaps it, killing it after 5 s,
/// or at once when it was started without a stdin pipe.
#[derive(Debug)]
pub struct ChildProcess<A> {
    /// Its addresses.
    pub addrs: A,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl ServerProcess {
    /// Starts `exe --serve` and waits (at most 20 s) for its addresses.
    pub fn spawn(exe: &std::path::Path) -> anyhow::Result<ServerProcess> {
        let mut command = Command::new(exe);
        command.arg("--serve").stdin(Stdio::piped());
        ChildProcess::start(command, "the server child")
    }
}

impl<A: serde::de::DeserializeOwned> ChildProcess<A> {
    /// Runs `command` (its stdout piped) and waits at most 20 s for its announcement.
    pub fn start(mut command: Command, what: &str) -> anyhow::Result<ChildProcess<A>> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout from {what}"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                bail!("{what} did not announce its addresses within 20 s");
            }
        };
        let addrs: A = serde_json::from_str(line.trim())
            .with_context(|| format!("bad announcement from {what}: {line:?}"))?;
        Ok(ChildProcess { addrs, child, stdin })
    }
}

impl<A> ChildProcess<A> {
    /// The child's process id (for CPU readings from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds the child has used so far (from /proc; NaN if unreadable).
    pub fn cpu_seconds(&self) -> f64 {
        proc_cpu_seconds(self.child.id()).unwrap_or(f64::NAN)
    }
}

/// utime + stime of process `pid` from `/proc/{pid}/stat`.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    Some((utime + stime) / ticks)
}

impl<A> Drop for ChildProcess<A> {
    fn drop(&mut self) {
        let deadline = match self.stdin.take() {
            Some(stdin) => {
                drop(stdin);
                Instant::now() + Duration::from_secs(5)
            }
            None => Instant::now(),
        };
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
