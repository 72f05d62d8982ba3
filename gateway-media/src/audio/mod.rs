//! Audio: PCM frames in, Opus packets out, and back.
//!
//! [`AudioFrame`] holds interleaved `f32` samples with their rate, channel count and pts;
//! [`OpusEncoder`] turns 48 kHz frames into 20 ms Opus packets stamped from one clock (the
//! first frame's pts plus the samples counted since, so audio never drifts from the video it
//! started with); [`OpusDecoder`] turns packets back into PCM, dropping the encoder's pre-skip,
//! and [`AudioUnitDecoder`] does so for the demuxer's audio units, trims and all.
//! [`AudioConverter`] brings other rates and layouts to 48 kHz mono or stereo first.
//! [`Tone`] generates a test signal, as [`crate::TestPattern`] does for video, and
//! [`wav::WavReader`] reads WAV files and pipes, [`wav::WavWriter`] writes WAV files.

#[cfg(feature = "opus")]
mod convert;
mod frame;
#[cfg(feature = "opus")]
mod opus;
mod tone;
#[cfg(feature = "opus")]
mod unit_decoder;
pub mod wav;

#[cfg(feature = "opus")]
pub use convert::AudioConverter;
pub use frame::{AudioError, AudioFrame, MAX_CHANNELS};
#[cfg(feature = "opus")]
pub use opus::{OpusConfig, OpusDecoder, OpusEncoder, OPUS_FRAME_SAMPLES};
pub use tone::Tone;
#[cfg(feature = "opus")]
pub use unit_decoder::AudioUnitDecoder;
