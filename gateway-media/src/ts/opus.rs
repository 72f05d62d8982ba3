//! Opus in MPEG-TS, as ffmpeg writes and reads it (its `mpegtsenc` and `mpegts` demuxer with the
//! Opus parser; the mapping is ETSI TS 102 366 style "Opus in TS"):
//!
//! * the PMT declares the stream as PES private data (`stream_type` 0x06) with a registration
//!   descriptor `Opus` and a DVB extension descriptor (tag 0x7F) whose extension tag 0x80
//!   carries the channel configuration byte (1 or 2 for mono or stereo, mapping family 0);
//! * PES use `private_stream_1` (stream_id 0xBD), PTS only;
//! * every Opus packet inside a PES is preceded by a control header: the 11-bit prefix 0x3FF,
//!   `start_trim_flag`, `end_trim_flag`, `control_extension_flag`, 2 reserved bits, then the
//!   packet size as a run of 0xFF bytes plus a last byte below 0xFF, then the 16-bit trims
//!   that are flagged. A PES may hold several packets, each with its header.
//!
//! The first packet carries `start_trim` = the encoder's pre-skip (312 samples at 48 kHz for
//! libopus and the encoder here), which is how a TS reader learns what an Ogg file's `OpusHead`
//! would say; the last may carry `end_trim`, the padding added to fill its frame.

use thiserror::Error;

/// PMT registration descriptor format identifier of Opus.
pub const OPUS_REGISTRATION: &[u8; 4] = b"Opus";
/// Descriptor tag of the DVB extension descriptor.
pub const EXTENSION_DESCRIPTOR_TAG: u8 = 0x7F;
/// Extension descriptor tag of the Opus audio descriptor (channel configuration).
pub const OPUS_EXTENSION_TAG: u8 = 0x80;
/// PES stream_id of private_stream_1, which carries Opus.
pub const STREAM_ID_PRIVATE_1: u8 = 0xBD;
/// Opus timestamps are in 48 kHz samples whatever the input rate (RFC 7845 5.1).
pub const OPUS_RATE: u32 = 48_000;

/// The first two bytes of a control header without trims: prefix 0x3FF, then flags all 0.
const PREFIX: u16 = 0x7FE0;
const START_TRIM_FLAG: u16 = 0x0010;
const END_TRIM_FLAG: u16 = 0x0008;
const CONTROL_EXTENSION_FLAG: u16 = 0x0004;

/// The PMT ES_info descriptors of an Opus stream with `channels` channels (1 or 2).
pub fn es_info(channels: u8) -> Vec<u8> {
    let mut d = vec![0x05, 4];
    d.extend_from_slice(OPUS_REGISTRATION);
    d.extend_from_slice(&[EXTENSION_DESCRIPTOR_TAG, 2, OPUS_EXTENSION_TAG, channels]);
    d
}

/// The channel configuration an Opus stream's descriptors declare, if they declare one.
pub fn channels_from_es_info(mut descriptors: &[u8]) -> Option<u8> {
    while descriptors.len() >= 2 {
        let (tag, len) = (descriptors[0], usize::from(descriptors[1]));
        let body = descriptors.get(2..2 + len)?;
        if tag == EXTENSION_DESCRIPTOR_TAG && body.len() >= 2 && body[0] == OPUS_EXTENSION_TAG {
            return Some(body[1]);
        }
        descriptors = &descriptors[2 + len..];
    }
    None
}

/// Samples (at 48 kHz) to drop at either end of an Opus packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trim {
    /// Samples to drop from the start (the encoder's pre-skip, on the first packet).
    pub start: u16,
    /// Samples to drop from the end (padding of the last packet).
    pub end: u16,
}

/// Appends the control header of an Opus packet of `size` bytes.
pub fn write_control_header(size: usize, trim: Trim, out: &mut Vec<u8>) {
    let mut flags = PREFIX;
    if trim.start > 0 {
        flags |= START_TRIM_FLAG;
    }
    if trim.end > 0 {
        flags |= END_TRIM_FLAG;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.resize(out.len() + size / 255, 0xFF);
    out.push((size % 255) as u8);
    if trim.start > 0 {
        out.extend_from_slice(&trim.start.to_be_bytes());
    }
    if trim.end > 0 {
        out.extend_from_slice(&trim.end.to_be_bytes());
    }
}

/// Why a PES payload does not split into Opus packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum OpusTsError {
    /// The bytes where a control header should start do not start with its prefix.
    #[error("no Opus control header prefix at byte {offset}")]
    NoPrefix {
        /// Offset in the PES payload.
        offset: usize,
    },
    /// A control header or packet runs past the end of the PES payload.
    #[error("Opus packet at byte {offset} runs past the end of its PES")]
    Truncated {
        /// Offset of its control header in the PES payload.
        offset: usize,
    },
}

/// One Opus packet of a PES payload: its bytes (without control header) and trims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusPacketRef<'a> {
    /// The Opus packet.
    pub data: &'a [u8],
    /// The trims its header declared.
    pub trim: Trim,
}

