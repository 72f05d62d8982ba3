//! Scenario 3: encode and publish the test pattern. "Fast": frames are fed as fast as the
//! pipeline takes them (the feeder waits while the frame queue is nearly full, so nothing is
//! dropped), reported as end-to-end fps next to the encoder alone on the same frames.
//! "Live": frames are fed at 30 fps for a bounded time; reported as the share of one core the
//! whole process used, bytes published and frames dropped; optionally with a 48 kHz stereo
//! audio track beside the video (Opus, fed in 20 ms frames in step with the video).
//!
//! The pipeline is the SDK's `VideoPublisher` (frame queue, encoder thread, segmenter, trickle
//! writer) with its H.264 defaults (openh264, 1 Mbit/s) or AV1 (rav1e at its default speed).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use gateway_actors::http::HttpClients;
use gateway_actors::media::{AudioTrackConfig, VideoPublisher, VideoPublisherConfig};
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{PublisherConfig, TricklePublisher};
use gateway_media::{
    Av1Config, Av1Encoder, Codec, H264Config, H264Encoder, Rational, TestPattern, Tone, VideoEncoder,
    VideoFrame,
};
use serde::{Deserialize, Serialize};

use super::{unique_channel, Budget};
use crate::servers::ServerAddrs;
use crate::sys::cpu_seconds;

/// Frame rate of every scenario-3 stream.
pub const FPS: u32 = 30;

/// One codec and size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MediaResult {
    /// `h264` or `av1`.
    pub codec: String,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Encoder alone, frames/s.
    pub encoder_fps: f64,
    /// Whole pipeline fed as fast as it takes frames, frames/s (encoded frames / time until
    /// the last segment was confirmed).
    pub e2e_fps: f64,
    /// Frames through the pipeline in the fast run.
    pub e2e_frames: u64,
    /// The live run.
    pub live: LiveResult,
}

/// A live run at 30 fps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LiveResult {
    /// Wall-clock seconds of feeding.
    pub seconds: f64,
    /// Frames handed to the publisher.
    pub frames_in: u64,
    /// Frames dropped before encoding.
    pub frames_dropped: u64,
    /// Audio frames handed to the publisher (0 without an audio track).
    #[serde(default)]
    pub audio_frames_in: u64,
    /// Audio frames lost (dropped or refused).
    #[serde(default)]
    pub audio_dropped: u64,
    /// Bytes the server confirmed.
    pub bytes: u64,
    /// Segments the server confirmed.
    pub segments: u64,
    /// Process CPU seconds / wall seconds (1.0 = one core busy).
    pub cpu_core_share: f64,
}

/// The codec's name in results.
pub fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Av1 => "av1",
        _ => "h264",
    }
}

/// `count` frames of the test pattern (cycled by the runs with increasing pts).
pub fn clip(width: u32, height: u32, count: u64) -> anyhow::Result<Vec<VideoFrame>> {
    let pattern = TestPattern::new(width, height, Rational::new(FPS, 1))?;
    Ok((0..count).map(|i| pattern.frame(i)).collect())
}

