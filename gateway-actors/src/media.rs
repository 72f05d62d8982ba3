//! Publishing raw video frames: frame queue → encoder (its own thread) → segmenter → trickle.
//!
//! The data flows one way. The encoder runs on a dedicated thread so CPU work never stalls the
//! I/O runtime, and it is never blocked by the network: encoded segments go to the writer task
//! through an unbounded queue (a few seconds of video at most, since a stalled segment fails
//! after the stall timeout). When a segment fails (the orchestrator stopped reading, an error
//! status), the rest of that segment is drained — consumed and counted, not sent — and the next
//! segment, which starts with a keyframe, goes out on the next sequence number. Frames that
//! arrive while the encoder is busy are dropped oldest-first and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gateway_core::error::TrickleError;
use gateway_core::trickle::{MIME_IVF, MIME_MPEGTS};
use gateway_media::encoder::{Codec, EncodeError, VideoEncoder};
use gateway_media::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use gateway_media::{Av1Config, Av1Encoder, H264Config, H264Encoder, IvfMuxer, Rational, VideoFrame};
use tokio::sync::mpsc;

use crate::trickle::{SegmentSink, TricklePublisher};

/// Frames waiting for the encoder before the oldest is dropped.
pub const DEFAULT_FRAME_QUEUE: usize = 8;

/// What to encode.
#[derive(Debug, Clone)]
pub struct VideoPublisherConfig {
    /// Codec: H.264 in MPEG-TS (what runners decode) or AV1 in IVF.
    pub codec: Codec,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Nominal frame rate.
    pub frame_rate: Rational,
    /// Target bitrate (H.264).
    pub bitrate_bps: u32,
    /// Frames queued in front of the encoder.
    pub queue_frames: usize,
}

impl VideoPublisherConfig {
    /// H.264 defaults for a `width x height` stream at 30 fps.
    pub fn h264(width: u32, height: u32) -> VideoPublisherConfig {
        VideoPublisherConfig {
            codec: Codec::H264,
            width,
            height,
            frame_rate: Rational::new(30, 1),
            bitrate_bps: 1_000_000,
            queue_frames: DEFAULT_FRAME_QUEUE,
        }
    }

    /// The trickle mime type of this codec's container.
    pub fn mime(&self) -> &'static str {
        match self.codec {
            Codec::Av1 => MIME_IVF,
            _ => MIME_MPEGTS,
        }
    }
}

/// Errors of the video publisher.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The encoder could not be set up or failed.
    #[error("encoder: {0}")]
    Encoder(#[from] EncodeError),
    /// The publisher has stopped (terminal trickle error or finished).
    #[error("video publisher stopped: {0}")]
    Stopped(String),
}

/// Where every frame and byte went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// Frames handed to `write_frame`.
    pub frames_in: u64,
    /// Frames dropped because the encoder was behind (oldest first).
    pub frames_dropped: u64,
    /// Frames the encoder turned into packets.
    pub frames_encoded: u64,
    /// Segments the server confirmed.
    pub segments_published: u64,
    /// Segments that failed and were drained.
    pub segments_failed: u64,
    /// Bytes the segmenter produced (every one is then published or drained).
    pub bytes_encoded: u64,
    /// Bytes of segments the server confirmed.
    pub bytes_published: u64,
    /// Bytes of failed segments: drained without sending, or sent in a POST that then failed.
    pub bytes_drained: u64,
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_dropped: AtomicU64,
    frames_encoded: AtomicU64,
    segments_published: AtomicU64,
    segments_failed: AtomicU64,
    bytes_encoded: AtomicU64,
    bytes_published: AtomicU64,
    bytes_drained: AtomicU64,
}

/// Publishes frames as encoded segments on one trickle channel.
pub struct VideoPublisher {
    queue: Arc<Mutex<FrameSlot>>,
    wake: Arc<std::sync::Condvar>,
    counters: Arc<Counters>,
    encoder: Option<JoinHandle<Result<(), EncodeError>>>,
    writer: Option<tokio::task::JoinHandle<Result<(), TrickleError>>>,
    capacity: usize,
}

