//! Demuxed audio units in, PCM frames out: the one place the way back from an MPEG-TS audio
//! track to samples is written (the actors' output reader and the CLI's WAV output both use it).
//!
//! It applies each unit's trim (the encoder's pre-skip at the start, padding at the end), makes
//! its decoder for the channel count the PMT declared, and starts over after a break in the
//! stream (another orchestrator's encoder, with a pre-skip of its own).

use crate::audio::{AudioError, AudioFrame, OpusDecoder};
use crate::encoder::Codec;
use crate::time::TIME_BASE_90K;
use crate::ts::demux::AudioUnit;
use crate::ts::opus::OPUS_RATE;

/// Decodes the audio units of one track into 48 kHz interleaved PCM.
#[derive(Debug, Default)]
pub struct AudioUnitDecoder {
    /// The decoder and the channel count it was made for.
    decoder: Option<(OpusDecoder, u16)>,
    samples: u64,
}

impl AudioUnitDecoder {
    /// A decoder that makes its codec on the first unit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sample instants decoded so far (after trimming).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Forgets the stream so far: the next unit starts a new one (after a swap or a cut).
    pub fn reset(&mut self) {
        self.decoder = None;
    }

    /// Decodes `unit`: its samples, stamped with its pts on the 90 kHz clock, or `None` when
    /// the trim leaves nothing. Only Opus is decoded; another codec is
    /// [`AudioError::UnsupportedCodec`].
    pub fn decode(&mut self, unit: &AudioUnit) -> Result<Option<AudioFrame>, AudioError> {
        if unit.stream.codec != Some(Codec::Opus) {
            return Err(AudioError::UnsupportedCodec { stream_type: unit.stream.stream_type });
        }
        // ffmpeg writes the channel count in the Opus descriptor; stereo when it is missing.
        let channels = unit.stream.channels.map(u16::from).unwrap_or(2);
        let decoder = match &mut self.decoder {
            Some((d, ch)) if *ch == channels => d,
            slot => &mut slot.insert((OpusDecoder::new(channels)?, channels)).0,
        };
        decoder.trim_start(unit.trim.start);
        let mut samples = decoder.decode(&unit.data)?;
        let keep = samples.len().saturating_sub(usize::from(unit.trim.end) * usize::from(channels));
        samples.truncate(keep);
        if samples.is_empty() {
            return Ok(None);
        }
        self.samples += (samples.len() / usize::from(channels)) as u64;
        let pts = unit.pts.unwrap_or(0);
        AudioFrame::new(samples, channels, OPUS_RATE, pts, TIME_BASE_90K).map(Some)
    }
}