/// Splits a PES payload into its Opus packets, in order.
pub fn split_packets(mut payload: &[u8]) -> Result<Vec<OpusPacketRef<'_>>, OpusTsError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while !payload.is_empty() {
        let truncated = OpusTsError::Truncated { offset };
        let head = payload.get(..2).ok_or(truncated)?;
        let flags = u16::from_be_bytes([head[0], head[1]]);
        if flags & 0xFFE0 != PREFIX {
            return Err(OpusTsError::NoPrefix { offset });
        }
        let mut pos = 2;
        let mut size = 0usize;
        loop {
            let b = *payload.get(pos).ok_or(truncated)?;
            pos += 1;
            size += usize::from(b);
            if b != 0xFF {
                break;
            }
        }
        let read_u16 = |pos: &mut usize| -> Result<u16, OpusTsError> {
            let b = payload.get(*pos..*pos + 2).ok_or(truncated)?;
            *pos += 2;
            Ok(u16::from_be_bytes([b[0], b[1]]))
        };
        let mut trim = Trim::default();
        if flags & START_TRIM_FLAG != 0 {
            trim.start = read_u16(&mut pos)?;
        }
        if flags & END_TRIM_FLAG != 0 {
            trim.end = read_u16(&mut pos)?;
        }
        if flags & CONTROL_EXTENSION_FLAG != 0 {
            let len = usize::from(*payload.get(pos).ok_or(truncated)?);
            pos += 1 + len;
        }
        let data = payload.get(pos..pos + size).ok_or(truncated)?;
        out.push(OpusPacketRef { data, trim });
        payload = &payload[pos + size..];
        offset += pos + size;
    }
    Ok(out)
}

/// Samples (at 48 kHz) an Opus packet decodes to, from its TOC byte (RFC 6716 3.1); `None`
/// for an empty packet or a code-3 packet without its frame count.
pub fn packet_samples(packet: &[u8]) -> Option<usize> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame length in 48 kHz samples: SILK 10/20/40/60 ms, hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
    let frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => usize::from(*packet.get(1)? & 0x3F),
    };
    Some(frame * frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_what_ffmpeg_writes() {
        // ffmpeg 5.1's PMT entry for stereo Opus: 05 04 "Opus" 7f 02 80 02.
        assert_eq!(es_info(2), [0x05, 0x04, b'O', b'p', b'u', b's', 0x7F, 0x02, 0x80, 0x02]);
        assert_eq!(channels_from_es_info(&es_info(1)), Some(1));
        assert_eq!(channels_from_es_info(&[0x05, 0x04, b'O', b'p', b'u', b's']), None);
        assert_eq!(channels_from_es_info(&[0x7F, 0x09, 0x80]), None, "a descriptor past the end");
    }

    #[test]
    fn control_headers_are_what_ffmpeg_writes() {
        // ffmpeg's first packet of a stream: 7ff0 ffb8 0138 (439 bytes, start trim 312).
        let mut out = Vec::new();
        write_control_header(439, Trim { start: 312, end: 0 }, &mut out);
        assert_eq!(out, [0x7F, 0xF0, 0xFF, 0xB8, 0x01, 0x38]);
        out.clear();
        // A later one: 7fe0 ff1f (286 bytes).
        write_control_header(286, Trim::default(), &mut out);
        assert_eq!(out, [0x7F, 0xE0, 0xFF, 0x1F]);
        out.clear();
        write_control_header(255, Trim { start: 0, end: 7 }, &mut out);
        assert_eq!(out, [0x7F, 0xE8, 0xFF, 0x00, 0x00, 0x07]);
    }

    #[test]
    fn packets_split_back_with_their_trims() {
        let packets: Vec<(Vec<u8>, Trim)> = vec![
            (vec![1; 439], Trim { start: 312, end: 0 }),
            (vec![2; 254], Trim::default()),
            (vec![3; 510], Trim::default()),
            (vec![4; 3], Trim { start: 0, end: 100 }),
        ];
        let mut pes = Vec::new();
        for (data, trim) in &packets {
            write_control_header(data.len(), *trim, &mut pes);
            pes.extend_from_slice(data);
        }
        let split = split_packets(&pes).unwrap();
        let back: Vec<(Vec<u8>, Trim)> = split.iter().map(|p| (p.data.to_vec(), p.trim)).collect();
        assert_eq!(back, packets);
    }

    #[test]
    fn packet_durations_come_from_the_toc() {
        // CELT 20 ms (config 31), one frame: what the encoder here writes at 96 kbit/s.
        assert_eq!(packet_samples(&[0xFC, 0, 0]), Some(960));
        // SILK 60 ms, two frames.
        assert_eq!(packet_samples(&[(3 << 3) | 1]), Some(5760));
        // Code 3 with 3 frames of CELT 10 ms.
        assert_eq!(packet_samples(&[(30 << 3) | 3, 3]), Some(1440));
        assert_eq!(packet_samples(&[(30 << 3) | 3]), None);
        assert_eq!(packet_samples(&[]), None);
    }

    #[test]
    fn bad_payloads_are_typed_errors() {
        assert_eq!(split_packets(&[0x12, 0x34]), Err(OpusTsError::NoPrefix { offset: 0 }));
        assert_eq!(split_packets(&[0x7F, 0xE0, 0x05, 1, 2]), Err(OpusTsError::Truncated { offset: 0 }));
        assert_eq!(split_packets(&[0x7F, 0xE0, 0xFF]), Err(OpusTsError::Truncated { offset: 0 }));
        assert_eq!(split_packets(&[0x7F, 0xE0, 0x01, 9, 0x7F]), Err(OpusTsError::Truncated { offset: 4 }));
        assert_eq!(split_packets(&[]), Ok(Vec::new()));
        // Every byte sequence is an answer, never a panic.
        for a in 0..=255u8 {
            for b in [0x00, 0xE0, 0xFC, 0xFF] {
                let _ = split_packets(&[0x7F, b, a, 0xFF, a, 1, 2, 3]);
            }
        }
    }
}
