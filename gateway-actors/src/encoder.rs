//! The `FrameEncoder` actor: raw frames in, segment events out, on a `SyncArbiter` thread so CPU
//! work never runs on an I/O thread.
//!
//! SyncArbiter queues are unbounded, so admission control lives with the caller: the stream
//! supervisor keeps exactly one frame in flight and pulls the next from its bounded
//! [`gateway_media::FrameQueue`] only when the previous one is done.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix::prelude::*;
use gateway_media::encoder::{Codec, ConfigError, EncodeError, EncodedPacket, VideoEncoder};
use gateway_media::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use gateway_media::{
    Av1Config, Av1Encoder, H264Config, H264Encoder, H264EncoderPool, IvfMuxer, Rational, TsMuxer, VideoFrame,
};

/// What to encode.
#[derive(Debug, Clone)]
pub struct EncoderSettings {
    /// Codec: H.264 (carried in MPEG-TS) or AV1 (carried in IVF).
    pub codec: Codec,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Nominal frame rate.
    pub frame_rate: Rational,
    /// Target bitrate (H.264).
    pub bitrate_bps: u32,
    /// Pool to borrow the H.264 encoder from (it returns when the actor stops), or `None`
    /// for a private one.
    pub pool: Option<H264EncoderPool>,
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

    fn finish(&mut self) -> Option<SegmentEvent> {
        match self {
            PacketSegmenter::Ts(s) => s.finish(),
            PacketSegmenter::Ivf(s) => s.finish(),
        }
    }
}

/// The encoder actor (one per stream, on its own SyncArbiter thread).
pub struct FrameEncoder {
    /// `None` once flushed: the encoder is released at once (back to its pool, if it has one),
    /// not when the SyncArbiter thread gets round to dropping the actor.
    encoder: Option<Box<dyn VideoEncoder>>,
    segmenter: PacketSegmenter,
}

impl Actor for FrameEncoder {
    type Context = SyncContext<Self>;
}

/// Encode one frame.
#[derive(Message)]
#[rtype(result = "Result<EncodedFrame, EncodeError>")]
pub struct EncodeFrame(pub VideoFrame);

/// Drain the encoder, close the last segment and release the encoder; later frames are
/// refused with [`EncodeError::Flushed`].
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<SegmentEvent>, EncodeError>")]
pub struct FlushEncoder;

/// What one frame produced.
#[derive(Debug)]
pub struct EncodedFrame {
    /// The frame, handed back (the frame queue's debt rule reads its pts).
    pub frame: VideoFrame,
    /// Segment events, in order.
    pub events: Vec<SegmentEvent>,
    /// Time the encoder took (feeds the frame queue's debt rule).
    pub took: Duration,
}

impl Handler<EncodeFrame> for FrameEncoder {
    type Result = Result<EncodedFrame, EncodeError>;
    fn handle(&mut self, msg: EncodeFrame, _: &mut SyncContext<Self>) -> Self::Result {
        let t0 = Instant::now();
        let packets = self.encoder.as_mut().ok_or(EncodeError::Flushed)?.encode(&msg.0)?;
        let mut events = Vec::new();
        self.segmenter.push(&packets, &mut events);
        Ok(EncodedFrame { frame: msg.0, events, took: t0.elapsed() })
    }
}

impl Handler<FlushEncoder> for FrameEncoder {
    type Result = Result<Vec<SegmentEvent>, EncodeError>;
    fn handle(&mut self, _: FlushEncoder, _: &mut SyncContext<Self>) -> Self::Result {
        let Some(mut encoder) = self.encoder.take() else {
            return Err(EncodeError::Flushed);
        };
        let packets = encoder.flush()?;
        drop(encoder);
        let mut events = Vec::new();
        self.segmenter.push(&packets, &mut events);
        events.extend(self.segmenter.finish());
        Ok(events)
    }
}

/// Builds the encoder and starts it on a SyncArbiter. Must run inside an actix System.
pub fn start_frame_encoder(settings: &EncoderSettings) -> Result<Addr<FrameEncoder>, EncodeError> {
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
        _ => {
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
    // One thread: the factory runs once and takes the prepared encoder.
    let slot = Mutex::new(Some(FrameEncoder { encoder: Some(encoder), segmenter }));
    Ok(SyncArbiter::start(1, move || {
        slot.lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a one-thread SyncArbiter builds one encoder")
    }))
}
