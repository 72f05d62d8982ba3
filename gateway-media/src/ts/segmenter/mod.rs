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
//!
//! Audio, when the muxer carries it, is interleaved by time: its packets wait until they span
//! [`AUDIO_PES_SPAN`] or a video packet comes with a later pts, then go out as one unit (one
//! PES). Audio older than a cut ends the old segment; audio before the first keyframe opens
//! the first segment with it. A muxer that carries only audio is cut by time, every audio unit
//! being a place to cut.

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::encoder::{EncodedPacket, DEFAULT_KEYFRAME_INTERVAL};
// The muxer contract's old home: these paths stay valid.
pub use crate::muxer::{MuxError, SegmentMuxer};
use crate::time::{duration_to_ticks_90k, ticks_90k_to_duration};
use crate::ts::mux::TsMuxer;

/// Audio packets gathered into one unit (PES): ffmpeg's muxer gathers about as much, which
/// keeps the PES and TS overhead of 20 ms Opus packets near 5 % instead of 30 %.
pub const AUDIO_PES_SPAN: Duration = Duration::from_millis(100);
/// Audio held while no segment is open (the first video keyframe is late); older audio is
/// dropped and counted ([`Segmenter::audio_dropped`]).
pub const AUDIO_HOLD_MAX: Duration = Duration::from_secs(2);

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
    /// Video access units in it (audio packets for an audio-only stream).
    pub frames: u64,
    /// Audio packets in it.
    pub audio_packets: u64,
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
    audio_packets: u64,
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
    /// Audio packets not written yet, in pts order.
    audio: Vec<EncodedPacket>,
    /// Audio packets dropped while no segment was open for them.
    audio_dropped: u64,
    /// Last observed audio pts step (an audio-only stream's last segment duration).
    audio_step: i64,
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
            audio: Vec::new(),
            audio_dropped: 0,
            audio_step: 0,
        }
    }

    /// The muxer (e.g. to read its configuration).
    pub fn muxer(&self) -> &M {
        &self.muxer
    }

    /// Audio packets dropped because no segment opened for them within [`AUDIO_HOLD_MAX`].
    pub fn audio_dropped(&self) -> u64 {
        self.audio_dropped
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
        if Some(packet.codec) == self.muxer.audio_codec() {
            return self.push_audio(packet, events);
        }
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
        // Audio older than this picture goes first: into the segment it ends, or, before the
        // first segment, at the head of the first.
        let older = self.audio.iter().take_while(|a| a.pts < packet.pts).count();
        let head_audio = if cut && self.current.is_some() {
            self.flush_audio(older, events)?;
            0
        } else {
            older
        };
        self.buf.clear();
        if cut {
            if let Some(seg) = self.current.take() {
                events.push(SegmentEvent::SegmentEnd(Self::summary(&seg, packet.pts - seg.start_pts)));
            }
            self.muxer.begin_segment(&mut self.buf);
        }
        // Write before committing any state, so a refused packet leaves the segmenter as it was.
        let written = self
            .write_audio_into_buf(head_audio)
            .and_then(|()| self.muxer.write_packet(packet, &mut self.buf));
        if let Err(e) = written {
            self.buf.clear();
            return Err(e.into());
        }
        let audio_packets = head_audio as u64;
        self.audio.drain(..head_audio);
        if cut {
            self.open_segment(packet.pts);
        }
        let seg = self.current.as_mut().expect("a segment is open after a cut");
        if seg.frames > 0 && packet.pts > seg.last_pts {
            self.frame_step = packet.pts - seg.last_pts;
        }
        seg.frames += 1;
        seg.audio_packets += audio_packets;
        seg.bytes += self.buf.len() as u64;
        seg.last_pts = packet.pts;
        if cut {
            events.push(SegmentEvent::SegmentStart { index: seg.index });
        }
        events.push(SegmentEvent::Chunk(Bytes::copy_from_slice(&self.buf)));
        Ok(())
    }

    /// One audio packet: held, then written once the held audio spans [`AUDIO_PES_SPAN`].
    fn push_audio(
        &mut self,
        packet: &EncodedPacket,
        events: &mut Vec<SegmentEvent>,
    ) -> Result<(), SegmentError> {
        if let Some(last) = self.audio.last() {
            if packet.pts > last.pts {
                self.audio_step = packet.pts - last.pts;
            }
        }
        self.audio.push(packet.clone());
        let span = |a: &[EncodedPacket]| match (a.first(), a.last()) {
            (Some(f), Some(l)) => l.pts - f.pts + self.audio_step,
            _ => 0,
        };
        if span(&self.audio) < duration_to_ticks_90k(AUDIO_PES_SPAN) {
            return Ok(());
        }
        if self.audio_only() {
            return self.write_audio_unit(events);
        }
        if self.current.is_some() {
            return self.flush_audio(self.audio.len(), events);
        }
        // No segment yet: hold a bounded amount.
        let hold = duration_to_ticks_90k(AUDIO_HOLD_MAX);
        let newest = packet.pts;
        let stale = self.audio.iter().take_while(|a| newest - a.pts >= hold).count();
        self.audio.drain(..stale);
        self.audio_dropped += stale as u64;
        Ok(())
    }

    /// Whether the muxer carries audio and nothing else.
    fn audio_only(&self) -> bool {
        self.muxer.audio_codec() == Some(self.muxer.codec())
    }

    /// An audio-only stream: the held audio as one unit, opening a segment first when the
    /// open one is long enough (or asked to end).
    fn write_audio_unit(&mut self, events: &mut Vec<SegmentEvent>) -> Result<(), SegmentError> {
        let Some(first) = self.audio.first() else { return Ok(()) };
        let pts = first.pts;
        let cut = match &self.current {
            None => true,
            Some(seg) => self.cut_requested || pts - seg.start_pts >= self.target_90k,
        };
        self.buf.clear();
        if cut {
            self.muxer.begin_segment(&mut self.buf);
        }
        let n = self.audio.len();
        if let Err(e) = self.write_audio_into_buf(n) {
            self.buf.clear();
            return Err(e.into());
        }
        let last_pts = self.audio[n - 1].pts;
        self.audio.clear();
        if cut {
            if let Some(seg) = self.current.take() {
                events.push(SegmentEvent::SegmentEnd(Self::summary(&seg, pts - seg.start_pts)));
            }
            self.open_segment(pts);
            events.push(SegmentEvent::SegmentStart { index: self.next_index - 1 });
        }
        let seg = self.current.as_mut().expect("a segment is open after a cut");
        seg.frames += n as u64;
        seg.audio_packets += n as u64;
        seg.bytes += self.buf.len() as u64;
        seg.last_pts = last_pts;
        self.frame_step = self.audio_step;
        events.push(SegmentEvent::Chunk(Bytes::copy_from_slice(&self.buf)));
        Ok(())
    }

    /// Writes the first `n` held audio packets into the open segment as their own chunk.
    fn flush_audio(&mut self, n: usize, events: &mut Vec<SegmentEvent>) -> Result<(), SegmentError> {
        if n == 0 || self.current.is_none() {
            return Ok(());
        }
        self.buf.clear();
        if let Err(e) = self.write_audio_into_buf(n) {
            self.buf.clear();
            return Err(e.into());
        }
        self.audio.drain(..n);
        let seg = self.current.as_mut().expect("checked above");
        seg.audio_packets += n as u64;
        seg.bytes += self.buf.len() as u64;
        events.push(SegmentEvent::Chunk(Bytes::copy_from_slice(&self.buf)));
        Ok(())
    }

    /// Appends the first `n` held audio packets to `buf` as one unit.
    fn write_audio_into_buf(&mut self, n: usize) -> Result<(), MuxError> {
        if n == 0 {
            return Ok(());
        }
        self.muxer.write_audio(&self.audio[..n], &mut self.buf)
    }

    /// Opens the next segment at `pts`.
    fn open_segment(&mut self, pts: i64) {
        self.cut_requested = false;
        let index = self.next_index;
        self.next_index += 1;
        self.current =
            Some(OpenSegment { index, start_pts: pts, bytes: 0, frames: 0, audio_packets: 0, last_pts: pts });
    }

    /// Closes the open segment, if any (end of stream), with the audio still held.
    pub fn finish(&mut self) -> Vec<SegmentEvent> {
        let mut events = Vec::new();
        // Errors here can only be a muxer refusing audio it declared; the audio is then lost
        // and counted, the segment still ends.
        let flushed = if self.audio_only() {
            self.write_audio_unit(&mut events)
        } else {
            self.flush_audio(self.audio.len(), &mut events)
        };
        if flushed.is_err() || self.current.is_none() {
            self.audio_dropped += self.audio.len() as u64;
            self.audio.clear();
        }
        if let Some(seg) = self.current.take() {
            let span = seg.last_pts - seg.start_pts + self.frame_step;
            events.push(SegmentEvent::SegmentEnd(Self::summary(&seg, span)));
        }
        events
    }

    fn summary(seg: &OpenSegment, span_90k: i64) -> SegmentSummary {
        SegmentSummary {
            index: seg.index,
            bytes: seg.bytes,
            frames: seg.frames,
            audio_packets: seg.audio_packets,
            start_pts: seg.start_pts,
            duration: ticks_90k_to_duration(span_90k),
        }
    }
}

#[cfg(test)]
mod tests;