/// Writes frames as tightly packed I420 (Y, U, V rows without padding) for the Python side.
pub fn write_i420(path: &Path, frames: &[VideoFrame]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for f in frames {
        let (w, h) = (f.width() as usize, f.height() as usize);
        for (plane, pw, ph) in
            [(0, w, h), (1, w.div_ceil(2), h.div_ceil(2)), (2, w.div_ceil(2), h.div_ceil(2))]
        {
            let stride = f.stride(plane);
            let data = f.plane(plane);
            for row in 0..ph {
                out.write_all(&data[row * stride..row * stride + pw])?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn config(codec: Codec, width: u32, height: u32) -> VideoPublisherConfig {
    let mut c = VideoPublisherConfig::h264(width, height);
    c.codec = codec;
    c
}

/// The frame at position `n` of the looped clip, with pts `n` at 30 fps.
fn nth(frames: &[VideoFrame], n: u64) -> anyhow::Result<VideoFrame> {
    let mut f = frames[(n % frames.len() as u64) as usize].clone();
    f.set_pts(n as i64, Rational::new(1, FPS))?;
    Ok(f)
}

/// The encoder alone, built as the publisher builds it.
pub fn encoder_fps(codec: Codec, frames: &[VideoFrame], budget: Budget) -> anyhow::Result<f64> {
    let (w, h) = (frames[0].width(), frames[0].height());
    let defaults = config(codec, w, h);
    let mut encoder: Box<dyn VideoEncoder> = match codec {
        Codec::Av1 => {
            let mut c = Av1Config::new(w, h);
            c.frame_rate = defaults.frame_rate;
            Box::new(Av1Encoder::new(c)?)
        }
        _ => {
            let mut c = H264Config::new(w, h);
            c.frame_rate = defaults.frame_rate;
            c.bitrate_bps = defaults.bitrate_bps;
            Box::new(H264Encoder::new(c)?)
        }
    };
    let started = Instant::now();
    let mut n = 0;
    while n < budget.max_count && started.elapsed() < budget.max_time {
        encoder.encode(&nth(frames, n)?)?;
        n += 1;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

async fn publisher(
    addrs: &ServerAddrs,
    codec: Codec,
    w: u32,
    h: u32,
    audio: bool,
) -> anyhow::Result<VideoPublisher> {
    let url = addrs.channel_url(&unique_channel("s3"));
    let http = HttpClients::new(OrchestratorTrust::Insecure)?.orchestrator(&url)?;
    let mut cfg = config(codec, w, h);
    cfg.audio = audio.then(|| AudioTrackConfig::opus(2));
    let trickle = TricklePublisher::start(
        http,
        &url,
        PublisherConfig { mime: cfg.mime().into(), ..Default::default() },
    )
    .await;
    Ok(VideoPublisher::start(trickle, cfg)?)
}

/// The pipeline fed as fast as it takes frames; returns (fps, frames).
pub async fn e2e_fast(
    addrs: &ServerAddrs,
    codec: Codec,
    frames: &[VideoFrame],
    budget: Budget,
) -> anyhow::Result<(f64, u64)> {
    let (w, h) = (frames[0].width(), frames[0].height());
    let vp = publisher(addrs, codec, w, h, false).await?;
    let started = Instant::now();
    let mut n = 0;
    while n < budget.max_count && started.elapsed() < budget.max_time {
        // As fast as possible without dropping: wait for room in the encoder's queue.
        vp.write_frame_when_ready(nth(frames, n)?).await?;
        n += 1;
    }
    let stats = tokio::time::timeout(Duration::from_secs(120), vp.finish()).await??;
    let seconds = started.elapsed().as_secs_f64();
    Ok((stats.frames_encoded as f64 / seconds, stats.frames_encoded))
}

/// The pipeline fed at 30 fps for `seconds`.
pub async fn live(
    addrs: &ServerAddrs,
    codec: Codec,
    frames: &[VideoFrame],
    seconds: Duration,
    audio: bool,
) -> anyhow::Result<LiveResult> {
    let (w, h) = (frames[0].width(), frames[0].height());
    let vp = publisher(addrs, codec, w, h, audio).await?;
    let total = (seconds.as_secs_f64() * f64::from(FPS)).round() as u64;
    // 20 ms of stereo per frame, as a capture card would hand it over.
    let mut tone = Tone::new(2, 48_000, 960)?;
    let mut audio_sent = 0u64;
    let cpu0 = cpu_seconds();
    let start = tokio::time::Instant::now();
    for n in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs(1) * n as u32 / FPS).await;
        while audio && audio_sent * 960 * u64::from(FPS) < (n + 1) * 48_000 {
            vp.write_audio(tone.next_frame())?;
            audio_sent += 1;
        }
        vp.write_frame(nth(frames, n)?)?;
    }
    // Hold the last frame for its duration, then flush what is queued.
    tokio::time::sleep_until(start + Duration::from_secs(1) * total as u32 / FPS).await;
    let fed = start.elapsed().as_secs_f64();
    let stats = tokio::time::timeout(Duration::from_secs(120), vp.finish()).await??;
    let wall = start.elapsed().as_secs_f64();
    Ok(LiveResult {
        seconds: fed,
        frames_in: stats.frames_in,
        frames_dropped: stats.frames_dropped,
        audio_frames_in: stats.audio.frames_in,
        audio_dropped: stats.audio.frames_dropped_overflow
            + stats.audio.frames_refused
            + stats.audio.packets_dropped,
        bytes: stats.bytes_published,
        segments: stats.segments_published,
        cpu_core_share: (cpu_seconds() - cpu0) / wall,
    })
}
