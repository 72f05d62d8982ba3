//! Scenario 1: one stream publishing back-to-back segments (1 MB of 64 KiB chunks, and 10 KB
//! in one chunk) as fast as the server takes them, next to the loopback limit measured the
//! same way with a bare reqwest POST against a bare hyper server that drains the body.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use gateway_actors::http::HttpClients;
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{PublisherConfig, TricklePublisher};
use serde::{Deserialize, Serialize};

use super::{segment_chunks, unique_channel, Budget, CHUNK};
use crate::servers::{proc_cpu_seconds, ServerAddrs};
use crate::sys::{cpu_seconds, quantile, sort_samples};

/// CPU seconds of this process and of the server child since `start`.
struct CpuMeter {
    server_pid: u32,
    client0: f64,
    server0: f64,
}

impl CpuMeter {
    fn start(server_pid: u32) -> Self {
        Self { server_pid, client0: cpu_seconds(), server0: proc_cpu_seconds(server_pid).unwrap_or(f64::NAN) }
    }

    /// `(client, server)` CPU seconds so far (the server's is NaN if /proc cannot be read).
    fn stop(&self) -> (f64, f64) {
        let server = proc_cpu_seconds(self.server_pid).unwrap_or(f64::NAN);
        (cpu_seconds() - self.client0, server - self.server0)
    }
}

/// Segments moved in a time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublishResult {
    /// Segment size in bytes.
    pub segment_bytes: u64,
    /// Segments the server confirmed.
    pub segments: u64,
    /// Segments that failed.
    pub failed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// CPU seconds (user + system) of the publishing process over the cell; 0 when not measured.
    #[serde(default)]
    pub client_cpu_s: f64,
    /// CPU seconds of the server child over the cell; 0 when not measured.
    #[serde(default)]
    pub server_cpu_s: f64,
}

impl PublishResult {
    /// Megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.segments as f64 * self.segment_bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    /// Segments per second.
    pub fn segments_per_s(&self) -> f64 {
        self.segments as f64 / self.seconds.max(1e-9)
    }

    /// CPU seconds per GB (10^9 bytes) moved: `(client, server)`.
    pub fn cpu_s_per_gb(&self) -> (f64, f64) {
        let gb = (self.segments as f64 * self.segment_bytes as f64 / 1e9).max(1e-12);
        (self.client_cpu_s / gb, self.server_cpu_s / gb)
    }
}

/// Bare chunked POSTs of `segment_bytes` to the drain server: the loopback limit.
pub async fn raw_loopback(
    addrs: &ServerAddrs,
    server_pid: u32,
    segment_bytes: usize,
    budget: Budget,
) -> anyhow::Result<PublishResult> {
    let http = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build()?;
    let chunks = segment_chunks(segment_bytes, CHUNK);
    let url = addrs.drain_url();
    let cpu = CpuMeter::start(server_pid);
    let started = Instant::now();
    let mut done = 0;
    while done < budget.max_count && started.elapsed() < budget.max_time {
        let body = futures_util::stream::iter(chunks.clone().into_iter().map(Ok::<Bytes, std::io::Error>));
        let resp = http.post(&url).body(reqwest::Body::wrap_stream(body)).send().await?;
        let echoed = resp.text().await?;
        anyhow::ensure!(echoed == segment_bytes.to_string(), "drain server read {echoed} bytes");
        done += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (client_cpu_s, server_cpu_s) = cpu.stop();
    Ok(PublishResult {
        segment_bytes: segment_bytes as u64,
        segments: done,
        failed: 0,
        seconds,
        client_cpu_s,
        server_cpu_s,
    })
}

/// Where the SDK's publisher sends its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishTo {
    /// A fresh channel on the trickle server (which stores every chunk for readers).
    TrickleServer,
    /// The bare drain server, which reads each POST and answers 200: the same server as the
    /// loopback limit, so only the client differs.
    DrainServer,
}

/// The SDK's publisher writing `segment_bytes` segments to `to`.
pub async fn trickle_publish(
    addrs: &ServerAddrs,
    to: PublishTo,
    server_pid: u32,
    segment_bytes: usize,
    budget: Budget,
) -> anyhow::Result<PublishResult> {
    let url = match to {
        PublishTo::TrickleServer => addrs.channel_url(&unique_channel("s1")),
        PublishTo::DrainServer => format!("{}/{}", addrs.drain_url(), unique_channel("s1")),
    };
    let http = HttpClients::new(OrchestratorTrust::Insecure)?.orchestrator(&url)?;
    let chunks = segment_chunks(segment_bytes, CHUNK);
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    let cpu = CpuMeter::start(server_pid);
    let started = Instant::now();
    let mut attempts = 0;
    while attempts < budget.max_count && started.elapsed() < budget.max_time {
        attempts += 1;
        let mut sink = publisher.next_segment().context("next segment")?;
        for chunk in &chunks {
            if sink.write(chunk.clone()).await.is_err() {
                break;
            }
        }
        if sink.has_failed() {
            continue;
        }
        let _ = sink.finish().await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (client_cpu_s, server_cpu_s) = cpu.stop();
    let stats = publisher.stats();
    tokio::time::timeout(Duration::from_secs(5), publisher.close()).await.ok();
    Ok(PublishResult {
        segment_bytes: segment_bytes as u64,
        segments: stats.segments_completed,
        failed: stats.segments_failed,
        seconds,
        client_cpu_s,
        server_cpu_s,
    })
}

// Reading the rounds of scenario 1.

/// The result with the median of `key` (the upper one of an even count).
pub fn median_by(results: &[PublishResult], key: fn(&PublishResult) -> f64) -> PublishResult {
    let mut sorted = results.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len() / 2).cloned().unwrap_or_default()
}

/// The median of per-round percentages, with their range when there were several rounds.
pub fn percent_cell(mut percents: Vec<f64>, rounds: u32) -> String {
    sort_samples(&mut percents);
    match (percents.first(), quantile(&percents, 0.5), percents.last()) {
        (Some(lo), Some(mid), Some(hi)) if rounds > 1 => {
            format!("{mid:.0} % ({lo:.0}-{hi:.0} %, {rounds} rounds)")
        }
        (_, Some(mid), _) => format!("{mid:.0} %"),
        _ => "n/a".into(),
    }
}

/// One line per segment size: CPU seconds per GB moved, client and server child, medians over
/// the rounds, so a throughput gap can be told apart as client cost or server cost.
pub fn cpu_per_gb_note(
    label: &str,
    raws: &[PublishResult],
    rusts: &[PublishResult],
    drained: &[PublishResult],
) -> String {
    let median = |results: &[PublishResult], pick: fn((f64, f64)) -> f64| {
        let mut v: Vec<f64> = results.iter().map(|r| pick(r.cpu_s_per_gb())).collect();
        sort_samples(&mut v);
        quantile(&v, 0.5).unwrap_or(f64::NAN)
    };
    let (raw_c, raw_s) = (median(raws, |c| c.0), median(raws, |c| c.1));
    let (rust_c, rust_s) = (median(rusts, |c| c.0), median(rusts, |c| c.1));
    let drained_c = median(drained, |c| c.0);
    format!(
        "- {label}, CPU s per GB (medians): client {raw_c:.2} bare reqwest vs {drained_c:.2} TricklePublisher \
         to the same bare hyper ({:.2}x), {rust_c:.2} to the trickle server; server {raw_s:.2} drain vs \
         {rust_s:.2} trickle server ({:.2}x)\n",
        drained_c / raw_c,
        rust_s / raw_s
    )
}
