//! IVF, the container for AV1 segments.
//!
//! Why IVF rather than WebM or fragmented MP4: it is the smallest format ffmpeg/PyAV demux for
//! AV1 (a 32-byte file header and a 12-byte header per frame, written here in ~40 lines with
//! no dependency), it streams (no index, no sizes known in advance, so chunks can leave while a
//! segment is still being encoded) and ffmpeg reads it from a pipe. Every segment is a complete
//! IVF file starting at a key frame (which carries the sequence header), so each segment
//! decodes alone. Unlike MPEG-TS, IVF segments cannot simply be concatenated into one file
//! (each has its own header); a reader that wants one stream strips the 32-byte headers after
//! the first. WebM or fMP4 would add timing precision we do not need and a muxer to maintain.
//!
//! Layout (all little-endian): `DKIF`, version 0 (u16), header length 32 (u16), fourcc `AV01`,
//! width (u16), height (u16), time base denominator (u32) and numerator (u32), frame count
//! (u32, 0 here: unknown while streaming), 4 unused bytes; then per frame: payload size (u32),
//! pts (u64) in the header's time base, payload.

use crate::encoder::{Codec, EncodedPacket};
use crate::muxer::{MuxError, SegmentMuxer};
use crate::time::CLOCK_90K;

/// Size of the IVF file header.
pub const IVF_HEADER_LEN: usize = 32;
/// Size of each IVF frame header.
pub const IVF_FRAME_HEADER_LEN: usize = 12;

/// Writes AV1 packets as IVF with a 90 kHz time base (the packets' own clock).
#[derive(Clone, Debug)]
pub struct IvfMuxer {
    width: u16,
    height: u16,
}

impl IvfMuxer {
    /// A muxer for `width x height` AV1; fails if a side does not fit IVF's 16-bit fields.
    pub fn new(width: u32, height: u32) -> Result<Self, MuxError> {
        match (u16::try_from(width), u16::try_from(height)) {
            (Ok(width), Ok(height)) => Ok(Self { width, height }),
            _ => {
                Err(MuxError::Unsupported(format!("IVF cannot describe {width}x{height}; sides are 16-bit")))
            }
        }
    }

    /// Appends the 32-byte file header.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"DKIF");
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(IVF_HEADER_LEN as u16).to_le_bytes());
        out.extend_from_slice(b"AV01");
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&CLOCK_90K.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }

    /// Appends one frame (12-byte header + payload).
    pub fn write_frame(&self, packet: &EncodedPacket, out: &mut Vec<u8>) -> Result<(), MuxError> {
        if packet.codec != Codec::Av1 {
            return Err(MuxError::CodecMismatch { expected: Codec::Av1, got: packet.codec });
        }
        let size = u32::try_from(packet.data.len()).map_err(|_| {
            MuxError::Unsupported(format!("frame of {} bytes is too large for IVF", packet.data.len()))
        })?;
        out.reserve(IVF_FRAME_HEADER_LEN + packet.data.len());
        out.extend_from_slice(&size.to_le_bytes());
        // IVF pts is unsigned; a negative pts cannot be stored, clamp rather than wrap.
        out.extend_from_slice(&(packet.pts.max(0) as u64).to_le_bytes());
        out.extend_from_slice(&packet.data);
        Ok(())
    }
}

impl SegmentMuxer for IvfMuxer {
    fn codec(&self) -> Codec {
        Codec::Av1
    }

    fn begin_segment(&mut self, out: &mut Vec<u8>) {
        self.write_header(out);
    }

    fn write_packet(&mut self, packet: &EncodedPacket, out: &mut Vec<u8>) -> Result<(), MuxError> {
        self.write_frame(packet, out)
    }
}

/// Byte offset of the frame count in the IVF file header.
pub const IVF_FRAME_COUNT_OFFSET: usize = 24;

/// Joins IVF segments, as they arrive in chunks, into one IVF stream a player reads whole: the
/// first segment's file header is kept, later segments' headers are dropped (their frames
/// carry continuous pts on the packets' 90 kHz clock), and frames are counted so a file's
/// header can be given the right count at the end ([`IvfJoin::frames`],
/// [`IVF_FRAME_COUNT_OFFSET`]). No I/O: bytes in, bytes out.
#[derive(Debug, Default, Clone)]
pub struct IvfJoin {
    /// Segments begun so far.
    segments: u64,
    /// Header bytes of the current segment still to skip (or, for the first, to pass).
    header_left: usize,
    /// Bytes of the current frame header seen so far.
    frame_header: Vec<u8>,
    /// Payload bytes of the current frame still to pass.
    payload_left: u64,
    /// Complete frame headers seen.
    frames: u32,
}

