//! What a video stream reports: its timing rules, where every frame and byte went, and the
//! health of the channel it publishes on.
//!
//! Plain data a caller can print or compare; the [`plan`](super::plan) fills it in.

use std::time::{Duration, Instant};

use actix::MessageResponse;
use gateway_core::error::{SegmentFailure, TrickleError};
use gateway_core::trickle::{FIRST_SEGMENT_AFTER_SWAP, IDLE_CUTOVER, MIN_SEGMENT_WALLCLOCK};

/// Timing rules of a stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamTiming {
    /// Minimum wall-clock length of a trickle segment.
    pub min_segment_wallclock: Duration,
    /// Idle time after which the open segment is cut over.
    pub idle_cutover: Duration,
    /// After a move to a new channel, the first segment there ends at a keyframe asked for
    /// this long after it opened (at least `min_segment_wallclock`).
    pub first_segment_after_swap: Duration,
}

impl Default for StreamTiming {
    fn default() -> Self {
        StreamTiming {
            min_segment_wallclock: MIN_SEGMENT_WALLCLOCK,
            idle_cutover: IDLE_CUTOVER,
            first_segment_after_swap: FIRST_SEGMENT_AFTER_SWAP,
        }
    }
}

/// Why frames were dropped before encoding; the fields add up to [`MediaStats::frames_dropped`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameDrops {
    /// The queue was full: its oldest frame went.
    pub overflow: u64,
    /// Encoding fell behind real time (debt skipping).
    pub debt: u64,
    /// The pts did not increase.
    pub non_monotonic: u64,
    /// The encoder refused the frame.
    pub encode_failed: u64,
    /// Still queued when the stream ended for good (a terminal error): never encoded.
    pub stream_ended: u64,
}

impl FrameDrops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.overflow + self.debt + self.non_monotonic + self.encode_failed + self.stream_ended
    }
}

/// Where every audio frame of a stream went. Once a stream is finished, `frames_in =
/// frames_encoded + frames_dropped_overflow + frames_refused`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioStats {
    /// Audio frames offered.
    pub frames_in: u64,
    /// Dropped because the audio queue was full: its oldest frame went (as in the Python SDK).
    pub frames_dropped_overflow: u64,
    /// Refused by the converter or encoder, or still queued when the stream ended for good.
    pub frames_refused: u64,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Opus packets made from them.
    pub packets_encoded: u64,
    /// Packets the segmenter dropped: held longer than it keeps audio before the first video
    /// keyframe.
    pub packets_dropped: u64,
}

/// What the audio encoder did with the frames it was given (its answer to one job).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AudioCounts {
    pub(crate) frames_encoded: u64,
    pub(crate) frames_refused: u64,
}

/// The audio queue's totals: frames offered, and dropped because it was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AudioQueueCounts {
    pub(crate) frames_in: u64,
    pub(crate) dropped_overflow: u64,
}

/// Where every frame and byte of a stream went. Once a stream is finished, `frames_in =
/// frames_encoded + frames_dropped` and `bytes_encoded = bytes_published + bytes_drained`.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct MediaStats {
    /// Frames offered.
    pub frames_in: u64,
    /// Frames dropped before encoding (queue overflow, debt, non-increasing pts, bad frames,
    /// still queued when the stream ended for good); by reason in `drops`.
    pub frames_dropped: u64,
    /// `frames_dropped` by reason.
    pub drops: FrameDrops,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Trickle segments the server confirmed.
    pub segments_published: u64,
    /// Trickle segments that failed (their bytes are drained).
    pub segments_failed: u64,
    /// Media segments joined into a longer trickle segment (minimum wall-clock rule).
    pub segments_joined: u64,
    /// Idle cutovers.
    pub idle_cutovers: u64,
    /// Times the segment writer was restarted after a failed segment.
    pub writer_restarts: u32,
    /// Bytes the segmenter produced (each is published or drained).
    pub bytes_encoded: u64,
    /// Bytes of confirmed segments.
    pub bytes_published: u64,
    /// Bytes of failed segments.
    pub bytes_drained: u64,
    /// Why the stream stopped for good, if it did.
    pub terminal_error: Option<String>,
    /// Times the stream moved to another channel (`VideoPublisher::replace_channel`).
    pub channel_swaps: u32,
    /// The audio track, when the stream has one.
    pub audio: AudioStats,
}

/// What a stream does when its channel is lost for good (a terminal trickle error: channel not
/// found, end of stream, too many failed segments in a row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChannelLoss {
    /// The stream ends: encoding stops, `write_frame` fails, queued frames are counted as
    /// `stream_ended` drops.
    #[default]
    EndStream,
    /// The stream goes on without a channel until `VideoPublisher::replace_channel` gives it a
    /// new one: frames are still taken and encoded, and their bytes drained (counted), so a
    /// producer is never blocked nor refused while a replacement is found.
    AwaitReplacement,
}

/// The health of the channel a stream publishes on, as its driver sees every writer answer.
/// Everything but `generation` starts over when the stream moves to a new channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelHealth {
    /// Channel number: 0 for the first, +1 per `replace_channel`.
    pub generation: u32,
    /// Segments failed in a row on this channel (reset by a confirmed segment).
    pub consecutive_failed: u32,
    /// The last segment failure on this channel, typed.
    pub last_failure: Option<SegmentFailure>,
    /// Segments confirmed on this channel.
    pub segments_accepted: u64,
    /// When a chunk last went out on this channel (input is flowing); `None` before the first.
    pub last_sent: Option<Instant>,
    /// When the first segment on this channel was confirmed.
    pub first_accepted: Option<Instant>,
    /// Set when the channel was lost for good (a terminal trickle error: channel not found, end
    /// of stream, too many failures); with [`ChannelLoss::AwaitReplacement`] the stream waits
    /// for `replace_channel`.
    pub lost: Option<TrickleError>,
}
