//! Publishing raw video frames: the user-facing [`VideoPublisher`] handle over the actors that
//! do the work — frames → [`FrameQueue`] → [`FrameEncoder`](crate::encoder::FrameEncoder)
//! (SyncArbiter) → segmenter → [`SegmentWriter`] (supervised) → network, driven by a
//! [`StreamSupervisor`].
//!
//! The handle is `Send` and never blocks: `write_frame` puts the frame in the bounded queue
//! (drop-oldest) and wakes the supervisor. The actors run on an actix System of the publisher's
//! own, on its own thread, so the handle works from any tokio runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix::prelude::*;
use gateway_core::trickle::{MIME_IVF, MIME_MPEGTS};
use gateway_media::encoder::{Codec, EncodeError};
use gateway_media::{FrameQueue, H264EncoderPool, PushOutcome, Rational, VideoFrame};

use crate::encoder::{start_frame_encoder, EncoderSettings};
use crate::supervisor::{Finish, FramesAvailable, GetMediaStats, StreamSupervisor};
pub use crate::supervisor::{FrameDrops, MediaStats, StreamTiming};
use crate::trickle::TricklePublisher;
use crate::writer::SegmentWriter;

/// Frames waiting for the encoder before the oldest is dropped (the Python SDK's size).
pub const DEFAULT_FRAME_QUEUE: usize = gateway_media::frame_queue::DEFAULT_QUEUE_CAPACITY;

/// What to encode and how to segment.
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
    /// Skip frames when encoding falls behind real time (the Python SDK's debt rule).
    pub debt_skipping: bool,
    /// Segment timing rules.
    pub timing: StreamTiming,
    /// Where H.264 encoders come from and go back to: [`H264EncoderPool::shared`] by default,
    /// so jobs that come and go reuse openh264's costly setup and memory stays flat; `None`
    /// builds a private encoder per stream.
    pub encoder_pool: Option<H264EncoderPool>,
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
            debt_skipping: true,
            timing: StreamTiming::default(),
            encoder_pool: Some(H264EncoderPool::shared().clone()),
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
    /// The publisher has stopped.
    #[error("video publisher stopped: {0}")]
    Stopped(String),
}

/// Publishes frames as encoded segments on one trickle channel.
pub struct VideoPublisher {
    queue: Arc<Mutex<FrameQueue>>,
    capacity: usize,
    notified: Arc<AtomicBool>,
    supervisor: Addr<StreamSupervisor>,
    system: actix::System,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for VideoPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPublisher").finish_non_exhaustive()
    }
}

impl VideoPublisher {
    /// Starts the stream's actors; segments go out through `publisher`.
    pub fn start(
        publisher: TricklePublisher,
        config: VideoPublisherConfig,
    ) -> Result<VideoPublisher, MediaError> {
        let mut queue =
            FrameQueue::new(config.queue_frames.max(1)).map_err(|e| MediaError::Stopped(e.to_string()))?;
        queue.set_debt_skip(config.debt_skipping);
        let queue = Arc::new(Mutex::new(queue));
        let notified = Arc::new(AtomicBool::new(false));
        let settings = EncoderSettings {
            codec: config.codec,
            width: config.width,
            height: config.height,
            frame_rate: config.frame_rate,
            bitrate_bps: config.bitrate_bps,
            pool: config.encoder_pool.clone(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (q, n, timing) = (queue.clone(), notified.clone(), config.timing);
        let thread = std::thread::Builder::new()
            .name("livepeer-video".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let started = start_frame_encoder(&settings).map(|encoder| {
                        let writer = Supervisor::start(move |_| SegmentWriter::new(publisher));
                        let supervisor = StreamSupervisor::new(encoder, writer, q, n, timing).start();
                        (supervisor, actix::System::current())
                    });
                    let _ = tx.send(started);
                });
                let _ = system.run();
            })
            .map_err(|e| MediaError::Stopped(format!("cannot start the stream thread: {e}")))?;
        let (supervisor, system) =
            rx.recv().map_err(|_| MediaError::Stopped("the stream thread ended".into()))??;
        Ok(VideoPublisher {
            queue,
            capacity: config.queue_frames.max(1),
            notified,
            supervisor,
            system,
            thread: Some(thread),
        })
    }

    /// Queues a frame without blocking; when the encoder is behind, the oldest queued frame is
    /// dropped (counted).
    pub fn write_frame(&self, frame: VideoFrame) -> Result<(), MediaError> {
        if !self.supervisor.connected() {
            return Err(MediaError::Stopped("the stream supervisor ended".into()));
        }
        let outcome = self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(frame);
        if outcome != PushOutcome::DroppedNonMonotonic && !self.notified.swap(true, Ordering::SeqCst) {
            // A control message, coalesced by the flag: never more than one in the mailbox.
            self.supervisor.do_send(FramesAvailable);
        }
        Ok(())
    }

    /// Like [`VideoPublisher::write_frame`], but first waits until the queue has room, so a
    /// producer faster than the encoder (a file, a benchmark) loses no frame. Live sources should
    /// use `write_frame` and let old frames go.
    pub async fn write_frame_when_ready(&self, frame: VideoFrame) -> Result<(), MediaError> {
        // The supervisor takes frames on its own thread; poll briefly instead of sharing a waker
        // across the two runtimes.
        while self.queued_frames() >= self.capacity {
            if !self.supervisor.connected() {
                return Err(MediaError::Stopped("the stream supervisor ended".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.write_frame(frame)
    }

    /// Frames waiting for the encoder now.
    pub fn queued_frames(&self) -> usize {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Totals so far.
    pub async fn stats(&self) -> Result<MediaStats, MediaError> {
        self.supervisor.send(GetMediaStats).await.map_err(|e| MediaError::Stopped(e.to_string()))
    }

    /// Encodes what is queued, flushes, publishes the last segment and returns the totals.
    pub async fn finish(mut self) -> Result<MediaStats, MediaError> {
        let stats = self.supervisor.send(Finish).await.map_err(|e| MediaError::Stopped(e.to_string()))?;
        self.stop_thread().await;
        Ok(stats)
    }

    async fn stop_thread(&mut self) {
        self.system.stop();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for VideoPublisher {
    fn drop(&mut self) {
        self.system.stop();
    }
}
