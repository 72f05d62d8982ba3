//! Scenario 2: N concurrent live streams at 1 Mbps (one 1 s segment of 8 writes of 15,625
//! bytes each), each read back by its own subscriber, for a bounded time. Measured over a
//! window after a warm-up: client CPU seconds per stream-minute, peak RSS, and the latency from
//! handing a chunk to the writer to the subscriber receiving its first bytes (every chunk
//! starts with its CLOCK_MONOTONIC send time, read back in the same process).
//!
//! It runs in a worker process of its own (`throughput --worker-streams`), so CPU time and peak
//! RSS belong to this N alone; the Python side (`trickle_bench.py streams`) does the same.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use gateway_actors::http::HttpClients;
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{
    PublisherConfig, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};
use gateway_core::trickle::SeqSpec;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::servers::proc_cpu_seconds;
use crate::sys::{cpu_seconds, mono_ns, peak_rss_kib, quantile, raise_fd_limit, sort_samples};

/// Writes per 1 s segment.
pub const WRITES_PER_SEGMENT: u32 = 8;
/// Bytes per write: 1 Mbit/s = 125,000 bytes/s = 8 x 15,625.
pub const WRITE_BYTES: usize = 15_625;
/// Segment duration.
pub const SEGMENT: Duration = Duration::from_secs(1);

/// What one run at N streams measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StreamsResult {
    /// Concurrent streams (each a publisher and a subscriber).
    pub streams: u64,
    /// Length of the measurement window in seconds.
    pub window_s: f64,
    /// CPU seconds (user + system) of the whole process during the window.
    pub cpu_s: f64,
    /// `cpu_s / (streams * window / 60)`.
    pub cpu_s_per_stream_minute: f64,
    /// Peak RSS of the process over the whole run, MiB.
    pub peak_rss_mib: f64,
    /// Median write-to-read latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Chunks written during the window.
    pub chunks_sent: u64,
    /// Chunks of the window the subscribers received.
    pub chunks_received: u64,
    /// Segments that failed on the publishing side.
    pub segments_failed: u64,
    /// Subscribers that stopped with an error.
    pub subscriber_errors: u64,
    /// Seconds from start until the last stream began publishing.
    pub ramp_s: f64,
    /// Why subscribers stopped with an error, with counts.
    #[serde(default)]
    pub subscriber_error_kinds: BTreeMap<String, u64>,
    /// CPU seconds over the window of each watched process (see [`measure_streams`]).
    #[serde(default)]
    pub watched_cpu_s: Vec<f64>,
}

/// The chunk written at `mono` by stream `stream`: the send time, the stream, then filler.
fn chunk(mono: u64, stream: u64, filler: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(WRITE_BYTES);
    b.put_u64_le(mono);
    b.put_u64_le(stream);
    b.extend_from_slice(&filler[16..WRITE_BYTES]);
    b.freeze()
}

/// One stream's media channels: where its publisher writes and where its subscriber reads
/// (the same channel on a bare trickle server; a job's input and output through a worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPair {
    /// The channel the publisher writes (`{publish}/{seq}`).
    pub publish: String,
    /// The channel the subscriber reads.
    pub subscribe: String,
}

/// Runs `n` streams against `trickle_base` (`http://host:port/ai/trickle/`): `warmup` to
/// ramp up, then `window` measured. Every task is bounded; stragglers are abandoned.
pub async fn run_streams(
    trickle_base: &str,
    n: u64,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<StreamsResult> {
    raise_fd_limit();
    let clients = HttpClients::new(OrchestratorTrust::Insecure)?;
    let http = clients.orchestrator(trickle_base)?;
    let prefix = super::unique_channel("s2");
    let urls: Vec<String> = (0..n).map(|i| format!("{trickle_base}{prefix}-{i}")).collect();
    // Channels exist before anyone subscribes (a GET on a missing channel is a 404 = the end).
    let created = futures_util::stream::iter(urls.clone())
        .map(|url| {
            let http = http.clone();
            async move {
                http.post(&url)
                    .header("Expect-Content", "video/mp2t")
                    .send()
                    .await
                    .map(|r| r.status().is_success())
            }
        })
        .buffer_unordered(64)
        .filter(|r| std::future::ready(matches!(r, Ok(true))))
        .count()
        .await;
    anyhow::ensure!(created as u64 == n, "created only {created} of {n} channels");
    let pairs = urls.into_iter().map(|url| MediaPair { publish: url.clone(), subscribe: url }).collect();
    let timing = Timing { warmup, window };
    Ok(measure_streams(pairs, http, clients.segment_reader(), timing, &[], async {}).await)
}

/// How long a measured run ramps up, then measures.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Ramp-up before the window (not measured).
    pub warmup: Duration,
    /// The measurement window.
    pub window: Duration,
}

