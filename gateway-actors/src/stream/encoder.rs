//! A stream's encoder: raw frames in, segment events out (codec + container + segmenter), with
//! an Opus encoder beside the video one when the stream has an audio track (its packets go
//! into the same segmenter, which interleaves them by time).
//!
//! Plain synchronous CPU work with no actor of its own: the stream's driver owns it and lends
//! it, one frame at a time, to the shared CPU pool ([`super::runtime`]), which hands it back
//! with the result. The frame goes one way; only its pts and the encoder's time come back, for
//! the frame queue's debt rule.

use std::time::{Duration, Instant};

use gateway_media::encoder::{Codec, ConfigError, EncodeError, EncodedPacket, VideoEncoder};
use gateway_media::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use gateway_media::{
    AudioConverter, AudioFrame, Av1Config, Av1Encoder, H264Config, H264Encoder, H264EncoderPool, IvfMuxer,
    OpusConfig, OpusEncoder, Rational, TsConfig, TsMuxer, VideoFrame,
};

use super::stats::AudioCounts;

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
    /// The audio track's encoder settings, if the stream has one (H.264 in MPEG-TS only).
    pub(crate) audio: Option<OpusConfig>,
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

    fn audio_dropped(&self) -> u64 {
        match self {
            PacketSegmenter::Ts(s) => s.audio_dropped(),
            PacketSegmenter::Ivf(s) => s.audio_dropped(),
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
    /// What became of the audio frames encoded with it.
    pub(crate) audio: AudioCounts,
    /// Why the video frame was not encoded, if it was not (the audio's events are kept).
    pub(crate) refused: Option<EncodeError>,
}

/// A frame after [`convert`].
enum Converted {
    /// Already 48 kHz with the track's channels.
    Same,
    /// Converted; `None` while the resampler gathers a chunk.
    Into(Option<AudioFrame>),
}

/// Brings `frame` to 48 kHz and `channels`, through `converter` (made, or made again, for the
/// frame's rate and layout). A source that changes its format loses the few milliseconds the
/// old converter still held.
fn convert(
    converter: &mut Option<AudioConverter>,
    channels: u16,
    frame: &AudioFrame,
) -> Result<Converted, gateway_media::AudioError> {
    if frame.rate() == gateway_media::ts::opus::OPUS_RATE
        && frame.channels() == channels
        && converter.is_none()
    {
        return Ok(Converted::Same);
    }
    if !converter.as_ref().is_some_and(|c| c.takes(frame)) {
        *converter = Some(AudioConverter::new(frame.rate(), frame.channels(), channels)?);
    }
    let c = converter.as_mut().expect("made above");
    c.convert(frame).map(Converted::Into)
}

/// What a job of audio frames alone produced.
#[derive(Debug)]
pub(crate) struct EncodedAudio {
    pub(crate) events: Vec<SegmentEvent>,
    pub(crate) counts: AudioCounts,
}

/// One stream's encoder and segmenter.
pub(crate) struct StreamEncoder {
    /// `None` once flushed: the encoder is released at once (back to its pool, if it has one).
    encoder: Option<Box<dyn VideoEncoder>>,
    /// The audio track's encoder, if any.
    audio: Option<OpusEncoder>,
    /// Brings frames of another rate or layout to the track's; made for the first such frame,
    /// made again when the source changes.
    converter: Option<AudioConverter>,
    /// Opus packets made, the flush's included.
    audio_packets: u64,
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
            Codec::Opus | Codec::Aac => {
                return Err(EncodeError::Config(ConfigError::Invalid(format!(
                    "{} is an audio codec; video is H.264 or AV1",
                    settings.codec
                ))))
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
        let Some(audio_config) = settings.audio else {
            return Ok(StreamEncoder {
                encoder: Some(encoder),
                audio: None,
                converter: None,
                audio_packets: 0,
                segmenter,
            });
        };
        if settings.codec != Codec::H264 {
            return Err(EncodeError::Config(ConfigError::Invalid(format!(
                "an audio track travels in MPEG-TS with H.264, not with {}",
                settings.codec
            ))));
        }
        let audio = OpusEncoder::new(audio_config)
            .map_err(|e| EncodeError::Config(ConfigError::Invalid(e.to_string())))?;
        let ts = TsConfig::with_opus(audio_config.channels as u8, audio.pre_skip());
        let muxer = TsMuxer::new(ts).map_err(|e| EncodeError::Config(ConfigError::Invalid(e.to_string())))?;
        let segmenter = PacketSegmenter::Ts(Segmenter::with_muxer(muxer, SegmenterConfig::default()));
        Ok(StreamEncoder {
            encoder: Some(encoder),
            audio: Some(audio),
            converter: None,
            audio_packets: 0,
            segmenter,
        })
    }

    /// Encodes audio frames into `events`; frames the encoder refuses are counted, not fatal.
    fn push_audio(&mut self, frames: Vec<AudioFrame>, events: &mut Vec<SegmentEvent>) -> AudioCounts {
        let mut counts = AudioCounts::default();
        let Some(encoder) = self.audio.as_mut() else {
            counts.frames_refused = frames.len() as u64;
            return counts;
        };
        for frame in frames {
            let converted = match convert(&mut self.converter, encoder.channels(), &frame) {
                Ok(Converted::Same) => Ok(Some(frame)),
                Ok(Converted::Into(f)) => Ok(f),
                Err(e) => Err(e),
            };
            let encoded = match converted {
                Ok(Some(f)) => encoder.encode(&f),
                // The resampler is gathering a chunk: the frame is taken, its packets follow.
                Ok(None) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
            match encoded {
                Ok(packets) => {
                    counts.frames_encoded += 1;
                    self.audio_packets += packets.len() as u64;
                    self.segmenter.push(&packets, events);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audio frame not encoded");
                    counts.frames_refused += 1;
                }
            }
        }
        counts
    }

    /// Encodes audio frames alone (no video frame was waiting).
    pub(crate) fn encode_audio(&mut self, frames: Vec<AudioFrame>) -> EncodedAudio {
        let mut events = Vec::new();
        let counts = self.push_audio(frames, &mut events);
        EncodedAudio { events, counts }
    }

    /// Opus packets made so far, and those the segmenter dropped (held too long before the
    /// first keyframe).
    pub(crate) fn audio_packets(&self) -> (u64, u64) {
        (self.audio_packets, self.segmenter.audio_dropped())
    }

    /// Encodes one frame, after the audio frames that came with it. A refused video frame
    /// keeps the audio's events.
    pub(crate) fn encode(&mut self, frame: VideoFrame, audio: Vec<AudioFrame>) -> EncodedFrame {
        let t0 = Instant::now();
        let mut events = Vec::new();
        let audio = self.push_audio(audio, &mut events);
        let video = self.encoder.as_mut().ok_or(EncodeError::Flushed).and_then(|e| e.encode(&frame));
        let refused = match video {
            Ok(packets) => {
                self.segmenter.push(&packets, &mut events);
                None
            }
            Err(e) => Some(e),
        };
        EncodedFrame { pts_90k: frame.pts_90k(), events, took: t0.elapsed(), audio, refused }
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
        if let Some(mut audio) = self.audio.take() {
            let tail = self.converter.take().map(|mut c| c.flush());
            if let Some(Ok(Some(frame))) = tail {
                match audio.encode(&frame) {
                    Ok(packets) => {
                        self.audio_packets += packets.len() as u64;
                        self.segmenter.push(&packets, &mut events);
                    }
                    Err(e) => tracing::warn!(error = %e, "the resampler's last audio not encoded"),
                }
            }
            match audio.flush() {
                Ok(packets) => {
                    self.audio_packets += packets.len() as u64;
                    self.segmenter.push(&packets, &mut events);
                }
                Err(e) => tracing::warn!(error = %e, "audio flush failed"),
            }
        }
        events.extend(self.segmenter.finish());
        Ok(events)
    }
}
