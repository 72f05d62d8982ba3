//! One block of PCM audio: interleaved `f32` samples in [-1, 1], their rate, channel count
//! and presentation time.

use thiserror::Error;

use crate::time::{rescale, Rational, TIME_BASE_90K};

/// The most channels a frame may have (7.1); layouts beyond stereo are folded down to the
/// track's by [`super::AudioConverter`].
pub const MAX_CHANNELS: u16 = 8;

/// Why audio was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AudioError {
    /// A channel count this path does not carry.
    #[error("{0} audio channels; tracks are mono or stereo, frames have 1 to 8 channels")]
    Channels(u16),
    /// A sample rate this path does not take.
    #[error("audio at {got} Hz; this encoder takes {expected} Hz (resample first)")]
    Rate {
        /// What the encoder takes.
        expected: u32,
        /// What came.
        got: u32,
    },
    /// The sample count is not a whole number of frames of the channel count.
    #[error("{samples} samples do not divide into {channels} channels")]
    Interleave {
        /// Samples given.
        samples: usize,
        /// Channels declared.
        channels: u16,
    },
    /// A frame's channel count differs from the stream's.
    #[error("a frame of {got} channels in a stream of {expected}")]
    ChannelsChanged {
        /// The stream's.
        expected: u16,
        /// The frame's.
        got: u16,
    },
    /// The codec refused its input or configuration.
    #[error("the Opus codec: {0}")]
    Codec(String),
    /// The encoder was flushed and takes no more audio.
    #[error("the audio encoder is finished")]
    Finished,
    /// Audio of a codec this crate does not decode (only Opus is).
    #[error("cannot decode audio of stream type {stream_type:#04x}: only Opus is decoded")]
    UnsupportedCodec {
        /// The PMT stream type of the audio stream.
        stream_type: u8,
    },
}

/// Interleaved PCM samples with their timing.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFrame {
    samples: Vec<f32>,
    channels: u16,
    rate: u32,
    pts: i64,
    time_base: Rational,
}

impl AudioFrame {
    /// A frame of `samples` (interleaved, `channels` per sample instant) at `rate` Hz whose
    /// first sample plays at `pts` ticks of `time_base`.
    pub fn new(
        samples: Vec<f32>,
        channels: u16,
        rate: u32,
        pts: i64,
        time_base: Rational,
    ) -> Result<Self, AudioError> {
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(AudioError::Channels(channels));
        }
        if !samples.len().is_multiple_of(usize::from(channels)) {
            return Err(AudioError::Interleave { samples: samples.len(), channels });
        }
        if rate == 0 {
            return Err(AudioError::Rate { expected: 48_000, got: 0 });
        }
        Ok(Self { samples, channels, rate, pts, time_base })
    }

    /// The interleaved samples.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// Channels (1 to [`MAX_CHANNELS`]).
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Sample rate, Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Sample instants (samples per channel).
    pub fn len(&self) -> usize {
        self.samples.len() / usize::from(self.channels)
    }

    /// Whether it holds no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Presentation time of the first sample, in ticks of [`Self::time_base`].
    pub fn pts(&self) -> i64 {
        self.pts
    }

    /// Seconds per pts tick.
    pub fn time_base(&self) -> Rational {
        self.time_base
    }

    /// The pts on the 90 kHz clock.
    pub fn pts_90k(&self) -> i64 {
        rescale(self.pts, self.time_base, TIME_BASE_90K)
    }
}
