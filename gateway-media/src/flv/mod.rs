//! FLV video tags, as RTMP carries them, into H.264 access units: what a gateway needs to take
//! RTMP ingest (OBS, ffmpeg) into its MPEG-TS pipeline without decoding anything.
//!
//! An RTMP video message is an FLV `VIDEODATA` body: a byte with the frame type and codec, then
//! for AVC (codec 7) the packet type, a 24-bit composition time offset and the payload. The
//! payload of the sequence header (packet type 0) is an `AVCDecoderConfigurationRecord` (ISO
//! 14496-15 5.3.3.1) with the SPS and PPS; a NALU packet (type 1) holds NAL units each behind a
//! big-endian length. [`FlvVideo`] keeps the record and turns each NALU packet into an Annex B
//! access unit (start codes), with the SPS and PPS in front of every keyframe so a reader can
//! start at any segment, stamped on the 90 kHz clock (`dts` from the tag's millisecond time,
//! `pts` = `dts` + composition time).
//!
//! Audio tags with AAC (sound format 10) go the same way through [`FlvAudio`]: the sequence
//! header's `AudioSpecificConfig` (ISO 14496-3 1.6.2.1) gives the profile, sample rate and
//! channels, and each raw frame gets the ADTS header MPEG-TS carries AAC with.
//!
//! The other way, [`FlvRemuxer`] turns demuxed MPEG-TS units into FLV tags for an RTMP
//! publisher, with [`build`] making each tag body.
//!
//! Not handled: codecs other than AVC and AAC, including Enhanced RTMP's FourCC tags (HEVC,
//! AV1), which are refused with [`FlvError::UnsupportedCodec`].

use bytes::Bytes;
use thiserror::Error;

use crate::encoder::{Codec, EncodedPacket};

pub mod build;
mod remux;

pub use remux::{FlvRemuxer, FlvTag, FlvTagKind};

/// FLV's codec id for AVC / H.264.
pub const FLV_CODEC_AVC: u8 = 7;
/// Frame type of a keyframe (a random access point).
const FRAME_TYPE_KEY: u8 = 1;
/// Frame type of a video info / command frame (no picture).
const FRAME_TYPE_INFO: u8 = 5;
/// The high bit of the first byte marks an Enhanced RTMP tag (FourCC codec).
const ENHANCED_RTMP: u8 = 0x80;
/// AVC packet types.
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;
const AVC_END_OF_SEQUENCE: u8 = 2;
/// Ticks of the 90 kHz clock per millisecond.
const TICKS_PER_MS: i64 = 90;
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// H.264 NAL unit types that matter here.
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;

