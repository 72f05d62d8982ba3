//! WAV (RIFF WAVE) audio as ffmpeg writes it to files and pipes: integer PCM of 16, 24 or 32
//! bits and 32-bit float, plain or `WAVE_FORMAT_EXTENSIBLE`, 1 to 8 channels. A data chunk of
//! unknown length (ffmpeg's `-f wav -` writes 0 or 0xFFFFFFFF) is read to the end of input.
//! Headerless PCM (`ffmpeg -f s16le -`) reads the same way, its format given as ffmpeg names it
//! ([`WavReader::raw`], `"s16le:48000:2".parse::<WavFormat>()`).
//! Samples come out as [`AudioFrame`]s of `f32` with pts counted in samples. [`WavWriter`]
//! goes the other way: frames in, a 16-bit PCM WAV file out.

use std::io::{Read, Seek, SeekFrom, Write};

use thiserror::Error;

use super::frame::{AudioFrame, MAX_CHANNELS};
use crate::time::Rational;

/// Why a WAV stream cannot be read.
#[derive(Debug, Error)]
pub enum WavError {
    /// It does not start with `RIFF....WAVE`.
    #[error("not a WAV stream (no RIFF/WAVE header)")]
    NotWav,
    /// A sample format this reader does not take.
    #[error("WAV format {format_tag:#06x} with {bits} bits is not supported; use PCM of 16, 24 or 32 bits or 32-bit float")]
    Unsupported {
        /// `wFormatTag` (or the extensible sub-format's).
        format_tag: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// A channel count or rate that cannot be carried.
    #[error("WAV with {channels} channels at {rate} Hz; 1 to 8 channels at a rate above 0 are taken")]
    Layout {
        /// Channels declared.
        channels: u16,
        /// Rate declared.
        rate: u32,
    },
    /// A raw PCM format that does not parse.
    #[error("raw PCM format {0:?}: write it as s16le, s24le, s32le or f32le, a rate and channels, e.g. s16le:48000:2")]
    RawFormat(String),
    /// The header ended before the data chunk.
    #[error("the WAV header ends before its {0}")]
    Truncated(&'static str),
    /// Reading failed.
    #[error("reading WAV: {0}")]
    Io(#[from] std::io::Error),
}

/// How the samples are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavEncoding {
    /// Signed integers of this many bits (16, 24, 32), little-endian.
    Int(u16),
    /// 32-bit IEEE float.
    Float32,
}

/// A WAV stream's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Samples per second.
    pub rate: u32,
    /// Channels.
    pub channels: u16,
    /// Sample encoding.
    pub encoding: WavEncoding,
}

/// Raw PCM as ffmpeg names it (`-f s16le -ar 48000 -ac 2`): `s16le`, `s24le`, `s32le` or
/// `f32le`, then `:RATE:CHANNELS`.
///
/// ```
/// use livepeer_gateway_media::audio::wav::{WavEncoding, WavFormat};
/// let f: WavFormat = "s16le:48000:2".parse().unwrap();
/// assert_eq!((f.rate, f.channels, f.encoding), (48_000, 2, WavEncoding::Int(16)));
/// ```
impl std::str::FromStr for WavFormat {
    type Err = WavError;

