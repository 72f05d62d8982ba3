//! The encoder seam: one [`VideoEncoder`] trait over H.264 ([`crate::H264Encoder`]) and AV1
//! ([`crate::Av1Encoder`]), the [`EncodedPacket`] they emit, their shared errors and the
//! media-time keyframe clock both use.

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::frame::{check_even, check_size, FrameError, VideoFrame};
use crate::time::{duration_to_ticks_90k, Rational};

/// Default distance between forced keyframes, in media time (matches the Python SDK).
pub const DEFAULT_KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

/// Which bitstream a packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC, Annex B byte stream (start codes), one access unit per packet.
    H264,
    /// AV1, low-overhead OBU format, one temporal unit per packet.
    Av1,
    /// Opus audio, one Opus packet (usually 20 ms) per packet.
    Opus,
    /// AAC audio, one ADTS frame (header and raw data block) per packet, as RTMP ingest carries
    /// it through without decoding.
    Aac,
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::H264 => "H.264",
            Codec::Av1 => "AV1",
            Codec::Opus => "Opus",
            Codec::Aac => "AAC",
        })
    }
}

/// One compressed picture, ready for a muxer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedPacket {
    /// The bitstream this packet belongs to.
    pub codec: Codec,
    /// The compressed access unit / temporal unit.
    pub data: Bytes,
    /// Presentation time on the 90 kHz clock.
    pub pts: i64,
    /// Decode time on the 90 kHz clock. Equal to `pts` for our encoders (no B-frames); kept
    /// separate so a muxer is correct for any encoder.
    pub dts: i64,
    /// True for a random access point (H.264 IDR with SPS/PPS in front, AV1 key frame with a
    /// sequence header): decoding can start here.
    pub keyframe: bool,
}

/// A configuration that cannot work, found before any frame is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The frame size is unusable (zero, too large or odd).
    #[error("invalid frame size: {0}")]
    Size(#[from] FrameError),
    /// Frame rate with a zero part.
    #[error("frame rate {num}/{den} is invalid; give frames per second such as 30/1 or 30000/1001")]
    ZeroFrameRate {
        /// Numerator given.
        num: u32,
        /// Denominator given.
        den: u32,
    },
    /// Target bitrate of zero.
    #[error("target bitrate is zero; give bits per second, e.g. 1_000_000")]
    ZeroBitrate,
    /// Keyframe interval of zero.
    #[error("keyframe interval is zero; give a media-time interval such as 2 s")]
    ZeroKeyframeInterval,
    /// Codec-specific parameter out of range.
    #[error("{0}")]
    Invalid(String),
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoder was configured wrongly.
    #[error("encoder configuration: {0}")]
    Config(#[from] ConfigError),
    /// The frame itself is malformed.
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The frame's size differs from the size the encoder was created for.
    #[error("frame is {got_width}x{got_height} but the encoder was set up for {width}x{height}; create a new encoder to change size")]
    SizeMismatch {
        /// Configured width.
        width: u32,
        /// Configured height.
        height: u32,
        /// Frame width.
        got_width: u32,
        /// Frame height.
        got_height: u32,
    },
    /// The frame's timestamp does not move forward.
    #[error(
        "frame pts {pts} (90 kHz) is not after the previous frame's {previous}; timestamps must increase"
    )]
    NonMonotonicPts {
        /// This frame's pts, 90 kHz.
        pts: i64,
        /// The previous frame's pts, 90 kHz.
        previous: i64,
    },
    /// `encode` was called after `flush`.
    #[error("encoder was already flushed; create a new one")]
    Flushed,
    /// The codec library reported an error.
    #[error("{codec} encoder failed: {message}")]
    Backend {
        /// Which encoder.
        codec: Codec,
        /// The library's message.
        message: String,
    },
}

/// A video encoder: I420 frames in, compressed packets out, in decode order.
///
/// Encoders are synchronous and CPU-bound: run them on a dedicated thread (or actix
/// `SyncArbiter`), never on an async executor thread.
pub trait VideoEncoder: Send {
    /// The bitstream this encoder produces.
    fn codec(&self) -> Codec;

    /// The frame size the encoder accepts.
    fn dimensions(&self) -> (u32, u32);

    /// Encodes one frame. May return zero packets (the encoder is buffering) or several
    /// (it is catching up); every frame sent eventually comes out, at the latest from
    /// [`Self::flush`]. Frames must have the configured size and strictly increasing pts.
    fn encode(&mut self, frame: &VideoFrame) -> Result<Vec<EncodedPacket>, EncodeError>;

