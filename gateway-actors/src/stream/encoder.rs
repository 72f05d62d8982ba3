//! A stream's encoder: raw frames in, segment events out (codec + container + segmenter).
//!
//! Plain synchronous CPU work with no actor of its own: the stream's driver owns it and lends
//! it, one frame at a time, to the shared CPU pool ([`super::runtime`]), which hands it back
//! with the result. The frame goes one way; only its pts and the encoder's time come back, for
//! the frame queue's debt rule.

use std::time::{Duration, Instant};

use gateway_media::encoder::{Codec, ConfigError, EncodeError, EncodedPacket, VideoEncoder};
use gateway_media::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use gateway_media::{
    Av1Config, Av1Encoder, H264Config, H264Encoder, H264EncoderPool, IvfMuxer, Rational, TsMuxer, VideoFrame,
};

/// What to encode.
#[derive(Debug, Clone)]
pub(crate) struct EncoderSettings {
    /// Codec: H.264 (carried in MPEG-TS) or AV1 (carried in IVF).
    pub(crate) codec: Codec,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) frame_rate: Rational,
    /// Target bitrate (H.264).
    pub(crate) bitrate_bps: u32,
    /// Pool to borrow the H.264 encoder from (it goes back when released), or `None` for a
    /// private one.
    pub(crate) pool: Option<H264EncoderPool>,
}

enum PacketSegmenter {
    Ts(Segmenter<TsMuxer>),
    Ivf(Segmenter<IvfMuxer>),
}

impl PacketSegmenter {
    fn push(&mut self, packets: &[EncodedPacket], out: &mut Vec<SegmentEvent>) {
        for p in packets {
            let r = match self {
                PacketSegmenter::Ts(s) => s.push(p),
                PacketSegmenter::Ivf(s) => s.push(p),
            };
            match r {
                Ok(evs) => out.extend(evs),
                Err(e) => tracing::warn!(error = %e, "segmenter refused a packet"),
            }
        }
    }

    fn finish(&mut self) -> Vec<SegmentEvent> {
        match self {
            PacketSegmenter::Ts(s) => s.finish(),
            PacketSegmenter::Ivf(s) => s.finish(),
        }
    }
}

/// What one frame produced.
#[derive(Debug)]
pub(crate) struct EncodedFrame {
    /// The frame's presentation time (feeds the frame queue's debt rule).
    pub(crate) pts_90k: i64,
    /// Segment events, in order.
    pub(crate) events: Vec<SegmentEvent>,
    /// Time the encoder took (feeds the debt rule too).
    pub(crate) took: Duration,
}

/// One stream's encoder and segmenter.
pub(crate) struct StreamEncoder {
    /// `None` once flushed: the encoder is released at once (back to its pool, if it has one).
    encoder: Option<Box<dyn VideoEncoder>>,
    segmenter: PacketSegmenter,
}

impl std::fmt::Debug for StreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamEncoder").field("flushed", &self.encoder.is_none()).finish()
    }
}

impl StreamEncoder {
    /// Builds the encoder (borrowed from the pool for H.264 when one is given).
    pub(crate) fn new(settings: &EncoderSettings) -> Result<StreamEncoder, EncodeError> {
        let (encoder, segmenter): (Box<dyn VideoEncoder>, PacketSegmenter) = match settings.codec {
            Codec::Av1 => {
                let mut c = Av1Config::new(settings.width, settings.height);
                c.frame_rate = settings.frame_rate;
                let muxer = IvfMuxer::new(settings.width, settings.height)
                    .map_err(|e| EncodeError::Config(ConfigError::Invalid(e.to_string())))?;
                (
                    Box::new(Av1Encoder::new(c)?),
                    PacketSegmenter::Ivf(Segmenter::with_muxer(muxer, SegmenterConfig::default())),
                )
            }
            Codec::Opus => {
                return Err(EncodeError::Config(ConfigError::Invalid(
                    "Opus is an audio codec; video is H.264 or AV1".into(),
                )))
            }
            Codec::H264 => {
                let mut c = H264Config::new(settings.width, settings.height);
                c.frame_rate = settings.frame_rate;
                c.bitrate_bps = settings.bitrate_bps;
                let encoder: Box<dyn VideoEncoder> = match &settings.pool {
                    Some(pool) => Box::new(pool.encoder(c)?),
                    None => Box::new(H264Encoder::new(c)?),
                };
                (encoder, PacketSegmenter::Ts(Segmenter::mpegts(SegmenterConfig::default())))
            }
        };
        Ok(StreamEncoder { encoder: Some(encoder), segmenter })
    }

    /// Encodes one frame.
    pub(crate) fn encode(&mut self, frame: VideoFrame) -> Result<EncodedFrame, EncodeError> {
        let t0 = Instant::now();
        let packets = self.encoder.as_mut().ok_or(EncodeError::Flushed)?.encode(&frame)?;
        let mut events = Vec::new();
        self.segmenter.push(&packets, &mut events);
        Ok(EncodedFrame { pts_90k: frame.pts_90k(), events, took: t0.elapsed() })
    }

    /// Makes the next frame a keyframe and cuts a new segment at it, however young the open
    /// one: a stream moving to another channel opens it with this keyframe instead of waiting
    /// for the next scheduled one.
    pub(crate) fn request_keyframe(&mut self) {
        if let Some(encoder) = self.encoder.as_mut() {
            encoder.request_keyframe();
        }
        match &mut self.segmenter {
            PacketSegmenter::Ts(s) => s.cut_at_next_keyframe(),
            PacketSegmenter::Ivf(s) => s.cut_at_next_keyframe(),
        }
    }

    /// Drains the encoder, closes the last segment and releases the encoder; later frames are
    /// refused with [`EncodeError::Flushed`].
    pub(crate) fn flush(&mut self) -> Result<Vec<SegmentEvent>, EncodeError> {
        let mut encoder = self.encoder.take().ok_or(EncodeError::Flushed)?;
        let packets = encoder.flush()?;
        drop(encoder);
        let mut events = Vec::new();
        self.segmenter.push(&packets, &mut events);
        events.extend(self.segmenter.finish());
        Ok(events)
    }
}