    fn from_str(s: &str) -> Result<Self, WavError> {
        let bad = || WavError::RawFormat(s.to_owned());
        let mut parts = s.split(':');
        let encoding = match parts.next() {
            Some("s16le") => WavEncoding::Int(16),
            Some("s24le") => WavEncoding::Int(24),
            Some("s32le") => WavEncoding::Int(32),
            Some("f32le") => WavEncoding::Float32,
            _ => return Err(bad()),
        };
        let rate: u32 = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
        let channels: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        check_layout(channels, rate)?;
        Ok(WavFormat { rate, channels, encoding })
    }
}

/// Refuses a channel count or rate no [`AudioFrame`] can carry.
fn check_layout(channels: u16, rate: u32) -> Result<(), WavError> {
    if channels == 0 || channels > MAX_CHANNELS || rate == 0 {
        return Err(WavError::Layout { channels, rate });
    }
    Ok(())
}

impl WavFormat {
    fn bytes_per_frame(&self) -> usize {
        let bytes = match self.encoding {
            WavEncoding::Int(bits) => usize::from(bits / 8),
            WavEncoding::Float32 => 4,
        };
        bytes * usize::from(self.channels)
    }
}

/// Reads a WAV stream frame by frame.
#[derive(Debug)]
pub struct WavReader<R> {
    input: R,
    format: WavFormat,
    /// Data bytes left, when the header said.
    remaining: Option<u64>,
    /// Sample instants read so far (the next frame's pts).
    position: u64,
    buf: Vec<u8>,
}

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

impl<R: Read> WavReader<R> {
    /// Reads the header up to the data chunk.
    pub fn new(mut input: R) -> Result<Self, WavError> {
        let mut riff = [0u8; 12];
        read_exact_or(&mut input, &mut riff, WavError::NotWav)?;
        if &riff[..4] != b"RIFF" || &riff[8..] != b"WAVE" {
            return Err(WavError::NotWav);
        }
        let mut format = None;
        loop {
            let mut head = [0u8; 8];
            read_exact_or(&mut input, &mut head, WavError::Truncated("data chunk"))?;
            let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            match &head[..4] {
                b"fmt " => {
                    let len = usize::try_from(size).unwrap_or(usize::MAX);
                    if !(16..=1024).contains(&len) {
                        return Err(WavError::Truncated("format chunk"));
                    }
                    let mut fmt = vec![0u8; len + len % 2];
                    read_exact_or(&mut input, &mut fmt, WavError::Truncated("format chunk"))?;
                    format = Some(parse_format(&fmt)?);
                }
                b"data" => {
                    let format = format.ok_or(WavError::Truncated("format chunk"))?;
                    // ffmpeg writing to a pipe cannot seek back to fill the size in.
                    let remaining = (size != 0 && size != u32::MAX).then_some(u64::from(size));
                    return Ok(Self { input, format, remaining, position: 0, buf: Vec::new() });
                }
                _ => {
                    // Skip a chunk we do not need (LIST, fact, ...), padded to even length.
                    let skip = u64::from(size) + u64::from(size % 2);
                    let skipped = std::io::copy(&mut (&mut input).take(skip), &mut std::io::sink())?;
                    if skipped < skip {
                        return Err(WavError::Truncated("data chunk"));
                    }
                }
            }
        }
    }

    /// Reads headerless PCM of `format` (what `ffmpeg -f s16le -` writes) to the end of input.
    pub fn raw(input: R, format: WavFormat) -> Result<Self, WavError> {
        check_layout(format.channels, format.rate)?;
        if let WavEncoding::Int(bits) = format.encoding {
            if ![16, 24, 32].contains(&bits) {
                return Err(WavError::Unsupported { format_tag: FORMAT_PCM, bits });
            }
        }
        Ok(Self { input, format, remaining: None, position: 0, buf: Vec::new() })
    }

    /// The stream's format.
    pub fn format(&self) -> WavFormat {
        self.format
    }

    /// The next `len` sample instants (fewer at the end); `None` once the data is over. A last
    /// partial sample instant is dropped.
    pub fn next_frame(&mut self, len: usize) -> Result<Option<AudioFrame>, WavError> {
        let per = self.format.bytes_per_frame();
        let mut want = (len.max(1) * per) as u64;
        if let Some(r) = self.remaining {
            want = want.min(r);
        }
        self.buf.clear();
        (&mut self.input).take(want).read_to_end(&mut self.buf)?;
        if let Some(r) = self.remaining.as_mut() {
            *r -= self.buf.len() as u64;
        }
        let whole = self.buf.len() / per * per;
        if whole == 0 {
            return Ok(None);
        }
        let samples: Vec<f32> = match self.format.encoding {
            WavEncoding::Int(16) => self.buf[..whole]
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
                .collect(),
            WavEncoding::Int(24) => self.buf[..whole]
                .chunks_exact(3)
                .map(|b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0)
                .collect(),
            WavEncoding::Int(_) => self.buf[..whole]
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0)
                .collect(),
            WavEncoding::Float32 => self.buf[..whole]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        let pts = self.position as i64;
        self.position += (whole / per) as u64;
        let frame = AudioFrame::new(
            samples,
            self.format.channels,
            self.format.rate,
            pts,
            Rational::new(1, self.format.rate),
        )
        .expect("the format was checked with the header");
        Ok(Some(frame))
    }
}

fn read_exact_or<R: Read>(input: &mut R, buf: &mut [u8], short: WavError) -> Result<(), WavError> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            short
        } else {
            e.into()
        }
    })
}