    /// Makes the next frame a keyframe regardless of the media-time schedule (e.g. when a
    /// new subscriber joins or a segment must start now).
    fn request_keyframe(&mut self);

    /// Drains every buffered packet; the encoder accepts no frames afterwards.
    fn flush(&mut self) -> Result<Vec<EncodedPacket>, EncodeError>;
}

/// Settings both encoders validate the same way.
pub(crate) fn validate_common(
    width: u32,
    height: u32,
    frame_rate: Rational,
    keyframe_interval: Duration,
) -> Result<(), ConfigError> {
    check_size(width, height)?;
    check_even(width, height)?;
    if !frame_rate.is_positive() {
        return Err(ConfigError::ZeroFrameRate { num: frame_rate.num, den: frame_rate.den });
    }
    if keyframe_interval.is_zero() {
        return Err(ConfigError::ZeroKeyframeInterval);
    }
    Ok(())
}

/// Checks a frame against the encoder's size and the previous pts, returning its 90 kHz pts.
pub(crate) fn check_frame(
    frame: &VideoFrame,
    width: u32,
    height: u32,
    previous_pts: Option<i64>,
) -> Result<i64, EncodeError> {
    if frame.width() != width || frame.height() != height {
        return Err(EncodeError::SizeMismatch {
            width,
            height,
            got_width: frame.width(),
            got_height: frame.height(),
        });
    }
    let pts = frame.pts_90k();
    if let Some(previous) = previous_pts {
        if pts <= previous {
            return Err(EncodeError::NonMonotonicPts { pts, previous });
        }
    }
    Ok(pts)
}

/// Decides which frames must be keyframes: the first one, any frame at least `interval` of
/// media time after the last keyframe, and the next frame after [`Self::request`].
///
/// Media time, not frame count, so a variable or dropped-frame rate still gives segments of
/// the target duration (the Python SDK's rule).
#[derive(Clone, Debug)]
pub struct KeyframeClock {
    interval_90k: i64,
    last_key: Option<i64>,
    requested: bool,
}

impl KeyframeClock {
    /// A clock forcing a keyframe every `interval` of media time.
    pub fn new(interval: Duration) -> Self {
        Self { interval_90k: duration_to_ticks_90k(interval).max(1), last_key: None, requested: false }
    }

    /// Forces the next frame to be a keyframe.
    pub fn request(&mut self) {
        self.requested = true;
    }

    /// Whether the frame at `pts_90k` must be a keyframe. Does not change state: call
    /// [`Self::keyframe_at`] once the encoder reports the frame type it actually produced.
    pub fn is_due(&self, pts_90k: i64) -> bool {
        self.requested
            || match self.last_key {
                None => true,
                Some(last) => pts_90k - last >= self.interval_90k,
            }
    }

    /// Records that a keyframe was produced at `pts_90k` (forced or the encoder's own choice),
    /// restarting the interval from there.
    pub fn keyframe_at(&mut self, pts_90k: i64) {
        self.last_key = Some(pts_90k);
        self.requested = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_clock_follows_media_time() {
        let mut c = KeyframeClock::new(Duration::from_secs(2));
        assert!(c.is_due(0));
        c.keyframe_at(0);
        assert!(!c.is_due(3000));
        assert!(!c.is_due(179_999));
        assert!(c.is_due(180_000));
        // A late frame (dropped frames before it) is still a keyframe, and the next interval
        // counts from it.
        c.keyframe_at(200_000);
        assert!(!c.is_due(379_999));
        assert!(c.is_due(380_000));
        c.request();
        assert!(c.is_due(200_001));
        c.keyframe_at(200_001);
        assert!(!c.is_due(200_002));
    }

    #[test]
    fn common_validation() {
        let d = Duration::from_secs(2);
        let fps = Rational::new(30, 1);
        assert!(validate_common(320, 180, fps, d).is_ok());
        assert!(matches!(
            validate_common(321, 180, fps, d),
            Err(ConfigError::Size(FrameError::OddDimensions { .. }))
        ));
        assert!(matches!(
            validate_common(0, 180, fps, d),
            Err(ConfigError::Size(FrameError::ZeroSize { .. }))
        ));
        assert_eq!(
            validate_common(320, 180, Rational::new(0, 1), d),
            Err(ConfigError::ZeroFrameRate { num: 0, den: 1 })
        );
        assert_eq!(validate_common(320, 180, fps, Duration::ZERO), Err(ConfigError::ZeroKeyframeInterval));
    }
}
