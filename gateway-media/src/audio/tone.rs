//! A test signal: a sine per channel (a different pitch on each, so a swapped layout shows),
//! in frames of a fixed length with pts counted in samples.

use super::frame::{AudioError, AudioFrame};
use crate::time::Rational;

/// Generates sine tones frame by frame.
#[derive(Debug, Clone)]
pub struct Tone {
    channels: u16,
    rate: u32,
    frame_len: usize,
    next: u64,
}

impl Tone {
    /// `channels` at `rate` Hz, `frame_len` samples per frame (e.g. 1024 at 48 kHz).
    pub fn new(channels: u16, rate: u32, frame_len: usize) -> Result<Self, AudioError> {
        if !(1..=super::frame::MAX_CHANNELS).contains(&channels) {
            return Err(AudioError::Channels(channels));
        }
        if rate == 0 {
            return Err(AudioError::Rate { expected: 48_000, got: 0 });
        }
        Ok(Self { channels, rate, frame_len: frame_len.max(1), next: 0 })
    }

    /// The pitch of channel `c`, Hz.
    pub fn pitch(c: u16) -> f32 {
        440.0 * (1.0 + f32::from(c) * 0.5)
    }

    /// The next frame (pts in samples, time base 1/rate).
    pub fn next_frame(&mut self) -> AudioFrame {
        let mut samples = Vec::with_capacity(self.frame_len * usize::from(self.channels));
        for i in 0..self.frame_len as u64 {
            let t = (self.next + i) as f64 / f64::from(self.rate);
            for c in 0..self.channels {
                let phase = t * f64::from(Self::pitch(c)) * std::f64::consts::TAU;
                samples.push((phase.sin() * 0.4) as f32);
            }
        }
        let pts = self.next as i64;
        self.next += self.frame_len as u64;
        AudioFrame::new(samples, self.channels, self.rate, pts, Rational::new(1, self.rate))
            .expect("the tone's own frames are valid")
    }
}
