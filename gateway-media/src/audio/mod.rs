//! Audio: PCM frames in, Opus packets out, and back.
//!
//! [`AudioFrame`] holds interleaved `f32` samples with their rate, channel count and pts;
//! [`OpusEncoder`] turns 48 kHz frames into 20 ms Opus packets stamped from one clock (the
//! first frame's pts plus the samples counted since, so audio never drifts from the video it
//! started with); [`OpusDecoder`] turns packets back into PCM, dropping the encoder's pre-skip.
//! [`Tone`] generates a test signal, as [`crate::TestPattern`] does for video.

mod frame;
#[cfg(feature = "opus")]
mod opus;
mod tone;

pub use frame::{AudioError, AudioFrame};
#[cfg(feature = "opus")]
pub use opus::{OpusConfig, OpusDecoder, OpusEncoder, OPUS_FRAME_SAMPLES};
pub use tone::Tone;
