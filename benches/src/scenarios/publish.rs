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
use crate::servers::ServerAddrs;

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
}

/// Bare chunked POSTs of `segment_bytes` to the drain server: the loopback limit.
pub async fn raw_loopback(
    addrs: &ServerAddrs,
    segment_bytes: usize,
    budget: Budget,
) -> anyhow::Result<PublishResult> {
    let http = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build()?;
    let chunks = segment_chunks(segment_bytes, CHUNK);
    let url = addrs.drain_url();
    let started = Instant::now();
    let mut done = 0;
    while done < budget.max_count && started.elapsed() < budget.max_time {
        let body = futures_util::stream::iter(chunks.clone().into_iter().map(Ok::<Bytes, std::io::Error>));
        let resp = http.post(&url).body(reqwest::Body::wrap_stream(body)).send().await?;
        let echoed = resp.text().await?;
        anyhow::ensure!(echoed == segment_bytes.to_string(), "drain server read {echoed} bytes");
        done += 1;
    }
    Ok(PublishResult {
        segment_bytes: segment_bytes as u64,
        segments: done,
        failed: 0,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The SDK's publisher writing `segment_bytes` segments to a fresh trickle channel.
pub async fn trickle_publish(
    addrs: &ServerAddrs,
    segment_bytes: usize,
    budget: Budget,
) -> anyhow::Result<PublishResult> {
    let url = addrs.channel_url(&unique_channel("s1"));
    let http = HttpClients::new(OrchestratorTrust::Insecure)?.orchestrator(&url)?;
    let chunks = segment_chunks(segment_bytes, CHUNK);
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
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
    let stats = publisher.stats();
    tokio::time::timeout(Duration::from_secs(5), publisher.close()).await.ok();
    Ok(PublishResult {
        segment_bytes: segment_bytes as u64,
        segments: stats.segments_completed,
        failed: stats.segments_failed,
        seconds,
    })
}