/// Publishes 1 Mbps into every pair's `publish` channel and reads its `subscribe` channel,
/// measuring over the window; `watched` are other processes whose CPU over the same window
/// is reported (`watched_cpu_s`, in order). Once the publishers are done, `after_publishing`
/// runs (stopping jobs, so their outputs end) before the subscribers are collected.
pub async fn measure_streams(
    pairs: Vec<MediaPair>,
    http: reqwest::Client,
    reader: SegmentGetClient,
    timing: Timing,
    watched: &[u32],
    after_publishing: impl std::future::Future<Output = ()>,
) -> StreamsResult {
    let Timing { warmup, window } = timing;
    let n = pairs.len() as u64;
    let filler: Arc<Vec<u8>> = Arc::new((0..WRITE_BYTES).map(|i| (i % 251) as u8).collect());
    let t0 = Instant::now() + Duration::from_millis(200);
    let t0_mono = mono_ns() + 200_000_000;
    let window_start = t0 + warmup;
    let end = window_start + window;
    let (win_lo, win_hi) =
        (t0_mono + warmup.as_nanos() as u64, t0_mono + (warmup + window).as_nanos() as u64);
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let last_start = Arc::new(AtomicU64::new(0));

    let mut subscribers = Vec::with_capacity(n as usize);
    let mut publishers = Vec::with_capacity(n as usize);
    for (i, pair) in pairs.iter().enumerate() {
        let config = SubscriberConfig { start: SeqSpec::At(0), ..Default::default() };
        let mut sub = TrickleSubscriber::new(reader.clone(), &pair.subscribe, config);
        subscribers.push(tokio::spawn(async move {
            let mut latencies: Vec<f32> = Vec::new();
            let mut error = None;
            loop {
                match sub.next_segment().await {
                    Ok(Some(mut seg)) => {
                        let (mut offset, mut header) = (0usize, [0u8; 8]);
                        while let Ok(Some(data)) = seg.chunk().await {
                            let now = mono_ns();
                            let mut pos = 0;
                            // Only the first 8 bytes of each write carry its send time: copy
                            // those (they may straddle chunks) and skip the filler.
                            while pos < data.len() {
                                let at = offset % WRITE_BYTES;
                                let take = if at < 8 {
                                    let take = (8 - at).min(data.len() - pos);
                                    header[at..at + take].copy_from_slice(&data[pos..pos + take]);
                                    if at + take == 8 {
                                        let sent_at = u64::from_le_bytes(header);
                                        if (win_lo..win_hi).contains(&sent_at) {
                                            latencies.push(now.saturating_sub(sent_at) as f32 / 1e6);
                                        }
                                    }
                                    take
                                } else {
                                    (WRITE_BYTES - at).min(data.len() - pos)
                                };
                                pos += take;
                                offset += take;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e.to_string().chars().take(80).collect::<String>());
                        break;
                    }
                }
            }
            (latencies, error)
        }));

        let (http, url, filler, sent, failed, last_start) = (
            http.clone(),
            pair.publish.clone(),
            filler.clone(),
            sent.clone(),
            failed.clone(),
            last_start.clone(),
        );
        let stagger = SEGMENT.mul_f64(i as f64 / n as f64);
        publishers.push(tokio::spawn(async move {
            tokio::time::sleep_until(t0 + stagger).await;
            last_start.fetch_max(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
            let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
            let mut k = 0u32;
            loop {
                let seg_start = t0 + stagger + SEGMENT * k;
                if seg_start >= end {
                    break;
                }
                k += 1;
                tokio::time::sleep_until(seg_start).await;
                let Ok(mut sink) = publisher.next_segment() else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                for w in 0..WRITES_PER_SEGMENT {
                    tokio::time::sleep_until(seg_start + SEGMENT / WRITES_PER_SEGMENT * w).await;
                    let now = mono_ns();
                    if sink.write(chunk(now, i as u64, &filler)).await.is_err() {
                        break;
                    }
                    if (win_lo..win_hi).contains(&now) {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if sink.has_failed() || sink.finish().await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Deleting the channel ends the subscriber.
            let _ = tokio::time::timeout(Duration::from_secs(10), publisher.close()).await;
        }));
    }

    tokio::time::sleep_until(window_start).await;
    let cpu0 = cpu_seconds();
    let watched0: Vec<f64> = watched.iter().map(|&pid| proc_cpu_seconds(pid).unwrap_or(f64::NAN)).collect();
    tokio::time::sleep_until(end).await;
    let cpu1 = cpu_seconds();
    let watched_cpu_s: Vec<f64> = watched
        .iter()
        .zip(watched0)
        .map(|(&pid, before)| proc_cpu_seconds(pid).unwrap_or(f64::NAN) - before)
        .collect();

    // Bounded teardown: publishers finish their last segment and delete their channels.
    let grace = Instant::now() + Duration::from_secs(20);
    for p in publishers {
        let abort = p.abort_handle();
        if tokio::time::timeout_at(grace, p).await.is_err() {
            abort.abort();
        }
    }
    // Bounded by whoever passes it (stops have their own timeouts).
    after_publishing.await;
    let mut all: Vec<f64> = Vec::new();
    let mut subscriber_errors = 0;
    let mut subscriber_error_kinds = BTreeMap::new();
    for s in subscribers {
        let abort = s.abort_handle();
        match tokio::time::timeout_at(grace + Duration::from_secs(5), s).await {
            Ok(Ok((lat, error))) => {
                all.extend(lat.into_iter().map(f64::from));
                if let Some(kind) = error {
                    subscriber_errors += 1;
                    *subscriber_error_kinds.entry(kind).or_insert(0) += 1;
                }
            }
            _ => {
                abort.abort();
                subscriber_errors += 1;
                *subscriber_error_kinds.entry("still running at teardown".to_owned()).or_insert(0) += 1;
            }
        }
    }
    sort_samples(&mut all);
    let window_s = window.as_secs_f64();
    let cpu_s = cpu1 - cpu0;
    StreamsResult {
        streams: n,
        window_s,
        cpu_s,
        cpu_s_per_stream_minute: cpu_s / (n as f64 * window_s / 60.0),
        peak_rss_mib: peak_rss_kib().unwrap_or(0) as f64 / 1024.0,
        p50_ms: quantile(&all, 0.5),
        p99_ms: quantile(&all, 0.99),
        chunks_sent: sent.load(Ordering::Relaxed),
        chunks_received: all.len() as u64,
        segments_failed: failed.load(Ordering::Relaxed),
        subscriber_errors,
        ramp_s: last_start.load(Ordering::Relaxed) as f64 / 1000.0,
        subscriber_error_kinds,
        watched_cpu_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_their_send_time_and_are_1mbps() {
        let filler = vec![7u8; WRITE_BYTES];
        let c = chunk(0x0102_0304_0506_0708, 42, &filler);
        assert_eq!(c.len(), WRITE_BYTES);
        assert_eq!(u64::from_le_bytes(c[..8].try_into().unwrap()), 0x0102_0304_0506_0708);
        assert_eq!(u64::from_le_bytes(c[8..16].try_into().unwrap()), 42);
        assert_eq!(WRITE_BYTES as u32 * WRITES_PER_SEGMENT * 8, 1_000_000);
    }
}
