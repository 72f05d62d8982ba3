//! Opus encoding and decoding (the pure-Rust `opus-pure` codec), 48 kHz, mono or stereo,
//! 20 ms packets.
//!
//! The encoder stamps each packet from one clock: the first frame's pts, then the samples
//! counted since (960 per packet = 1800 ticks of 90 kHz). A source whose pts jump (a gap) is
//! therefore played back to back; the video, stamped from the same source clock, stays within
//! a packet of it as long as the audio is continuous, which live capture and files are.

use opus_pure::{Application, OpusDecoder as RawDecoder, OpusEncoder as RawEncoder};

use super::frame::{AudioError, AudioFrame};
use crate::encoder::{Codec, EncodedPacket};
use crate::ts::opus::OPUS_RATE;

/// Samples per channel in one 20 ms packet at 48 kHz.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// The largest packet the encoder writes (RFC 6716 allows 1275 bytes per frame).
const MAX_PACKET: usize = 1500;
/// 90 kHz ticks per 48 kHz sample: 15/8.
const TICKS_PER_SAMPLE_NUM: i64 = 15;
const TICKS_PER_SAMPLE_DEN: i64 = 8;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusConfig {
    /// 1 or 2.
    pub channels: u16,
    /// Target bits per second (the Python SDK leaves libopus's default: about 96 kbit/s for
    /// stereo, 64 kbit/s for mono).
    pub bitrate_bps: u32,
}

impl OpusConfig {
    /// `channels` at the usual rate for them.
    pub fn new(channels: u16) -> Self {
        Self { channels, bitrate_bps: if channels == 1 { 64_000 } else { 96_000 } }
    }
}

/// PCM at 48 kHz in, Opus packets ([`Codec::Opus`]) out.
pub struct OpusEncoder {
    raw: RawEncoder,
    channels: u16,
    /// Samples waiting for a whole packet.
    pending: Vec<f32>,
    /// The pts (90 kHz) of sample 0, from the first frame.
    origin: Option<i64>,
    /// Sample instants encoded so far.
    encoded: i64,
    finished: bool,
    out: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("channels", &self.channels)
            .field("encoded", &self.encoded)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder for `config`.
    pub fn new(config: OpusConfig) -> Result<Self, AudioError> {
        if !(1..=2).contains(&config.channels) {
            return Err(AudioError::Channels(config.channels));
        }
        let mut raw = RawEncoder::new(OPUS_RATE as i32, usize::from(config.channels), Application::Audio)
            .map_err(|e| AudioError::Codec(e.to_string()))?;
        raw.bitrate_bps = i32::try_from(config.bitrate_bps).unwrap_or(i32::MAX);
        Ok(Self {
            raw,
            channels: config.channels,
            pending: Vec::new(),
            origin: None,
            encoded: 0,
            finished: false,
            out: vec![0; MAX_PACKET],
        })
    }

    /// Channels it encodes.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Samples (48 kHz) of delay the decoder must drop at the start: the TS start trim.
    pub fn pre_skip(&self) -> u16 {
        u16::try_from(self.raw.lookahead()).unwrap_or(u16::MAX)
    }

    /// Adds a frame; returns the packets it completed.
    pub fn encode(&mut self, frame: &AudioFrame) -> Result<Vec<EncodedPacket>, AudioError> {
        if self.finished {
            return Err(AudioError::Finished);
        }
        if frame.rate() != OPUS_RATE {
            return Err(AudioError::Rate { expected: OPUS_RATE, got: frame.rate() });
        }
        if frame.channels() != self.channels {
            return Err(AudioError::ChannelsChanged { expected: self.channels, got: frame.channels() });
        }
        self.origin.get_or_insert(frame.pts_90k());
        self.pending.extend_from_slice(frame.samples());
        self.drain(false)
    }

    /// Encodes what is left, padded with silence to a whole packet; takes no audio after.
    pub fn flush(&mut self) -> Result<Vec<EncodedPacket>, AudioError> {
        if self.finished {
            return Ok(Vec::new());
        }
        self.finished = true;
        self.drain(true)
    }

    fn drain(&mut self, pad: bool) -> Result<Vec<EncodedPacket>, AudioError> {
        let per_packet = OPUS_FRAME_SAMPLES * usize::from(self.channels);
        if pad && !self.pending.len().is_multiple_of(per_packet) {
            let whole = self.pending.len().div_ceil(per_packet) * per_packet;
            self.pending.resize(whole, 0.0);
        }
        let mut packets = Vec::with_capacity(self.pending.len() / per_packet);
        let origin = self.origin.unwrap_or(0);
        let mut used = 0;
        while self.pending.len() - used >= per_packet {
            let pcm = &self.pending[used..used + per_packet];
            let n = self
                .raw
                .encode(pcm, OPUS_FRAME_SAMPLES, &mut self.out)
                .map_err(|e| AudioError::Codec(e.to_string()))?;
            let pts = origin + self.encoded * TICKS_PER_SAMPLE_NUM / TICKS_PER_SAMPLE_DEN;
            packets.push(EncodedPacket {
                codec: Codec::Opus,
                data: bytes::Bytes::copy_from_slice(&self.out[..n]),
                pts,
                dts: pts,
                keyframe: true,
            });
            self.encoded += OPUS_FRAME_SAMPLES as i64;
            used += per_packet;
        }
        self.pending.drain(..used);
        Ok(packets)
    }
}

/// Opus packets in, 48 kHz interleaved PCM out.
pub struct OpusDecoder {
    raw: RawDecoder,
    channels: u16,
    /// Samples still to drop from the start (the pre-skip).
    skip: usize,
    buf: Vec<f32>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").field("channels", &self.channels).finish()
    }
}

impl OpusDecoder {
    /// A decoder of `channels` (1 or 2).
    pub fn new(channels: u16) -> Result<Self, AudioError> {
        if !(1..=2).contains(&channels) {
            return Err(AudioError::Channels(channels));
        }
        let raw = RawDecoder::new(OPUS_RATE as i32, usize::from(channels))
            .map_err(|e| AudioError::Codec(e.to_string()))?;
        // 120 ms is the longest packet Opus allows.
        Ok(Self { raw, channels, skip: 0, buf: vec![0.0; 5760 * usize::from(channels)] })
    }

    /// Drops the next `samples` decoded sample instants (a packet's start trim).
    pub fn trim_start(&mut self, samples: u16) {
        self.skip += usize::from(samples);
    }

    /// Decodes one packet; returns its interleaved samples (fewer while a start trim lasts).
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>, AudioError> {
        let n = self.raw.decode(packet, 5760, &mut self.buf).map_err(|e| AudioError::Codec(e.to_string()))?;
        let skip = self.skip.min(n);
        self.skip -= skip;
        let ch = usize::from(self.channels);
        Ok(self.buf[skip * ch..n * ch].to_vec())
    }
}