fn parse_format(fmt: &[u8]) -> Result<WavFormat, WavError> {
    let u16_at = |i: usize| u16::from_le_bytes([fmt[i], fmt[i + 1]]);
    let mut tag = u16_at(0);
    let channels = u16_at(2);
    let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
    let bits = u16_at(14);
    if tag == FORMAT_EXTENSIBLE {
        // cbSize 22: valid bits, channel mask, then the sub-format GUID whose first two bytes
        // are the format tag.
        if fmt.len() < 26 {
            return Err(WavError::Truncated("extensible format"));
        }
        tag = u16_at(24);
    }
    check_layout(channels, rate)?;
    let encoding = match (tag, bits) {
        (FORMAT_PCM, 16 | 24 | 32) => WavEncoding::Int(bits),
        (FORMAT_FLOAT, 32) => WavEncoding::Float32,
        _ => return Err(WavError::Unsupported { format_tag: tag, bits }),
    };
    Ok(WavFormat { rate, channels, encoding })
}

/// Bytes of the header [`WavWriter`] writes: RIFF, a 16-byte `fmt ` chunk, the data chunk's.
const WAV_HEADER_LEN: u32 = 44;

/// Writes [`AudioFrame`]s as 16-bit PCM WAV. The header starts with the "unknown length"
/// sizes ffmpeg writes to a pipe; [`WavWriter::finish`] rewinds a file to write the real ones,
/// and [`WavWriter::finish_unsized`] leaves them for output that cannot be rewound (stdout),
/// which readers such as ffmpeg read to its end.
#[derive(Debug)]
pub struct WavWriter<W: Write> {
    out: W,
    channels: u16,
    rate: u32,
    data_bytes: u64,
}

impl<W: Write> WavWriter<W> {
    /// Starts a file of `channels` at `rate` Hz in `out`.
    pub fn new(mut out: W, channels: u16, rate: u32) -> Result<Self, WavError> {
        check_layout(channels, rate)?;
        out.write_all(&header(channels, rate, u32::MAX))?;
        Ok(Self { out, channels, rate, data_bytes: 0 })
    }

    /// Appends `frame`, which must have the file's channel count and rate.
    pub fn write(&mut self, frame: &AudioFrame) -> Result<(), WavError> {
        if frame.channels() != self.channels || frame.rate() != self.rate {
            return Err(WavError::Layout { channels: frame.channels(), rate: frame.rate() });
        }
        let mut bytes = Vec::with_capacity(frame.samples().len() * 2);
        for s in frame.samples() {
            let v = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&bytes)?;
        self.data_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Channels of the file.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Sample instants written so far.
    pub fn samples(&self) -> u64 {
        self.data_bytes / (2 * u64::from(self.channels))
    }

    /// Hands back the output, flushed, with the header's sizes left unknown.
    pub fn finish_unsized(mut self) -> Result<W, WavError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write + Seek> WavWriter<W> {
    /// Writes the sizes into the header and hands back the output, flushed.
    pub fn finish(mut self) -> Result<W, WavError> {
        // A WAV's sizes are 32-bit: a longer file keeps the largest size it can say.
        let data = u32::try_from(self.data_bytes).unwrap_or(u32::MAX);
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header(self.channels, self.rate, data))?;
        self.out.seek(SeekFrom::End(0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The 44-byte header of 16-bit PCM with `data` bytes of samples.
fn header(channels: u16, rate: u32, data: u32) -> Vec<u8> {
    let block_align = channels * 2;
    let mut h = Vec::with_capacity(WAV_HEADER_LEN as usize);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data.saturating_add(WAV_HEADER_LEN - 8).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes()); // WAVE_FORMAT_PCM
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.saturating_mul(u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data.to_le_bytes());
    h
}
