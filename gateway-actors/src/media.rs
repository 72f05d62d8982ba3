//! Publishing raw video frames: the user-facing [`VideoPublisher`] handle over one stream
//! (the crate's `stream` module): frames -> bounded frame inbox -> encoder (on the shared CPU pool)
//! -> segmenter -> the segment writer actor (supervised) -> network, carried out by the stream's
//! driver actor on the shared media runtime.
//!
//! The handle is `Send` and never blocks: `write_frame` puts the frame in the bounded queue
//! (drop-oldest) and wakes the driver. Streams share a fixed set of threads sized by the
//! machine's cores, whatever their number, so the handle works from any tokio runtime and a
//! thousand streams do not cost a thousand threads.
//!
//! A stream can carry an audio track ([`VideoPublisherConfig::audio`]): audio frames
//! ([`VideoPublisher::write_audio`]) wait in a FIFO of their own, are encoded to Opus beside
//! the video and interleaved with it by time in the same MPEG-TS segments.
//!
//! A stream can move to another trickle channel while frames keep coming
//! ([`VideoPublisher::replace_channel`]), and tells how its channel is doing without being
//! polled ([`VideoPublisher::channel_health`]), so a swap driver can replace a dead or stalled
//! orchestrator under it.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use gateway_core::trickle::{MIME_IVF, MIME_MPEGTS};
use gateway_media::encoder::Codec;
use gateway_media::ts::discontinuity::mark_discontinuity;
use gateway_media::{
    AudioFrame, FrameQueue, H264EncoderPool, OpusConfig, Rational, SegmentEvent, VideoFrame,
};
use tokio::sync::watch;

use crate::stream::driver::{
    Abandon, Finish, FramesAvailable, GetMediaStats, PushMedia, ReplaceChannel, StreamDriver,
};
use crate::stream::encoder::{EncoderSettings, StreamEncoder};
pub use crate::stream::error::MediaError;
use crate::stream::inbox::FrameInbox;
use crate::stream::plan::StreamPlan;
use crate::stream::runtime::MediaRuntime;
pub use crate::stream::stats::{
    AudioStats, ChannelHealth, ChannelLoss, FrameDrops, MediaStats, StreamTiming,
};
use crate::trickle::TricklePublisher;
use crate::writer::SegmentWriter;
pub use gateway_core::error::SegmentFailure;

/// Frames waiting for the encoder before the oldest is dropped (the Python SDK's size).
pub(crate) const DEFAULT_FRAME_QUEUE: usize = gateway_media::frame_queue::DEFAULT_QUEUE_CAPACITY;

/// Audio frames waiting for the encoder before the oldest is dropped (the Python SDK's 32).
pub const DEFAULT_AUDIO_QUEUE: usize = 32;

/// A stream's audio track: Opus at 48 kHz in the video's MPEG-TS segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTrackConfig {
    /// 1 (mono) or 2 (stereo); frames with other layouts are folded to it.
    pub channels: u16,
    /// Target Opus bitrate.
    pub bitrate_bps: u32,
    /// Audio frames queued before the oldest is dropped.
    pub queue_frames: usize,
}

impl AudioTrackConfig {
    /// Opus with `channels` at the usual bitrate for them (64 kbit/s mono, 96 kbit/s stereo).
    pub fn opus(channels: u16) -> AudioTrackConfig {
        let opus = OpusConfig::new(channels);
        AudioTrackConfig { channels, bitrate_bps: opus.bitrate_bps, queue_frames: DEFAULT_AUDIO_QUEUE }
    }
}

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
    /// What the stream does when its channel is lost for good: end (the default), or keep
    /// encoding and wait for [`VideoPublisher::replace_channel`].
    pub on_channel_loss: ChannelLoss,
    /// The caller hands in MPEG-TS already encoded and cut on keyframes
    /// ([`VideoPublisher::write_cut`], e.g. from `livepeer_gateway_media::ts::cutter::TsCutter`)
    /// instead of frames: no encoder runs, and the size, rate and bitrate fields are unused.
    pub passthrough: bool,
    /// An audio track beside the video (H.264 only; not with `passthrough`, whose input
    /// carries its own audio).
    pub audio: Option<AudioTrackConfig>,
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
            on_channel_loss: ChannelLoss::EndStream,
            passthrough: false,
            audio: None,
        }
    }

    /// MPEG-TS already encoded (H.264), handed in cut on its keyframes with
    /// [`VideoPublisher::write_cut`]: no encoder; segments are joined, drained and moved to a
    /// new channel by the same rules as encoded ones (a new channel starts at the input's next
    /// keyframe, as no keyframe can be asked for).
    pub fn passthrough_ts() -> VideoPublisherConfig {
        VideoPublisherConfig { passthrough: true, encoder_pool: None, ..VideoPublisherConfig::h264(2, 2) }
    }

    /// The trickle mime type of this codec's container.
    pub fn mime(&self) -> &'static str {
        match self.codec {
            Codec::Av1 => MIME_IVF,
            _ => MIME_MPEGTS,
        }
    }
}

