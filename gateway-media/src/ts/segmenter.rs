//! Cutting an encoded stream into independently decodable segments, emitted as `Bytes` chunks
//! while they are produced so a consumer (the trickle writer) can stream a segment that is
//! still being encoded.
//!
//! A segment is cut at the first keyframe at least `target_duration` of media time after the
//! current segment started. With the encoders' default keyframe interval equal to the default
//! target (2 s) that is one segment per GOP; a longer target groups GOPs, a shorter one still
//! waits for the next keyframe. Every segment starts with the container's headers (PAT/PMT for
//! MPEG-TS, the file header for IVF) and a keyframe. Timestamps are never rewritten, so they
//! run on continuously across segments and MPEG-TS segments concatenate into one valid stream.

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::encoder::{EncodedPacket, DEFAULT_KEYFRAME_INTERVAL};
// The muxer contract's old home: these paths stay valid.
pub use crate::muxer::{MuxError, SegmentMuxer};
use crate::time::{duration_to_ticks_90k, ticks_90k_to_duration};
use crate::ts::mux::TsMuxer;

/// Why the segmenter refused a packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SegmentError {
    /// The first packet was not a keyframe, so the first segment could not be decoded alone.
    #[error("the first packet (pts {pts}) is not a keyframe; segments must start with one")]
    FirstPacketNotKeyframe {
        /// Its pts, 90 kHz.
        pts: i64,
    },
    /// The muxer refused the packet.
    #[error(transparent)]
    Mux(#[from] MuxError),
}

/// Segmenter settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Minimum media time per segment; cuts happen at the first keyframe after it.
    pub target_duration: Duration,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self { target_duration: DEFAULT_KEYFRAME_INTERVAL }
    }
}

/// A finished segment's numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentSummary {
    /// 0-based segment number.
    pub index: u64,
    /// Bytes emitted for it (sum of its chunks).
    pub bytes: u64,
    /// Access units in it.
    pub frames: u64,
    /// pts of its first frame, 90 kHz.
    pub start_pts: i64,
    /// Media time it covers: up to the next segment's first pts, or for the last segment up to
    /// its last frame plus one frame interval.
    pub duration: Duration,
}

/// What the segmenter produced; apply in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SegmentEvent {
    /// A new segment begins; the chunks that follow belong to it.
    SegmentStart {
        /// 0-based segment number.
        index: u64,
    },
    /// Bytes of the current segment (one access unit, plus headers at the segment start).
    Chunk(Bytes),
    /// The current segment is complete.
    SegmentEnd(SegmentSummary),
}

#[derive(Debug)]
struct OpenSegment {
    index: u64,
    start_pts: i64,
    bytes: u64,
    frames: u64,
    last_pts: i64,
}

/// Turns encoded packets into segment events. Defaults to MPEG-TS; use
/// [`Segmenter::with_muxer`] with [`crate::IvfMuxer`] for AV1.
#[derive(Debug)]
pub struct Segmenter<M: SegmentMuxer = TsMuxer> {
    muxer: M,
    target_90k: i64,
    current: Option<OpenSegment>,
    next_index: u64,
    /// Last observed pts step, used to give the final segment a duration.
    frame_step: i64,
    /// Cut at the next keyframe whatever the open segment's length (see
    /// [`Segmenter::cut_at_next_keyframe`]).
    cut_requested: bool,
    buf: Vec<u8>,
}

impl Segmenter<TsMuxer> {
    /// An MPEG-TS segmenter for H.264 with the default muxer settings.
    pub fn mpegts(config: SegmenterConfig) -> Self {
        Self::with_muxer(TsMuxer::default(), config)
    }
}

