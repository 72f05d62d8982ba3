//! Scenario 6: subscribers behind a backlog. N channels each hold two 4 MiB segments written
//! in 1 MiB pieces; N subscribers read them at 16 MB/s each (a pause after every chunk, in
//! proportion to its size), so data waits for them. Measured: the process's RSS growth over its
//! baseline while they read, per subscriber, with the subscriber's bounded segment client and
//! with plain reqwest (hyper's adaptive read buffer). Each client kind runs in a worker process
//! of its own (`throughput --worker-lagging`), so the figures are its alone.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use gateway_actors::http::HttpClients;
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{
    PublisherConfig, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};
use gateway_core::trickle::SeqSpec;
use serde::{Deserialize, Serialize};

use crate::sys::{raise_fd_limit, rss_kib};

/// Highest RSS seen by the sampler, KiB.
static SAMPLED_PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes of each segment.
pub const SEGMENT_BYTES: usize = 4 * 1024 * 1024;
/// Segments per channel.
pub const SEGMENTS: u64 = 2;
/// Bytes per publisher write (what the server forwards as one piece).
pub const PIECE_BYTES: usize = 1024 * 1024;
/// The reader's pace: one millisecond of pause per this many bytes read (16 MB/s).
const BYTES_PER_MS: usize = 16 * 1024;

/// Which HTTP stack the subscribers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum LaggingClient {
    /// [`SegmentGetClient::bounded`] (what the SDK's subscribers use).
    Bounded,
    /// A plain reqwest client.
    Reqwest,
}

/// What one worker measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaggingResult {
    /// The client kind.
    pub client: LaggingClient,
    /// Subscribers.
    pub subscribers: u64,
    /// RSS before the subscribers started, MiB (publishers done, data waiting in the server).
    pub baseline_mib: f64,
    /// Highest RSS sampled (every 20 ms) while the subscribers read, MiB.
    pub peak_rss_mib: f64,
    /// `(peak - baseline) / subscribers`, KiB.
    pub kib_per_subscriber: f64,
    /// Bytes the subscribers read in all (must be `subscribers * SEGMENTS * SEGMENT_BYTES`).
    pub bytes_read: u64,
    /// Subscribers that stopped with an error.
    pub errors: u64,
}

/// Fills `n` channels under `trickle_base`, then reads them all back at the lagging pace.
pub async fn run_lagging(trickle_base: &str, n: u64, client: LaggingClient) -> anyhow::Result<LaggingResult> {
    raise_fd_limit();
    let clients = HttpClients::new(OrchestratorTrust::Insecure)?;
    let http = clients.orchestrator(trickle_base)?;
    let prefix = super::unique_channel("s6");
    let urls: Vec<String> = (0..n).map(|i| format!("{trickle_base}{prefix}-{i}")).collect();
    let piece = Bytes::from(vec![0x5a; PIECE_BYTES]);
    // Publish everything first, a few channels at a time: the backlog waits in the server.
    futures_util::stream::iter(urls.clone())
        .map(|url| {
            let (http, piece) = (http.clone(), piece.clone());
            async move {
                let config = PublisherConfig { start_seq: Some(0), ..Default::default() };
                let mut publisher = TricklePublisher::start(http, &url, config).await;
                for _ in 0..SEGMENTS {
                    let mut sink = publisher.next_segment()?;
                    for _ in 0..SEGMENT_BYTES / PIECE_BYTES {
                        sink.write(piece.clone()).await?;
                    }
                    sink.finish().await?;
                }
                // Left open: closing would end the channel before it is read.
                std::mem::forget(publisher);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let baseline = rss_kib().unwrap_or(0);
    let segment_client: SegmentGetClient = match client {
        LaggingClient::Bounded => clients.segment_reader(),
        LaggingClient::Reqwest => http.clone().into(),
    };
    let readers: Vec<_> = urls
        .iter()
        .map(|url| {
            let config = SubscriberConfig { start: SeqSpec::At(0), ..Default::default() };
            let mut subscriber = TrickleSubscriber::new(segment_client.clone(), url, config);
            tokio::spawn(async move {
                let mut read = 0u64;
                for _ in 0..SEGMENTS {
                    let mut segment =
                        subscriber.next_segment().await?.ok_or_else(|| anyhow::anyhow!("ended"))?;
                    while let Some(chunk) = segment.chunk().await? {
                        read += chunk.len() as u64;
                        let pause = (chunk.len() / BYTES_PER_MS).max(1) as u64;
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
                anyhow::Ok(read)
            })
        })
        .collect();
    // Current RSS sampled while they read (the peak of the process includes publishing).
    let sampler = tokio::spawn(async {
        let mut highest = 0;
        loop {
            highest = rss_kib().unwrap_or(0).max(highest);
            SAMPLED_PEAK.store(highest, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let (mut bytes_read, mut errors) = (0, 0);
    for reader in readers {
        match tokio::time::timeout(Duration::from_secs(120), reader).await {
            Ok(Ok(Ok(read))) => bytes_read += read,
            _ => errors += 1,
        }
    }
    sampler.abort();
    let peak = SAMPLED_PEAK.load(std::sync::atomic::Ordering::Relaxed);
    Ok(LaggingResult {
        client,
        subscribers: n,
        baseline_mib: baseline as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
        kib_per_subscriber: peak.saturating_sub(baseline) as f64 / n.max(1) as f64,
        bytes_read,
        errors,
    })
}
