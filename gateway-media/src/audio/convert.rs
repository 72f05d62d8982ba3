//! Converting audio to what the Opus encoder takes: 48 kHz with the track's channel count.
//!
//! Layout first (at the input rate, so the resampler has fewer channels to work on): mono is
//! copied to both sides, stereo is averaged to mono, 5.1 is folded down with the ITU-R BS.775
//! weights (centre and surrounds at -3 dB, LFE left out), and any other layout alternates its
//! channels between left and right. Then the rate, with rubato's band-limited sinc resampler.
//! Output frames are stamped from the first input frame's pts plus the samples put out since,
//! on a 1/48000 time base, and the resampler's delay is taken off the front, so what comes out
//! lines up with what went in.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, FixedAsync, Resampler, SincInterpolationParameters, WindowFunction};

use super::frame::{AudioError, AudioFrame};
use crate::time::{rescale, Rational};
use crate::ts::opus::OPUS_RATE;

/// Input frames the resampler takes at a time.
const CHUNK: usize = 480;
/// -3 dB.
const HALF_POWER: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Turns frames of one rate and layout into 48 kHz frames of `to_channels`.
pub struct AudioConverter {
    from_rate: u32,
    from_channels: u16,
    to_channels: u16,
    /// `None` when the input is already at 48 kHz.
    resampler: Option<Async<f32>>,
    /// Mixed samples waiting for a whole chunk.
    pending: Vec<f32>,
    /// Output frames still to drop: the resampler's delay.
    delay_left: usize,
    /// Input frames taken, and output frames put out.
    frames_in: u64,
    frames_out: u64,
    /// pts of the first output sample, 1/48000.
    origin: Option<i64>,
}

impl std::fmt::Debug for AudioConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioConverter")
            .field("from_rate", &self.from_rate)
            .field("from_channels", &self.from_channels)
            .field("to_channels", &self.to_channels)
            .finish_non_exhaustive()
    }
}

impl AudioConverter {
    /// A converter from `from_rate` Hz and `from_channels` to 48 kHz and `to_channels` (1 or 2).
    pub fn new(from_rate: u32, from_channels: u16, to_channels: u16) -> Result<Self, AudioError> {
        if !(1..=2).contains(&to_channels) {
            return Err(AudioError::Channels(to_channels));
        }
        if from_channels == 0 || from_channels > super::frame::MAX_CHANNELS {
            return Err(AudioError::Channels(from_channels));
        }
        if from_rate == 0 {
            return Err(AudioError::Rate { expected: OPUS_RATE, got: 0 });
        }
        let resampler = if from_rate == OPUS_RATE {
            None
        } else {
            let ratio = f64::from(OPUS_RATE) / f64::from(from_rate);
            let params = SincInterpolationParameters::new(128, WindowFunction::BlackmanHarris2);
            let r = Async::<f32>::new_sinc(
                ratio,
                1.0,
                &params,
                CHUNK,
                usize::from(to_channels),
                FixedAsync::Input,
            )
            .map_err(|e| AudioError::Codec(format!("resampler for {from_rate} Hz: {e}")))?;
            Some(r)
        };
        let delay_left = resampler.as_ref().map_or(0, |r| r.output_delay());
        Ok(Self {
            from_rate,
            from_channels,
            to_channels,
            resampler,
            pending: Vec::new(),
            delay_left,
            frames_in: 0,
            frames_out: 0,
            origin: None,
        })
    }

    /// Whether frames of this rate and layout are what the converter takes.
    pub fn takes(&self, frame: &AudioFrame) -> bool {
        frame.rate() == self.from_rate && frame.channels() == self.from_channels
    }