impl IvfJoin {
    /// A joiner before its first segment.
    pub fn new() -> IvfJoin {
        IvfJoin::default()
    }

    /// A new segment starts (the next bytes are its file header).
    pub fn begin_segment(&mut self) {
        self.segments += 1;
        self.header_left = IVF_HEADER_LEN;
        self.frame_header.clear();
        self.payload_left = 0;
    }

    /// The bytes of `chunk` (part of the current segment) that belong in the joined stream.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        while !chunk.is_empty() {
            if self.header_left > 0 {
                let n = self.header_left.min(chunk.len());
                if self.segments <= 1 {
                    out.extend_from_slice(&chunk[..n]);
                }
                self.header_left -= n;
                chunk = &chunk[n..];
            } else if self.payload_left > 0 {
                let n = usize::try_from(self.payload_left).unwrap_or(usize::MAX).min(chunk.len());
                out.extend_from_slice(&chunk[..n]);
                self.payload_left -= n as u64;
                chunk = &chunk[n..];
            } else {
                let n = (IVF_FRAME_HEADER_LEN - self.frame_header.len()).min(chunk.len());
                self.frame_header.extend_from_slice(&chunk[..n]);
                out.extend_from_slice(&chunk[..n]);
                chunk = &chunk[n..];
                if self.frame_header.len() == IVF_FRAME_HEADER_LEN {
                    let size = [
                        self.frame_header[0],
                        self.frame_header[1],
                        self.frame_header[2],
                        self.frame_header[3],
                    ];
                    self.payload_left = u64::from(u32::from_le_bytes(size));
                    self.frame_header.clear();
                    self.frames = self.frames.saturating_add(1);
                }
            }
        }
        out
    }

    /// Frames passed so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn segment(m: &IvfMuxer, pts: &[i64]) -> Vec<u8> {
        let mut out = Vec::new();
        m.write_header(&mut out);
        for p in pts {
            let packet = EncodedPacket {
                codec: Codec::Av1,
                data: Bytes::from(vec![*p as u8; 5 + (*p as usize % 7)]),
                pts: *p,
                dts: *p,
                keyframe: true,
            };
            m.write_frame(&packet, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn joined_segments_are_one_ivf_stream_whatever_the_chunking() {
        let m = IvfMuxer::new(64, 48).unwrap();
        let (a, b) = (segment(&m, &[0, 3000, 6000]), segment(&m, &[9000, 12000]));
        let mut expected = a.clone();
        expected.extend_from_slice(&b[IVF_HEADER_LEN..]);
        for chunk in [1, 5, 12, 13, 31, 33, 1000] {
            let mut join = IvfJoin::new();
            let mut out = Vec::new();
            for seg in [&a, &b] {
                join.begin_segment();
                for piece in seg.chunks(chunk) {
                    out.extend(join.push(piece));
                }
            }
            assert_eq!(out, expected, "chunks of {chunk}");
            assert_eq!(join.frames(), 5);
        }
    }

    #[test]
    fn header_and_frame_layout() {
        let m = IvfMuxer::new(320, 180).unwrap();
        let mut out = Vec::new();
        m.write_header(&mut out);
        assert_eq!(out.len(), IVF_HEADER_LEN);
        assert_eq!(&out[..4], b"DKIF");
        assert_eq!(&out[8..12], b"AV01");
        assert_eq!(u16::from_le_bytes([out[12], out[13]]), 320);
        assert_eq!(u16::from_le_bytes([out[14], out[15]]), 180);
        assert_eq!(u32::from_le_bytes(out[16..20].try_into().unwrap()), 90_000);
        assert_eq!(u32::from_le_bytes(out[20..24].try_into().unwrap()), 1);
        let p = EncodedPacket {
            codec: Codec::Av1,
            data: Bytes::from_static(&[1, 2, 3]),
            pts: 6000,
            dts: 6000,
            keyframe: true,
        };
        m.write_frame(&p, &mut out).unwrap();
        assert_eq!(out.len(), IVF_HEADER_LEN + IVF_FRAME_HEADER_LEN + 3);
        assert_eq!(&out[32..36], &3u32.to_le_bytes());
        assert_eq!(&out[36..44], &6000u64.to_le_bytes());
        assert_eq!(&out[44..], &[1, 2, 3]);
        let h264 = EncodedPacket { codec: Codec::H264, ..p };
        assert!(matches!(m.write_frame(&h264, &mut out), Err(MuxError::CodecMismatch { .. })));
        assert!(IvfMuxer::new(70_000, 10).is_err());
    }
}