/// Why a video tag cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    /// The tag ends before a field it announces.
    #[error("the FLV video tag is truncated ({0})")]
    Truncated(&'static str),
    /// Not AVC: the FLV codec id, or the Enhanced RTMP FourCC.
    #[error("unsupported codec: {0} (video is taken as H.264, audio as AAC)")]
    UnsupportedCodec(String),
    /// Picture data came before any sequence header, so the NAL length size is unknown.
    #[error("H.264 data arrived before the AVC sequence header")]
    NoSequenceHeader,
    /// The `AVCDecoderConfigurationRecord` is not one.
    #[error("bad AVC sequence header: {0}")]
    BadSequenceHeader(&'static str),
    /// AAC frames came before any `AudioSpecificConfig`.
    #[error("AAC data arrived before the AAC sequence header")]
    NoAudioConfig,
    /// The `AudioSpecificConfig` is not one ADTS can carry.
    #[error("bad AAC sequence header: {0}")]
    BadAudioConfig(&'static str),
    /// An AAC frame longer than ADTS can describe.
    #[error("an AAC frame of {0} bytes is too long for ADTS")]
    AacFrameTooLong(usize),
    /// A NAL unit's length runs past the end of the tag.
    #[error("a NAL unit of {length} bytes runs past the end of the tag ({left} left)")]
    BadNalLength {
        /// The length the tag announced.
        length: usize,
        /// Bytes the tag still had.
        left: usize,
    },
}

/// Turns the video tags of one RTMP publish into H.264 access units; see the module docs.
#[derive(Debug, Default)]
pub struct FlvVideo {
    /// Bytes of each NAL unit's length (1, 2 or 4), from the sequence header.
    length_size: Option<usize>,
    /// The SPS and PPS as Annex B, put in front of every keyframe.
    parameter_sets: Vec<u8>,
    /// Tags that carried no picture (sequence headers, end of sequence, info frames).
    control_tags: u64,
}

impl FlvVideo {
    /// A converter that has seen no tag yet.
    pub fn new() -> FlvVideo {
        FlvVideo::default()
    }

    /// Whether the sequence header has been seen (pictures can be converted).
    pub fn has_sequence_header(&self) -> bool {
        self.length_size.is_some()
    }

    /// Tags taken that carried no picture.
    pub fn control_tags(&self) -> u64 {
        self.control_tags
    }

    /// Takes one video tag body sent at `timestamp_ms`: the access unit it carries, or `None`
    /// for a tag with no picture (the sequence header, which is kept, or an info frame).
    pub fn push(&mut self, timestamp_ms: u32, tag: &[u8]) -> Result<Option<EncodedPacket>, FlvError> {
        let (&first, rest) = tag.split_first().ok_or(FlvError::Truncated("empty tag"))?;
        if first & ENHANCED_RTMP != 0 {
            let fourcc = rest.get(..4).map(|f| String::from_utf8_lossy(f).into_owned());
            return Err(FlvError::UnsupportedCodec(fourcc.unwrap_or_else(|| "(enhanced)".into())));
        }
        let (frame_type, codec) = (first >> 4, first & 0x0F);
        if frame_type == FRAME_TYPE_INFO {
            self.control_tags += 1;
            return Ok(None);
        }
        if codec != FLV_CODEC_AVC {
            return Err(FlvError::UnsupportedCodec(format!("id {codec}")));
        }
        if rest.len() < 4 {
            return Err(FlvError::Truncated("AVC packet header"));
        }
        let packet_type = rest[0];
        // SI24: a signed composition time offset in milliseconds.
        let raw = i32::from_be_bytes([0, rest[1], rest[2], rest[3]]);
        let composition_ms = (raw << 8) >> 8;
        let payload = &rest[4..];
        match packet_type {
            AVC_SEQUENCE_HEADER => {
                self.read_sequence_header(payload)?;
                self.control_tags += 1;
                Ok(None)
            }
            AVC_NALU => {
                let length_size = self.length_size.ok_or(FlvError::NoSequenceHeader)?;
                let keyframe = frame_type == FRAME_TYPE_KEY;
                let data = self.annex_b(payload, length_size, keyframe)?;
                if data.is_empty() {
                    self.control_tags += 1;
                    return Ok(None);
                }
                let dts = i64::from(timestamp_ms) * TICKS_PER_MS;
                let pts = dts + i64::from(composition_ms) * TICKS_PER_MS;
                Ok(Some(EncodedPacket { codec: Codec::H264, data: Bytes::from(data), pts, dts, keyframe }))
            }
            AVC_END_OF_SEQUENCE => {
                self.control_tags += 1;
                Ok(None)
            }
            _ => Err(FlvError::UnsupportedCodec(format!("AVC packet type {packet_type}"))),
        }
    }

    /// Reads an `AVCDecoderConfigurationRecord`: the NAL length size, the SPS and the PPS.
    fn read_sequence_header(&mut self, record: &[u8]) -> Result<(), FlvError> {
        let bad = FlvError::BadSequenceHeader;
        if record.len() < 6 {
            return Err(bad("shorter than its fixed fields"));
        }
        if record[0] != 1 {
            return Err(bad("configurationVersion is not 1"));
        }
        let length_size = usize::from(record[4] & 0x03) + 1;
        if length_size == 3 {
            return Err(bad("a NAL length size of 3 bytes"));
        }
        let mut sets = Vec::new();
        let mut at = 5;
        // The SPS count is in the low 5 bits; the PPS count is a whole byte after the SPSs.
        for mask in [0x1F, 0xFF] {
            let count = usize::from(*record.get(at).ok_or(bad("a parameter set count is missing"))? & mask);
            at += 1;
            for _ in 0..count {
                let len = record.get(at..at + 2).ok_or(bad("a parameter set length is missing"))?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let set = record.get(at + 2..at + 2 + len).ok_or(bad("a parameter set is cut short"))?;
                sets.extend_from_slice(&START_CODE);
                sets.extend_from_slice(set);
                at += 2 + len;
            }
        }
        if sets.is_empty() {
            return Err(bad("no SPS or PPS"));
        }
        self.length_size = Some(length_size);
        self.parameter_sets = sets;
        Ok(())
    }

    /// The tag's length-prefixed NAL units as Annex B; a keyframe without its own SPS gets the
    /// stream's SPS and PPS in front.
    fn annex_b(&self, mut payload: &[u8], length_size: usize, keyframe: bool) -> Result<Vec<u8>, FlvError> {
        let mut out = Vec::with_capacity(payload.len() + self.parameter_sets.len() + 16);
        let mut has_sps = false;
        let mut has_idr = false;
        let mut units = Vec::new();
        while !payload.is_empty() {
            let Some(prefix) = payload.get(..length_size) else {
                return Err(FlvError::Truncated("a NAL unit length"));
            };
            let length = prefix.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
            let unit = payload
                .get(length_size..length_size + length)
                .ok_or(FlvError::BadNalLength { length, left: payload.len() - length_size })?;
            if let Some(&header) = unit.first() {
                has_sps |= header & 0x1F == NAL_SPS;
                has_idr |= header & 0x1F == NAL_IDR;
                units.push(unit);
            }
            payload = &payload[length_size + length..];
        }
        if (keyframe || has_idr) && !has_sps && !units.is_empty() {
            out.extend_from_slice(&self.parameter_sets);
        }
        for unit in units {
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(unit);
        }
        Ok(out)
    }
}

/// FLV's sound format for AAC.
pub const FLV_SOUND_AAC: u8 = 10;
/// AAC packet types.
const AAC_SEQUENCE_HEADER: u8 = 0;
const AAC_RAW: u8 = 1;
/// An ADTS header without CRC.
const ADTS_HEADER_LEN: usize = 7;
/// Samples in one AAC frame (ISO 14496-3, the AAC-LC frame length).
const AAC_FRAME_SAMPLES: i64 = 1024;
/// The largest ADTS frame (its length is 13 bits).
const ADTS_MAX_FRAME: usize = 0x1FFF;

/// Turns the AAC audio tags of one RTMP publish into ADTS frames; see the module docs.
#[derive(Debug, Default)]
pub struct FlvAudio {
    /// ADTS profile (object type - 1), sampling frequency index and channel configuration.
    config: Option<(u8, u8, u8)>,
}

impl FlvAudio {
    /// A converter that has seen no tag yet.
    pub fn new() -> FlvAudio {
        FlvAudio::default()
    }

    /// Takes one audio tag body sent at `timestamp_ms`: the ADTS frame it carries, or `None`
    /// for the sequence header (which is kept).
    pub fn push(&mut self, timestamp_ms: u32, tag: &[u8]) -> Result<Option<EncodedPacket>, FlvError> {
        let (&first, rest) = tag.split_first().ok_or(FlvError::Truncated("empty tag"))?;
        let format = first >> 4;
        if format != FLV_SOUND_AAC {
            return Err(FlvError::UnsupportedCodec(format!("sound format {format}")));
        }
        let (&packet_type, payload) = rest.split_first().ok_or(FlvError::Truncated("AAC packet type"))?;
        match packet_type {
            AAC_SEQUENCE_HEADER => {
                self.config = Some(audio_specific_config(payload)?);
                Ok(None)
            }
            AAC_RAW => {
                let (profile, frequency, channels) = self.config.ok_or(FlvError::NoAudioConfig)?;
                let length = ADTS_HEADER_LEN + payload.len();
                if length > ADTS_MAX_FRAME {
                    return Err(FlvError::AacFrameTooLong(payload.len()));
                }
                let mut data = Vec::with_capacity(length);
                data.extend_from_slice(&adts_header(profile, frequency, channels, length));
                data.extend_from_slice(payload);
                let pts = i64::from(timestamp_ms) * TICKS_PER_MS;
                Ok(Some(EncodedPacket {
                    codec: Codec::Aac,
                    data: Bytes::from(data),
                    pts,
                    dts: pts,
                    keyframe: true,
                }))
            }
            _ => Err(FlvError::UnsupportedCodec(format!("AAC packet type {packet_type}"))),
        }
    }
}

/// Reads an `AudioSpecificConfig`: ADTS profile, sampling frequency index, channels.
fn audio_specific_config(config: &[u8]) -> Result<(u8, u8, u8), FlvError> {
    let bad = FlvError::BadAudioConfig;
    let [a, b, ..] = config else { return Err(bad("shorter than two bytes")) };
    let object_type = a >> 3;
    let frequency = ((a & 0x07) << 1) | (b >> 7);
    let channels = (b >> 3) & 0x0F;
    // ADTS has two bits of profile: AAC Main, LC, SSR and LTP (object types 1 to 4).
    if !(1..=4).contains(&object_type) {
        return Err(bad("an object type ADTS cannot carry (only AAC Main, LC, SSR, LTP)"));
    }
    if frequency > 12 {
        return Err(bad("an explicit or reserved sampling frequency"));
    }
    if channels == 0 || channels > 7 {
        return Err(bad("a channel configuration ADTS cannot carry"));
    }
    Ok((object_type - 1, frequency, channels))
}

/// An ADTS header (MPEG-4, no CRC) for a frame of `length` bytes, header included.
fn adts_header(profile: u8, frequency: u8, channels: u8, length: usize) -> [u8; ADTS_HEADER_LEN] {
    let length = length as u16;
    [
        0xFF,
        0xF1, // sync, MPEG-4, layer 0, no CRC
        (profile << 6) | (frequency << 2) | (channels >> 2),
        ((channels & 0x03) << 6) | ((length >> 11) as u8 & 0x03),
        (length >> 3) as u8,
        (((length & 0x07) as u8) << 5) | 0x1F, // buffer fullness 0x7FF (variable rate)
        0xFC,                                  // the rest of it, one raw data block
    ]
}

/// One ADTS frame of an AAC PES: the raw data block and what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsFrame<'a> {
    /// The raw data block (the header taken off).
    pub raw: &'a [u8],
    /// ADTS profile (object type - 1), sampling frequency index and channel configuration.
    pub config: (u8, u8, u8),
}

impl AdtsFrame<'_> {
    /// Its sample rate in Hz (the frequency index's, ISO 14496-3 Table 1.18).
    pub fn sample_rate(&self) -> u32 {
        const RATES: [u32; 13] =
            [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
        RATES.get(usize::from(self.config.1)).copied().unwrap_or(48000)
    }

    /// How long it plays on the 90 kHz clock (an AAC frame is 1024 samples).
    pub fn duration_ticks(&self) -> i64 {
        AAC_FRAME_SAMPLES * 90_000 / i64::from(self.sample_rate())
    }
}

/// The ADTS frames of `data` (one PES of an AAC stream), in order; stops at the first bytes
/// that are not a whole frame.
pub fn adts_frames(mut data: &[u8]) -> Vec<AdtsFrame<'_>> {
    let mut frames = Vec::new();
    while data.len() >= ADTS_HEADER_LEN && data[0] == 0xFF && data[1] & 0xF0 == 0xF0 {
        let header_len = if data[1] & 0x01 == 0 { ADTS_HEADER_LEN + 2 } else { ADTS_HEADER_LEN };
        let length =
            (usize::from(data[3] & 0x03) << 11) | (usize::from(data[4]) << 3) | usize::from(data[5] >> 5);
        if length < header_len || length > data.len() {
            break;
        }
        let config = (data[2] >> 6, (data[2] >> 2) & 0x0F, ((data[2] & 0x01) << 2) | (data[3] >> 6));
        frames.push(AdtsFrame { raw: &data[header_len..length], config });
        data = &data[length..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::VideoFrame;
    use crate::{H264Config, H264Encoder, TestPattern, VideoEncoder};

    fn encoded(frames: usize) -> Vec<EncodedPacket> {
        let mut pattern = TestPattern::new(64, 48, crate::time::Rational::new(30, 1)).unwrap();
        let mut encoder = H264Encoder::new(H264Config::new(64, 48)).unwrap();
        let mut out = Vec::new();
        for _ in 0..frames {
            let frame: VideoFrame = pattern.next_frame();
            out.extend(encoder.encode(&frame).unwrap());
        }
        out
    }

    #[test]
    fn tags_built_from_access_units_come_back_as_the_same_nal_units_with_their_times() {
        let packets = encoded(5);
        let mut flv = FlvVideo::new();
        let header = build::sequence_header(&packets[0].data).unwrap();
        assert_eq!(flv.push(0, &header).unwrap(), None);
        assert!(flv.has_sequence_header());
        for (n, packet) in packets.iter().enumerate() {
            let tag = build::nalu_tag(&packet.data, packet.keyframe, 40);
            let ms = 33 * n as u32;
            let out = flv.push(ms, &tag).unwrap().unwrap();
            assert_eq!(build::nal_units(&out.data), build::nal_units(&packet.data), "access unit {n}");
            assert_eq!(out.keyframe, packet.keyframe);
            assert_eq!(out.dts, i64::from(ms) * 90);
            assert_eq!(out.pts, out.dts + 40 * 90);
        }
        assert_eq!(flv.control_tags(), 1);
    }

    #[test]
    fn a_keyframe_without_parameter_sets_gets_them_in_front() {
        let packets = encoded(1);
        let mut flv = FlvVideo::new();
        flv.push(0, &build::sequence_header(&packets[0].data).unwrap()).unwrap();
        let idr_only: Vec<u8> = build::nal_units(&packets[0].data)
            .into_iter()
            .filter(|u| u[0] & 0x1F == NAL_IDR)
            .flat_map(|u| START_CODE.iter().chain(u.iter()).copied().collect::<Vec<_>>())
            .collect();
        let out = flv.push(0, &build::nalu_tag(&idr_only, true, 0)).unwrap().unwrap();
        let types: Vec<u8> = build::nal_units(&out.data).iter().map(|u| u[0] & 0x1F).collect();
        assert_eq!(types, [7, 8, 5]);
        assert!(crate::nal::has_idr(&out.data));
    }

    #[test]
    fn bad_tags_get_typed_errors_and_never_panic() {
        let mut flv = FlvVideo::new();
        assert_eq!(flv.push(0, &[]), Err(FlvError::Truncated("empty tag")));
        assert_eq!(flv.push(0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]), Err(FlvError::NoSequenceHeader));
        assert_eq!(flv.push(0, &[0x12, 0]), Err(FlvError::UnsupportedCodec("id 2".into())));
        assert!(matches!(flv.push(0, b"\x90hvc1rest"), Err(FlvError::UnsupportedCodec(c)) if c == "hvc1"));
        assert!(matches!(flv.push(0, &[0x17, 0, 0, 0, 0, 1, 0x64]), Err(FlvError::BadSequenceHeader(_))));
        assert_eq!(flv.push(0, &[0x57, 0]), Ok(None), "an info frame carries no picture");
        let packets = encoded(1);
        flv.push(0, &build::sequence_header(&packets[0].data).unwrap()).unwrap();
        let too_long = [0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65];
        assert_eq!(flv.push(0, &too_long), Err(FlvError::BadNalLength { length: 9, left: 1 }));
        assert_eq!(flv.push(0, &[0x17, 1, 0, 0, 0, 0, 0]), Err(FlvError::Truncated("a NAL unit length")));
        // Arbitrary bytes: an answer, never a panic.
        for seed in 0..2000u32 {
            let bytes: Vec<u8> =
                (0..(seed % 40)).map(|i| (seed.wrapping_mul(2654435761) >> (i % 24)) as u8).collect();
            let _ = flv.push(seed, &bytes);
        }
    }

    #[test]
    fn aac_frames_get_adts_headers_from_the_audio_specific_config() {
        let mut audio = FlvAudio::new();
        assert_eq!(audio.push(0, &[0xAF, 1, 1, 2]), Err(FlvError::NoAudioConfig));
        // AAC LC (2), 48 kHz (index 3), stereo (2): 00010 0011 0010 000.
        assert_eq!(audio.push(0, &[0xAF, 0, 0x11, 0x90]), Ok(None));
        let raw = [0x21u8, 0x10, 0x04, 0x60];
        let mut tag = vec![0xAF, 1];
        tag.extend_from_slice(&raw);
        let frame = audio.push(1000, &tag).unwrap().unwrap();
        assert_eq!((frame.codec, frame.pts, frame.dts), (Codec::Aac, 90_000, 90_000));
        let h = &frame.data[..7];
        assert_eq!((h[0], h[1] & 0xF6), (0xFF, 0xF0), "sync word, MPEG-4, layer 0");
        assert_eq!(h[2] >> 6, 1, "LC is ADTS profile 1");
        assert_eq!((h[2] >> 2) & 0x0F, 3, "48 kHz");
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 2, "stereo");
        let length = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        assert_eq!(length, 7 + raw.len());
        assert_eq!(&frame.data[7..], raw);
        // What ADTS cannot carry, and other sound formats, are typed errors.
        assert!(matches!(audio.push(0, &[0xAF, 0, 0x29, 0x90]), Err(FlvError::BadAudioConfig(_))), "HE-AAC");
        assert!(
            matches!(audio.push(0, &[0xAF, 0, 0x17, 0x90]), Err(FlvError::BadAudioConfig(_))),
            "explicit rate"
        );
        assert_eq!(audio.push(0, &[0x2F, 0]), Err(FlvError::UnsupportedCodec("sound format 2".into())));
        assert_eq!(audio.push(0, &[0xAF]), Err(FlvError::Truncated("AAC packet type")));
    }

    #[test]
    fn adts_frames_split_and_come_back_as_the_same_tags() {
        let mut audio = FlvAudio::new();
        let config = (1, 3, 2);
        audio.push(0, &build::aac_sequence_header(config)).unwrap();
        let mut pes = Vec::new();
        for raw in [&[1u8, 2, 3][..], &[4, 5], &[6]] {
            pes.extend_from_slice(&audio.push(0, &build::aac_tag(raw)).unwrap().unwrap().data);
        }
        pes.extend_from_slice(&[0xFF, 0xF1, 0]); // a cut frame is left out
        let frames = adts_frames(&pes);
        assert_eq!(frames.iter().map(|f| f.raw).collect::<Vec<_>>(), [&[1u8, 2, 3][..], &[4, 5], &[6]]);
        assert!(frames.iter().all(|f| f.config == config && f.sample_rate() == 48000));
        assert!(adts_frames(b"not adts").is_empty());
    }

    #[test]
    fn negative_composition_times_are_signed() {
        let packets = encoded(1);
        let mut flv = FlvVideo::new();
        flv.push(0, &build::sequence_header(&packets[0].data).unwrap()).unwrap();
        let out = flv.push(1000, &build::nalu_tag(&packets[0].data, true, -20)).unwrap().unwrap();
        assert_eq!(out.pts, (1000 - 20) * 90);
    }
}