/// Starts the process-wide media runtime now instead of with the first [`VideoPublisher`], and
/// returns how many threads it runs (its arbiters plus its CPU workers). The runtime is fixed
/// for the life of the process, sized by cores: a service can start it at boot so the first
/// stream does not pay for it, and a leak check can count its threads as a baseline.
pub fn start_media_runtime() -> Result<usize, MediaError> {
    MediaRuntime::shared().map(MediaRuntime::thread_count).map_err(MediaError::Stopped)
}

/// Publishes frames as encoded segments on a trickle channel, which can be replaced mid-stream.
pub struct VideoPublisher {
    inbox: Arc<FrameInbox>,
    /// Takes cut media ([`VideoPublisher::write_cut`]), not frames.
    passthrough: bool,
    /// Has an audio track.
    audio: bool,
    driver: Addr<StreamDriver>,
    health: watch::Receiver<ChannelHealth>,
}

impl std::fmt::Debug for VideoPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPublisher").finish_non_exhaustive()
    }
}

impl VideoPublisher {
    /// Starts the stream on the shared media runtime; segments go out through `publisher`.
    pub fn start(
        publisher: TricklePublisher,
        config: VideoPublisherConfig,
    ) -> Result<VideoPublisher, MediaError> {
        let runtime = MediaRuntime::shared().map_err(MediaError::Stopped)?;
        let mut queue =
            FrameQueue::new(config.queue_frames.max(1)).map_err(|e| MediaError::Stopped(e.to_string()))?;
        queue.set_debt_skip(config.debt_skipping);
        let audio_queue = config.audio.map_or(1, |a| a.queue_frames);
        let inbox = Arc::new(FrameInbox::new(queue, audio_queue));
        if config.passthrough && config.audio.is_some() {
            return Err(MediaError::Stopped(
                "a passthrough stream carries the audio of its input; it takes no audio track".into(),
            ));
        }
        let audio = config.audio.map(|a| OpusConfig { channels: a.channels, bitrate_bps: a.bitrate_bps });
        let encoder = match config.passthrough {
            true => None,
            false => Some(StreamEncoder::new(&EncoderSettings {
                codec: config.codec,
                width: config.width,
                height: config.height,
                frame_rate: config.frame_rate,
                bitrate_bps: config.bitrate_bps,
                pool: config.encoder_pool.clone(),
                audio,
            })?),
        };
        let (driver_inbox, cpu, timing, codec, on_loss) =
            (inbox.clone(), runtime.cpu().clone(), config.timing, config.codec, config.on_channel_loss);
        let (health_tx, health) = watch::channel(ChannelHealth::default());
        let driver = StreamDriver::start_in_arbiter(&runtime.arbiter(), move |_| {
            // On the stream's arbiter, so the writer runs beside its driver.
            let writer = Supervisor::start(move |_| SegmentWriter::new(publisher));
            let mut plan = StreamPlan::new(timing, Instant::now()).with_channel_loss(on_loss);
            if codec == Codec::H264 {
                plan = plan.with_discontinuity_marker(mark_discontinuity);
            }
            StreamDriver::new(plan, driver_inbox, encoder, cpu, writer, health_tx)
        });
        Ok(VideoPublisher {
            inbox,
            passthrough: config.passthrough,
            audio: config.audio.is_some(),
            driver,
            health,
        })
    }