    /// Converts a frame; `None` while the resampler gathers a whole chunk.
    pub fn convert(&mut self, frame: &AudioFrame) -> Result<Option<AudioFrame>, AudioError> {
        if frame.rate() != self.from_rate {
            return Err(AudioError::Rate { expected: self.from_rate, got: frame.rate() });
        }
        if frame.channels() != self.from_channels {
            return Err(AudioError::ChannelsChanged { expected: self.from_channels, got: frame.channels() });
        }
        self.origin
            .get_or_insert_with(|| rescale(frame.pts(), frame.time_base(), Rational::new(1, OPUS_RATE)));
        self.frames_in += frame.len() as u64;
        mix(frame.samples(), self.from_channels, self.to_channels, &mut self.pending);
        self.run(false)
    }

    /// Converts what is left, and the resampler's tail, up to the length the input implies.
    pub fn flush(&mut self) -> Result<Option<AudioFrame>, AudioError> {
        self.run(true)
    }

    fn run(&mut self, flush: bool) -> Result<Option<AudioFrame>, AudioError> {
        let ch = usize::from(self.to_channels);
        let mut out = Vec::new();
        let due_total = self.frames_out_due();
        let frames_out = self.frames_out;
        match self.resampler.as_mut() {
            None => out = std::mem::take(&mut self.pending),
            Some(r) => {
                let codec = |e: rubato::ResampleError| AudioError::Codec(format!("resampler: {e}"));
                // A flush feeds silence until the output reaches the input's length; the bound
                // only guards against a resampler that stops producing.
                let mut silent_rounds = 0;
                loop {
                    let need = r.input_frames_next();
                    let have = self.pending.len() / ch;
                    let short = frames_out + ((out.len() / ch) as u64) < due_total;
                    if have < need && !(flush && short && silent_rounds < 64) {
                        break;
                    }
                    let take = have.min(need);
                    silent_rounds += usize::from(take == 0);
                    let mut input: Vec<f32> = self.pending.drain(..take * ch).collect();
                    input.resize(need * ch, 0.0);
                    let adapter = InterleavedSlice::new(&input[..], ch, need)
                        .map_err(|e| AudioError::Codec(e.to_string()))?;
                    let partial = rubato::Indexing::new().partial_len(take);
                    let produced = r.process(&adapter, Some(&partial)).map_err(codec)?.take_data();
                    let drop = self.delay_left.min(produced.len() / ch);
                    self.delay_left -= drop;
                    out.extend_from_slice(&produced[drop * ch..]);
                }
                if flush {
                    // Past the input's length is only the filter's ringing.
                    let due = due_total.saturating_sub(frames_out) as usize;
                    out.truncate(due.min(out.len() / ch) * ch);
                }
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        let pts = self.origin.unwrap_or(0) + self.frames_out as i64;
        self.frames_out += (out.len() / ch) as u64;
        AudioFrame::new(out, self.to_channels, OPUS_RATE, pts, Rational::new(1, OPUS_RATE)).map(Some)
    }

    /// Output frames the input so far amounts to at 48 kHz.
    fn frames_out_due(&self) -> u64 {
        self.frames_in * u64::from(OPUS_RATE) / u64::from(self.from_rate)
    }
}

/// Appends `samples` (interleaved, `from` channels) mixed to `to` channels.
fn mix(samples: &[f32], from: u16, to: u16, out: &mut Vec<f32>) {
    let (from, to) = (usize::from(from), usize::from(to));
    if from == to {
        out.extend_from_slice(samples);
        return;
    }
    for f in samples.chunks_exact(from) {
        let (l, r) = match from {
            1 => (f[0], f[0]),
            2 => (f[0], f[1]),
            // FL FR FC LFE BL BR.
            6 => (f[0] + HALF_POWER * (f[2] + f[4]), f[1] + HALF_POWER * (f[2] + f[5])),
            n => {
                let side = |start: usize| f.iter().skip(start).step_by(2).sum::<f32>() / n.div_ceil(2) as f32;
                (side(0), side(1))
            }
        };
        if to == 1 {
            out.push((l + r) * 0.5);
        } else {
            out.extend_from_slice(&[l, r]);
        }
    }
}
