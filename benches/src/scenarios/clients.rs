//! Scenario 5: the HTTP client under the segment writer, awc against reqwest, each on a
//! single-threaded runtime of its own (awc needs an actix System), against the server child:
//! - small chunks: 1 KB chunks every 50 ms in one chunked POST to `/arrivals`, which answers
//!   with the delay between each chunk's send time and its arrival (awc holds HTTP/1.1 body
//!   bytes until 8 KiB accumulate, reqwest sends each chunk at once);
//! - big segments: back-to-back 1 MB POSTs of 64 KiB chunks to the drain endpoint.
//!
//! Only this bench depends on awc; the library uses reqwest (`gateway_actors::http`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use super::publish::PublishResult;
use super::{segment_chunks, Budget, CHUNK};
use crate::servers::{ServerAddrs, ARRIVAL_RECORD};
use crate::sys::{mono_ns, quantile, sort_samples};

/// Which client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// awc 3 (actix).
    Awc,
    /// reqwest 0.13 (hyper 1), the library's client.
    Reqwest,
}

impl Client {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Client::Awc => "awc",
            Client::Reqwest => "reqwest",
        }
    }
}

/// Arrival delays of small chunks.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ArrivalResult {
    /// Chunks sent.
    pub chunks: usize,
    /// Delay of the first chunk, ms.
    pub first_ms: f64,
    /// Median delay, ms.
    pub p50_ms: f64,
    /// Largest delay, ms.
    pub max_ms: f64,
}

/// `count` records of [`ARRIVAL_RECORD`] bytes, one every `interval`, each stamped when it is
/// produced.
fn paced_records(count: usize, interval: Duration) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let start = tokio::time::Instant::now();
    futures_util::stream::unfold(0usize, move |i| async move {
        if i >= count {
            return None;
        }
        tokio::time::sleep_until(start + interval * i as u32).await;
        let mut b = BytesMut::with_capacity(ARRIVAL_RECORD);
        b.put_u64_le(mono_ns());
        b.resize(ARRIVAL_RECORD, 0x55);
        Some((Ok(b.freeze()), i + 1))
    })
}

fn summarize(mut delays_us: Vec<f64>, sent: usize) -> anyhow::Result<ArrivalResult> {
    anyhow::ensure!(delays_us.len() == sent, "server saw {} of {sent} chunks", delays_us.len());
    let first_ms = delays_us[0] / 1e3;
    sort_samples(&mut delays_us);
    Ok(ArrivalResult {
        chunks: sent,
        first_ms,
        p50_ms: quantile(&delays_us, 0.5).unwrap_or(f64::NAN) / 1e3,
        max_ms: delays_us.last().copied().unwrap_or(f64::NAN) / 1e3,
    })
}

/// Small-chunk arrival delays through `client`.
pub fn arrivals(
    client: Client,
    addrs: &ServerAddrs,
    count: usize,
    interval: Duration,
) -> anyhow::Result<ArrivalResult> {
    let url = addrs.arrivals_url();
    let body = match client {
        Client::Reqwest => current_thread()?.block_on(async {
            let http = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build()?;
            let resp = http
                .post(&url)
                .body(reqwest::Body::wrap_stream(paced_records(count, interval)))
                .send()
                .await?;
            anyhow::Ok(resp.bytes().await?)
        })?,
        Client::Awc => actix_rt::System::new().block_on(async {
            let http = awc::Client::builder().disable_timeout().finish();
            let mut resp = http
                .post(&url)
                .send_stream(paced_records(count, interval))
                .await
                .map_err(|e| anyhow!("awc: {e}"))?;
            resp.body().limit(1 << 20).await.map_err(|e| anyhow!("awc body: {e}"))
        })?,
    };
    let delays: Vec<f64> = serde_json::from_slice(&body).context("arrival delays")?;
    summarize(delays, count)
}

/// Back-to-back 1 MB segments through `client`.
pub fn segments(client: Client, addrs: &ServerAddrs, budget: Budget) -> anyhow::Result<PublishResult> {
    const SEGMENT: usize = 1_000_000;
    let url = addrs.drain_url();
    let chunks = segment_chunks(SEGMENT, CHUNK);
    let expected = SEGMENT.to_string();
    let started = Instant::now();
    let mut done = 0u64;
    let body = || futures_util::stream::iter(chunks.clone().into_iter().map(Ok::<Bytes, std::io::Error>));
    match client {
        Client::Reqwest => current_thread()?.block_on(async {
            let http = reqwest::Client::builder().no_proxy().tcp_nodelay(true).build()?;
            while done < budget.max_count && started.elapsed() < budget.max_time {
                let resp = http.post(&url).body(reqwest::Body::wrap_stream(body())).send().await?;
                anyhow::ensure!(resp.text().await? == expected, "short body");
                done += 1;
            }
            anyhow::Ok(())
        })?,
        Client::Awc => actix_rt::System::new().block_on(async {
            let http = awc::Client::builder().disable_timeout().finish();
            while done < budget.max_count && started.elapsed() < budget.max_time {
                let mut resp = http.post(&url).send_stream(body()).await.map_err(|e| anyhow!("awc: {e}"))?;
                let got = resp.body().await.map_err(|e| anyhow!("awc body: {e}"))?;
                anyhow::ensure!(got == expected.as_bytes(), "short body");
                done += 1;
            }
            anyhow::Ok(())
        })?,
    }
    Ok(PublishResult {
        segment_bytes: SEGMENT as u64,
        segments: done,
        failed: 0,
        seconds: started.elapsed().as_secs_f64(),
        ..Default::default()
    })
}

fn current_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}