    /// Queues an audio frame without blocking; when the encoder is behind, the oldest queued
    /// audio frame is dropped (counted in [`AudioStats::frames_dropped_overflow`]). Frames of
    /// another rate or layout (up to 8 channels) are converted to 48 kHz and the track's
    /// channels before encoding; their pts set the audio clock.
    pub fn write_audio(&self, frame: AudioFrame) -> Result<(), MediaError> {
        if !self.audio {
            return Err(MediaError::Stopped(
                "this stream has no audio track (VideoPublisherConfig::audio)".into(),
            ));
        }
        if !self.driver.connected() {
            return Err(MediaError::Stopped("the stream driver ended".into()));
        }
        if self.inbox.push_audio(frame) {
            self.driver.do_send(FramesAvailable);
        }
        Ok(())
    }

    /// Queues a frame without blocking; when the encoder is behind, the oldest queued frame is
    /// dropped (counted).
    pub fn write_frame(&self, frame: VideoFrame) -> Result<(), MediaError> {
        if self.passthrough {
            return Err(MediaError::Stopped(
                "this stream takes encoded media (write_cut), not frames".into(),
            ));
        }
        if !self.driver.connected() {
            return Err(MediaError::Stopped("the stream driver ended".into()));
        }
        if self.inbox.push(frame) {
            // Coalesced by the inbox: never more than one in the mailbox.
            self.driver.do_send(FramesAvailable);
        }
        Ok(())
    }

    /// Like [`VideoPublisher::write_frame`], but first waits until the queue has room, so a
    /// producer faster than the encoder (a file, a benchmark) loses no frame. Live sources should
    /// use `write_frame` and let old frames go. Fails once the stream has ended for good.
    pub async fn write_frame_when_ready(&self, frame: VideoFrame) -> Result<(), MediaError> {
        if self.passthrough {
            return self.write_frame(frame);
        }
        if !self.inbox.wait_for_room().await {
            let reason = match self.stats().await {
                Ok(MediaStats { terminal_error: Some(e), .. }) => e,
                _ => "the stream driver ended".into(),
            };
            return Err(MediaError::Stopped(reason));
        }
        self.write_frame(frame)
    }

    /// Moves the stream to `publisher`'s channel: the segment open on the old channel is
    /// abandoned (its bytes counted as drained), the encoder is asked for a keyframe now, and
    /// the next segment, on the new channel, starts with it (MPEG-TS: discontinuity marked).
    /// The old channel is closed in the background, bounded, so a dead server delays nothing.
    /// Returns once the driver has switched (not when the first segment is accepted); fails
    /// once the stream has ended for good.
    pub async fn replace_channel(&self, publisher: TricklePublisher) -> Result<(), MediaError> {
        self.driver.send(ReplaceChannel(publisher)).await.map_err(|e| MediaError::Stopped(e.to_string()))?
    }

    /// The publish channel's health, updated by the driver on every writer answer (no polling):
    /// await `changed()` on the receiver to learn of failures, a loss, or the first segment a
    /// new channel accepted.
    pub fn channel_health(&self) -> watch::Receiver<ChannelHealth> {
        self.health.clone()
    }

    /// Frames waiting for the encoder now.
    pub fn queued_frames(&self) -> usize {
        self.inbox.len()
    }

    /// Totals so far.
    pub async fn stats(&self) -> Result<MediaStats, MediaError> {
        self.driver.send(GetMediaStats).await.map_err(|e| MediaError::Stopped(e.to_string()))
    }

    /// Encodes what is queued, flushes, publishes the last segment and returns the totals.
    pub async fn finish(self) -> Result<MediaStats, MediaError> {
        self.close().await
    }

    /// Hands in media already encoded and cut into segments (a stream started with
    /// [`VideoPublisherConfig::passthrough_ts`]): `access_units` access units as the cutter's
    /// events, each segment starting with a keyframe. Waits while the stream holds more than a
    /// few MiB for the network; refused once the stream has ended or if it encodes frames.
    pub async fn write_cut(&self, events: Vec<SegmentEvent>, access_units: u64) -> Result<(), MediaError> {
        let push = PushMedia { events, units: access_units };
        self.driver.send(push).await.map_err(|e| MediaError::Stopped(e.to_string()))?
    }

    /// [`VideoPublisher::finish`] through a shared handle: the stream takes no frame after.
    pub async fn close(&self) -> Result<MediaStats, MediaError> {
        self.driver.send(Finish).await.map_err(|e| MediaError::Stopped(e.to_string()))
    }
}

impl Drop for VideoPublisher {
    fn drop(&mut self) {
        // After `finish` the driver has stopped already and this is not delivered.
        self.driver.do_send(Abandon);
    }
}