#[derive(Default)]
struct FrameSlot {
    frames: std::collections::VecDeque<VideoFrame>,
    closed: bool,
}

impl std::fmt::Debug for VideoPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPublisher").field("stats", &self.stats()).finish()
    }
}

impl VideoPublisher {
    /// Starts the encoder thread and the writer task (on the current tokio runtime).
    pub fn start(
        publisher: TricklePublisher,
        config: VideoPublisherConfig,
    ) -> Result<VideoPublisher, MediaError> {
        let encoder: Box<dyn VideoEncoder> = match config.codec {
            Codec::Av1 => {
                let mut c = Av1Config::new(config.width, config.height);
                c.frame_rate = config.frame_rate;
                Box::new(Av1Encoder::new(c)?)
            }
            _ => {
                let mut c = H264Config::new(config.width, config.height);
                c.frame_rate = config.frame_rate;
                c.bitrate_bps = config.bitrate_bps;
                Box::new(H264Encoder::new(c)?)
            }
        };
        let counters = Arc::new(Counters::default());
        let queue = Arc::new(Mutex::new(FrameSlot::default()));
        let wake = Arc::new(std::sync::Condvar::new());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let codec = config.codec;
        let (q, w, c) = (queue.clone(), wake.clone(), counters.clone());
        let encoder = std::thread::Builder::new()
            .name("livepeer-encoder".into())
            .spawn(move || encode_loop(encoder, codec, q, w, c, events_tx))
            .map_err(|e| MediaError::Stopped(format!("cannot start the encoder thread: {e}")))?;
        let writer = tokio::spawn(write_loop(publisher, events_rx, counters.clone()));
        Ok(VideoPublisher {
            queue,
            wake,
            counters,
            encoder: Some(encoder),
            writer: Some(writer),
            capacity: config.queue_frames.max(1),
        })
    }

    /// Queues a frame without blocking; the oldest queued frame is dropped when the encoder is
    /// behind.
    pub fn write_frame(&self, frame: VideoFrame) -> Result<(), MediaError> {
        if self.writer.as_ref().is_some_and(|w| w.is_finished()) {
            return Err(MediaError::Stopped("the trickle writer ended".into()));
        }
        self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut slot = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if slot.closed {
            return Err(MediaError::Stopped("finished".into()));
        }
        if slot.frames.len() >= self.capacity {
            slot.frames.pop_front();
            self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
        slot.frames.push_back(frame);
        drop(slot);
        self.wake.notify_one();
        Ok(())
    }

    /// Counters so far.
    pub fn stats(&self) -> MediaStats {
        let c = &self.counters;
        MediaStats {
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            frames_encoded: c.frames_encoded.load(Ordering::Relaxed),
            segments_published: c.segments_published.load(Ordering::Relaxed),
            segments_failed: c.segments_failed.load(Ordering::Relaxed),
            bytes_encoded: c.bytes_encoded.load(Ordering::Relaxed),
            bytes_published: c.bytes_published.load(Ordering::Relaxed),
            bytes_drained: c.bytes_drained.load(Ordering::Relaxed),
        }
    }

    /// Encodes what is queued, flushes, publishes the last segment and returns the totals.
    pub async fn finish(mut self) -> Result<MediaStats, MediaError> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.wake.notify_one();
        if let Some(enc) = self.encoder.take() {
            let joined = tokio::task::spawn_blocking(move || enc.join()).await;
            if let Ok(Ok(Err(e))) = joined {
                return Err(e.into());
            }
        }
        if let Some(w) = self.writer.take() {
            match w.await {
                Ok(Err(e)) => return Err(MediaError::Stopped(e.to_string())),
                Err(e) => return Err(MediaError::Stopped(e.to_string())),
                Ok(Ok(())) => {}
            }
        }
        Ok(self.stats())
    }
}

impl Drop for VideoPublisher {
    fn drop(&mut self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.wake.notify_one();
    }
}