impl<M: SegmentMuxer> Segmenter<M> {
    /// A segmenter writing through `muxer`.
    pub fn with_muxer(muxer: M, config: SegmenterConfig) -> Self {
        Self {
            muxer,
            target_90k: duration_to_ticks_90k(config.target_duration),
            current: None,
            next_index: 0,
            frame_step: 0,
            cut_requested: false,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// The muxer (e.g. to read its configuration).
    pub fn muxer(&self) -> &M {
        &self.muxer
    }

    /// Index of the segment being written, if one is open.
    pub fn current_index(&self) -> Option<u64> {
        self.current.as_ref().map(|s| s.index)
    }

    /// Starts a new segment at the next keyframe even if the open one is shorter than the
    /// target: a stream moving to another channel asks its encoder for a keyframe and must start
    /// the new channel with it, not two seconds later.
    pub fn cut_at_next_keyframe(&mut self) {
        self.cut_requested = true;
    }

    /// Adds one packet; returns the events it caused (a `Chunk`, preceded by `SegmentEnd` and
    /// `SegmentStart` when it opens a new segment).
    pub fn push(&mut self, packet: &EncodedPacket) -> Result<Vec<SegmentEvent>, SegmentError> {
        let mut events = Vec::with_capacity(3);
        self.push_into(packet, &mut events)?;
        Ok(events)
    }

    /// Like [`Self::push`], appending to `events` (no allocation per frame).
    pub fn push_into(
        &mut self,
        packet: &EncodedPacket,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), SegmentError> {
        if packet.codec != self.muxer.codec() {
            return Err(MuxError::CodecMismatch { expected: self.muxer.codec(), got: packet.codec }.into());
        }
        let cut = match &self.current {
            None if !packet.keyframe => return Err(SegmentError::FirstPacketNotKeyframe { pts: packet.pts }),
            None => true,
            Some(seg) => {
                packet.keyframe && (self.cut_requested || packet.pts - seg.start_pts >= self.target_90k)
            }
        };
        self.buf.clear();
        if cut {
            if let Some(seg) = self.current.take() {
                events.push(SegmentEvent::SegmentEnd(Self::summary(&seg, packet.pts - seg.start_pts)));
            }
            self.muxer.begin_segment(&mut self.buf);
        }
        // Write before committing any state, so a refused packet leaves the segmenter as it was.
        if let Err(e) = self.muxer.write_packet(packet, &mut self.buf) {
            self.buf.clear();
            return Err(e.into());
        }
        if cut {
            self.cut_requested = false;
            let index = self.next_index;
            self.next_index += 1;
            self.current =
                Some(OpenSegment { index, start_pts: packet.pts, bytes: 0, frames: 0, last_pts: packet.pts });
            events.push(SegmentEvent::SegmentStart { index });
        }
        let seg = self.current.as_mut().expect("a segment is open after a cut");
        if seg.frames > 0 && packet.pts > seg.last_pts {
            self.frame_step = packet.pts - seg.last_pts;
        }
        seg.frames += 1;
        seg.bytes += self.buf.len() as u64;
        seg.last_pts = packet.pts;
        events.push(SegmentEvent::Chunk(Bytes::copy_from_slice(&self.buf)));
        Ok(())
    }

    /// Closes the open segment, if any (end of stream).
    pub fn finish(&mut self) -> Option<SegmentEvent> {
        let seg = self.current.take()?;
        let span = seg.last_pts - seg.start_pts + self.frame_step;
        Some(SegmentEvent::SegmentEnd(Self::summary(&seg, span)))
    }

    fn summary(seg: &OpenSegment, span_90k: i64) -> SegmentSummary {
        SegmentSummary {
            index: seg.index,
            bytes: seg.bytes,
            frames: seg.frames,
            start_pts: seg.start_pts,
            duration: ticks_90k_to_duration(span_90k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::av1::ivf::{IvfMuxer, IVF_HEADER_LEN};
    use crate::encoder::Codec;
    use crate::ts::mux::{DEFAULT_PMT_PID, PAT_PID, TS_PACKET_LEN};

    fn pkt(i: i64, keyframe: bool) -> EncodedPacket {
        EncodedPacket {
            codec: Codec::H264,
            data: Bytes::from(vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }, 1, 2, 3]),
            pts: i * 3000,
            dts: i * 3000,
            keyframe,
        }
    }

    fn pid(ts: &[u8]) -> u16 {
        (u16::from(ts[1] & 0x1F) << 8) | u16::from(ts[2])
    }

    #[test]
    fn cuts_at_keyframes_after_target() {
        let mut s = Segmenter::mpegts(SegmenterConfig::default());
        let mut events = Vec::new();
        // Keyframes every 30 frames (1 s) at 30 fps; target 2 s -> a cut every 60 frames.
        for i in 0..150 {
            events.extend(s.push(&pkt(i, i % 30 == 0)).unwrap());
        }
        events.extend(s.finish());
        let ends: Vec<&SegmentSummary> = events
            .iter()
            .filter_map(|e| match e {
                SegmentEvent::SegmentEnd(s) => Some(s),
                _ => None,
            })
            .collect();
        let shape: Vec<(u64, u64, i64, Duration)> =
            ends.iter().map(|s| (s.index, s.frames, s.start_pts, s.duration)).collect();
        assert_eq!(
            shape,
            vec![
                (0, 60, 0, Duration::from_secs(2)),
                (1, 60, 180_000, Duration::from_secs(2)),
                (2, 30, 360_000, Duration::from_secs(1)),
            ]
        );
        // Each segment: Start, then chunks; the first chunk opens with PAT + PMT.
        let mut chunk_bytes = 0u64;
        let mut expect_tables = false;
        for e in &events {
            match e {
                SegmentEvent::SegmentStart { .. } => expect_tables = true,
                SegmentEvent::Chunk(c) => {
                    assert_eq!(c.len() % TS_PACKET_LEN, 0);
                    if expect_tables {
                        assert_eq!(pid(&c[..]), PAT_PID);
                        assert_eq!(pid(&c[TS_PACKET_LEN..]), DEFAULT_PMT_PID);
                        expect_tables = false;
                    } else {
                        assert_ne!(pid(&c[..]), PAT_PID);
                    }
                    chunk_bytes += c.len() as u64;
                }
                SegmentEvent::SegmentEnd(_) => {}
            }
        }
        assert_eq!(chunk_bytes, ends.iter().map(|s| s.bytes).sum::<u64>());
        assert!(s.finish().is_none());
    }

    #[test]
    fn event_order_at_a_cut() {
        let mut s = Segmenter::mpegts(SegmenterConfig { target_duration: Duration::from_millis(50) });
        let first = s.push(&pkt(0, true)).unwrap();
        assert!(matches!(
            first.as_slice(),
            [SegmentEvent::SegmentStart { index: 0 }, SegmentEvent::Chunk(_)]
        ));
        assert_eq!(s.push(&pkt(1, false)).unwrap().len(), 1);
        let cut = s.push(&pkt(2, true)).unwrap();
        assert!(matches!(
            cut.as_slice(),
            [
                SegmentEvent::SegmentEnd(SegmentSummary { index: 0, frames: 2, .. }),
                SegmentEvent::SegmentStart { index: 1 },
                SegmentEvent::Chunk(_)
            ]
        ));
        assert_eq!(s.current_index(), Some(1));
    }

    /// A requested cut waits for a keyframe (never cuts before a delta frame), happens at the
    /// first one however young the segment, and is then forgotten: later keyframes inside the
    /// target are not cuts.
    #[test]
    fn a_requested_cut_happens_at_the_next_keyframe_only() {
        let mut s = Segmenter::mpegts(SegmenterConfig::default());
        let starts = |events: &[SegmentEvent]| {
            events.iter().filter(|e| matches!(e, SegmentEvent::SegmentStart { .. })).count()
        };
        assert_eq!(starts(&s.push(&pkt(0, true)).unwrap()), 1);
        s.cut_at_next_keyframe();
        assert_eq!(starts(&s.push(&pkt(1, false)).unwrap()), 0, "no cut before a delta frame");
        let cut = s.push(&pkt(2, true)).unwrap();
        assert!(matches!(
            &cut[..],
            [
                SegmentEvent::SegmentEnd(SegmentSummary { index: 0, frames: 2, .. }),
                SegmentEvent::SegmentStart { index: 1 },
                SegmentEvent::Chunk(_)
            ]
        ));
        assert_eq!(starts(&s.push(&pkt(3, true)).unwrap()), 0, "the request was used up");
    }

    #[test]
    fn refuses_bad_streams() {
        let mut s = Segmenter::mpegts(SegmenterConfig::default());
        assert_eq!(s.push(&pkt(0, false)), Err(SegmentError::FirstPacketNotKeyframe { pts: 0 }));
        let av1 = EncodedPacket { codec: Codec::Av1, ..pkt(0, true) };
        assert!(matches!(s.push(&av1), Err(SegmentError::Mux(MuxError::CodecMismatch { .. }))));
        // Nothing was opened by the refused packets.
        assert_eq!(s.current_index(), None);
    }

    #[test]
    fn ivf_segments_start_with_a_file_header() {
        let mut s = Segmenter::with_muxer(
            IvfMuxer::new(64, 48).unwrap(),
            SegmenterConfig { target_duration: Duration::from_millis(100) },
        );
        let mut headers = 0;
        for i in 0..9 {
            let p = EncodedPacket { codec: Codec::Av1, ..pkt(i, i % 3 == 0) };
            for e in s.push(&p).unwrap() {
                if let SegmentEvent::Chunk(c) = e {
                    if c.starts_with(b"DKIF") {
                        headers += 1;
                        assert_eq!(c.len(), IVF_HEADER_LEN + 12 + 8);
                    }
                }
            }
        }
        // 100 ms = 9000 ticks = 3 frames: a cut at every keyframe.
        assert_eq!(headers, 3);
    }
}
