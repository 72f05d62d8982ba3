//! Scenario 7: live BYOC streams through a `livepeer-gateway serve` node against the same
//! streams run by the SDK alone, on one local network (an orchestrator whose worker passes
//! each stream's input to its output).
//!
//! - [`RelayPath::Sdk`]: this process embeds the SDK, starts the jobs (selection, payments)
//!   and publishes to and reads from the orchestrator's channels itself.
//! - [`RelayPath::Serve`]: this process is a plain trickle client of the node: it starts each
//!   stream with `POST /process/stream/start` and publishes to and reads from the node's
//!   channels, which the node relays to the orchestrator's while it pays.
//!
//! Both measure with scenario 2's streams (1 Mbps, latency from handing a chunk to the
//! publisher until the subscriber reads it back), so the difference between the paths is what
//! the node adds: two more hops of latency, and the node's CPU against the SDK process's.
//! Each run is a worker process of its own (`throughput --worker-relay`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_actors::http::HttpClients;
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::{ByocJob, ByocJobRequest, Gateway, GatewayConfig};
use gateway_core::gateway_api::{GatewayStreamUrls, STREAM_START_PATH};
use gateway_core::jobs::{JobRequest, HEADER_JOB};
use gateway_core::token::NetworkSettings;
use gateway_testkit::workers::TEXT_REVERSAL;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::streams::{measure_streams, MediaPair, StreamsResult, Timing};
use crate::sys::raise_fd_limit;

/// Streams started or stopped at once.
const CONCURRENT_CALLS: usize = 16;
/// Bound on one start or stop.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The `timeout_seconds` of each job (go requires one).
const JOB_TIMEOUT_SECONDS: u32 = 60;

/// Which way the streams go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RelayPath {
    /// The SDK in this process, straight to the orchestrator.
    Sdk,
    /// Through a `serve` node.
    Serve,
}

/// Where a relay run points.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayTarget {
    /// Which way the streams go.
    pub path: RelayPath,
    /// The orchestrator.
    pub orchestrator: String,
    /// Its signer.
    pub signer: String,
    /// The node's base URL (`Serve`).
    pub serve_url: Option<String>,
    /// The node's process id (`Serve`), for its CPU over the window.
    pub serve_pid: Option<u32>,
    /// The network child's process id, for its CPU over the window.
    pub network_pid: u32,
    /// Prefix of the stream ids (unique per run).
    pub prefix: String,
}

/// What one relay run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayResult {
    /// Which way the streams went.
    pub path: RelayPath,
    /// The streams' figures; `watched_cpu_s` is the network child's, then (`Serve`) the node's.
    pub streams: StreamsResult,
    /// Seconds to start every stream.
    pub start_s: f64,
    /// Starts that failed, by reason.
    pub start_errors: BTreeMap<String, u64>,
    /// Stops that failed, by reason.
    pub stop_failures: BTreeMap<String, u64>,
}

impl RelayResult {
    /// CPU cores the network child used over the window.
    pub fn network_cores(&self) -> Option<f64> {
        self.watched_cores(0)
    }

    /// CPU cores the node used over the window (`Serve`).
    pub fn serve_cores(&self) -> Option<f64> {
        self.watched_cores(1)
    }

    /// CPU cores this worker used over the window.
    pub fn client_cores(&self) -> f64 {
        self.streams.cpu_s / self.streams.window_s
    }

    fn watched_cores(&self, i: usize) -> Option<f64> {
        let cpu = *self.streams.watched_cpu_s.get(i)?;
        cpu.is_finite().then(|| cpu / self.streams.window_s)
    }
}

