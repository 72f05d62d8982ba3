//! PES and descriptor parsing shared by the demuxer's tracks.

use bytes::Bytes;

use super::{DemuxIssue, TS_MASK};

/// Whether `descriptors` holds a registration descriptor (tag 5) with `format`.
pub(crate) fn has_registration(mut descriptors: &[u8], format: &[u8; 4]) -> bool {
    while descriptors.len() >= 2 {
        let (tag, len) = (descriptors[0], usize::from(descriptors[1]));
        let Some(body) = descriptors.get(2..2 + len) else { return false };
        if tag == 5 && body.len() >= 4 && &body[..4] == format {
            return true;
        }
        descriptors = &descriptors[2 + len..];
    }
    false
}

/// Splits a whole PES into PTS, DTS and payload.
pub(crate) fn parse_pes(buf: Vec<u8>) -> Result<(Option<i64>, Option<i64>, Bytes), DemuxIssue> {
    let bad = |reason| DemuxIssue::InvalidPes { reason };
    if buf.len() < 9 || buf[..3] != [0, 0, 1] {
        return Err(bad("shorter than a PES header"));
    }
    let stream_id = buf[3];
    // Streams without the optional header (padding, private_stream_2, ECM, EMM, ...).
    if matches!(stream_id, 0xBC | 0xBE | 0xBF | 0xF0 | 0xF1 | 0xF2 | 0xF8 | 0xFF) {
        return Ok((None, None, Bytes::from(buf).slice(6..)));
    }
    if buf[6] & 0xC0 != 0x80 {
        return Err(bad("missing the '10' marker bits"));
    }
    let flags = buf[7] >> 6;
    let header_len = usize::from(buf[8]);
    let needed = match flags {
        0b10 => 5,
        0b11 => 10,
        0b00 => 0,
        _ => return Err(bad("PTS_DTS_flags is 01 (forbidden)")),
    };
    if header_len < needed {
        return Err(bad("PES_header_data_length too short for its timestamps"));
    }
    if buf.len() < 9 + header_len {
        return Err(bad("PES header longer than the PES"));
    }
    let pts = (flags & 0b10 != 0).then(|| read_timestamp(&buf[9..14]));
    let dts = (flags == 0b11).then(|| read_timestamp(&buf[14..19]));
    Ok((pts, dts, Bytes::from(buf).slice(9 + header_len..)))
}

/// A 33-bit PTS/DTS from its 5 bytes (marker bits ignored, as players do).
pub(crate) fn read_timestamp(b: &[u8]) -> i64 {
    ((i64::from(b[0] >> 1 & 0x07) << 30)
        | (i64::from(b[1]) << 22)
        | (i64::from(b[2] >> 1) << 15)
        | (i64::from(b[3]) << 7)
        | i64::from(b[4] >> 1))
        & TS_MASK
}