fn encode_loop(
    mut encoder: Box<dyn VideoEncoder>,
    codec: Codec,
    queue: Arc<Mutex<FrameSlot>>,
    wake: Arc<std::sync::Condvar>,
    counters: Arc<Counters>,
    events: mpsc::UnboundedSender<SegmentEvent>,
) -> Result<(), EncodeError> {
    let (width, height) = encoder.dimensions();
    let mut ts = Segmenter::mpegts(SegmenterConfig::default());
    let muxer = IvfMuxer::new(width, height)
        .map_err(|e| EncodeError::Config(gateway_media::encoder::ConfigError::Invalid(e.to_string())))?;
    let mut ivf = Segmenter::with_muxer(muxer, SegmenterConfig::default());
    let mut emit = |packets: Vec<gateway_media::encoder::EncodedPacket>| {
        for p in &packets {
            let produced = if codec == Codec::Av1 { ivf.push(p) } else { ts.push(p) };
            match produced {
                Ok(evs) => evs.into_iter().for_each(|e| drop(events.send(e))),
                Err(e) => tracing::warn!(error = %e, "segmenter refused a packet"),
            }
        }
    };
    loop {
        let frame = {
            let mut slot = queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(f) = slot.frames.pop_front() {
                    break Some(f);
                }
                if slot.closed {
                    break None;
                }
                slot = wake.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(frame) = frame else { break };
        match encoder.encode(&frame) {
            Ok(packets) => {
                counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
                emit(packets);
            }
            // A bad frame (wrong size, pts going backwards) is dropped, not fatal.
            Err(e @ (EncodeError::SizeMismatch { .. } | EncodeError::NonMonotonicPts { .. })) => {
                tracing::warn!(error = %e, "frame dropped");
                counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    emit(encoder.flush()?);
    let last = if codec == Codec::Av1 { ivf.finish() } else { ts.finish() };
    if let Some(e) = last {
        let _ = events.send(e);
    }
    Ok(())
}

async fn write_loop(
    mut publisher: TricklePublisher,
    mut events: mpsc::UnboundedReceiver<SegmentEvent>,
    counters: Arc<Counters>,
) -> Result<(), TrickleError> {
    let mut sink: Option<SegmentSink> = None;
    // Bytes handed to the current segment's POST; published only once the server confirms.
    let mut in_flight = 0u64;
    let drained = |n: u64| counters.bytes_drained.fetch_add(n, Ordering::Relaxed);
    while let Some(event) = events.recv().await {
        match event {
            SegmentEvent::SegmentStart { .. } => {
                in_flight = 0;
                match publisher.next_segment() {
                    Ok(s) => sink = Some(s),
                    Err(e) if e.is_terminal() => return Err(e),
                    Err(_) => sink = None,
                }
            }
            SegmentEvent::Chunk(bytes) => {
                let len = bytes.len() as u64;
                counters.bytes_encoded.fetch_add(len, Ordering::Relaxed);
                let Some(s) = sink.as_mut() else {
                    drained(len); // the segment failed: drain the rest of it
                    continue;
                };
                if let Err(e) = s.write(bytes).await {
                    tracing::warn!(error = %e, "segment failed; draining the rest of it");
                    counters.segments_failed.fetch_add(1, Ordering::Relaxed);
                    drained(in_flight + len);
                    in_flight = 0;
                    sink = None;
                    if let Some(t) = publisher.terminal_error() {
                        return Err(t);
                    }
                } else {
                    in_flight += len;
                }
            }
            SegmentEvent::SegmentEnd(_) => {
                let Some(s) = sink.take() else { continue };
                match s.finish().await {
                    Ok(()) => {
                        counters.segments_published.fetch_add(1, Ordering::Relaxed);
                        counters.bytes_published.fetch_add(in_flight, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "segment failed at its end");
                        counters.segments_failed.fetch_add(1, Ordering::Relaxed);
                        drained(in_flight);
                        if let Some(t) = publisher.terminal_error() {
                            return Err(t);
                        }
                    }
                }
                in_flight = 0;
            }
        }
    }
    Ok(())
}