/// Starts `n` streams the way `target.path` says, measures them for `timing`, stops them.
pub async fn run_relay(target: &RelayTarget, n: u64, timing: Timing) -> anyhow::Result<RelayResult> {
    raise_fd_limit();
    let clients = HttpClients::new(OrchestratorTrust::Insecure)?;
    let ids: Vec<String> = (0..n).map(|i| format!("{}-{i}", target.prefix)).collect();
    match target.path {
        RelayPath::Sdk => {
            let network = NetworkSettings {
                orchestrators: vec![target.orchestrator.clone()],
                signer: Some(target.signer.clone()),
                ..Default::default()
            };
            let gateway = Gateway::start(GatewayConfig { network, ..Default::default() })?;
            let Started { ok: jobs, errors: start_errors, seconds: start_s } =
                start_all(ids, |id| start_job(&gateway, id)).await?;
            let pairs = jobs
                .iter()
                .filter_map(|j| {
                    Some(MediaPair {
                        publish: j.urls.publish_url.clone()?,
                        subscribe: j.urls.subscribe_url.clone()?,
                    })
                })
                .collect();
            let http = jobs[0].orchestrator_client();
            let stop_failures = StopFailures::default();
            let stop_all = async {
                futures_util::stream::iter(jobs)
                    .for_each_concurrent(CONCURRENT_CALLS, |job| async {
                        match tokio::time::timeout(CALL_TIMEOUT, job.stop()).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => stop_failures.add(e.to_string()),
                            Err(_) => stop_failures.add(format!("no answer in {CALL_TIMEOUT:?}")),
                        }
                    })
                    .await;
            };
            let watched = [target.network_pid];
            let streams =
                measure_streams(pairs, http, clients.segment_reader(), timing, &watched, stop_all).await;
            gateway.shutdown();
            Ok(RelayResult {
                path: RelayPath::Sdk,
                streams,
                start_s,
                start_errors,
                stop_failures: stop_failures.into_counts(),
            })
        }
        RelayPath::Serve => {
            let base = target.serve_url.clone().ok_or_else(|| anyhow::anyhow!("no node URL"))?;
            let http = clients.orchestrator(&base)?;
            let Started { ok: streams, errors: start_errors, seconds: start_s } =
                start_all(ids, |id| start_through_node(&http, &base, id)).await?;
            let pairs = streams
                .iter()
                .map(|u| MediaPair {
                    publish: u.trickle_publish_url.clone(),
                    subscribe: u.trickle_subscribe_url.clone(),
                })
                .collect();
            let stop_failures = StopFailures::default();
            let stop_all = async {
                futures_util::stream::iter(&streams)
                    .for_each_concurrent(CONCURRENT_CALLS, |urls| async {
                        match http.post(&urls.stop_url).timeout(CALL_TIMEOUT).send().await {
                            Ok(r) if r.status().is_success() => {}
                            Ok(r) => stop_failures.add(format!("HTTP {}", r.status().as_u16())),
                            Err(e) => stop_failures.add(gateway_actors::http::describe(&e)),
                        }
                    })
                    .await;
            };
            let watched = [target.network_pid, target.serve_pid.unwrap_or(0)];
            let result =
                measure_streams(pairs, http.clone(), clients.segment_reader(), timing, &watched, stop_all)
                    .await;
            Ok(RelayResult {
                path: RelayPath::Serve,
                streams: result,
                start_s,
                start_errors,
                stop_failures: stop_failures.into_counts(),
            })
        }
    }
}

/// Stops that failed, counted by reason (stops run concurrently).
#[derive(Default)]
struct StopFailures(std::sync::Mutex<BTreeMap<String, u64>>);

impl StopFailures {
    fn add(&self, reason: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(reason).or_insert(0) += 1;
    }

    fn into_counts(self) -> BTreeMap<String, u64> {
        self.0.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// What starting every stream gave.
struct Started<T> {
    /// The streams that started.
    ok: Vec<T>,
    /// Starts that failed, by reason.
    errors: BTreeMap<String, u64>,
    /// Seconds it took.
    seconds: f64,
}

/// Starts a stream per id with `start`, [`CONCURRENT_CALLS`] at a time; an error if none
/// started.
async fn start_all<T, F, Fut>(ids: Vec<String>, start: F) -> anyhow::Result<Started<T>>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let t0 = Instant::now();
    let results: Vec<Result<T, String>> =
        futures_util::stream::iter(ids).map(start).buffer_unordered(CONCURRENT_CALLS).collect().await;
    let mut started =
        Started { ok: Vec::new(), errors: BTreeMap::new(), seconds: t0.elapsed().as_secs_f64() };
    for result in results {
        match result {
            Ok(stream) => started.ok.push(stream),
            Err(why) => *started.errors.entry(why.chars().take(100).collect()).or_insert(0) += 1,
        }
    }
    anyhow::ensure!(!started.ok.is_empty(), "no stream started: {:?}", started.errors);
    Ok(started)
}

/// The BYOC job every stream runs: video in and out through the worker.
fn byoc_request(id: String) -> ByocJobRequest {
    ByocJobRequest {
        stream_id: Some(id),
        enable_video_ingress: true,
        enable_video_egress: true,
        timeout_seconds: JOB_TIMEOUT_SECONDS,
        ..ByocJobRequest::new(TEXT_REVERSAL)
    }
}

async fn start_job(gateway: &Gateway, id: String) -> Result<ByocJob, String> {
    match tokio::time::timeout(CALL_TIMEOUT, gateway.start_byoc_job(byoc_request(id))).await {
        Ok(Ok(job)) => Ok(job),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the start timed out".into()),
    }
}

/// `POST {base}/process/stream/start` with go's `Livepeer` header, as a client of go's
/// gateway starts a stream.
async fn start_through_node(
    http: &reqwest::Client,
    base: &str,
    id: String,
) -> Result<GatewayStreamUrls, String> {
    let parameters = serde_json::json!({"enable_video_ingress": true, "enable_video_egress": true});
    let job = JobRequest {
        capability: TEXT_REVERSAL.into(),
        request: "{}".into(),
        parameters: parameters.to_string(),
        timeout_seconds: JOB_TIMEOUT_SECONDS,
        ..Default::default()
    };
    let answer = http
        .post(format!("{}{STREAM_START_PATH}", base.trim_end_matches('/')))
        .header(HEADER_JOB, job.to_header())
        .json(&serde_json::json!({"stream_id": id}))
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| gateway_actors::http::describe(&e))?;
    let status = answer.status();
    if !status.is_success() {
        let body = answer.text().await.unwrap_or_default();
        return Err(format!("{status}: {}", body.trim()));
    }
    answer.json().await.map_err(|e| format!("the start's answer: {e}"))
}
