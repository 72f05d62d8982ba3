//! Cutting an existing MPEG-TS stream (a file, a pipe from ffmpeg or OBS) into trickle segments
//! at video keyframes, without re-encoding: TS packets pass through unchanged, in order.
//!
//! Every segment starts with copies of the stream's latest PAT and PMT packets and then the
//! first packet of a keyframe's PES on the video PID, so each one decodes alone; the packets of
//! other streams (audio, data) stay where the source put them. A cut happens at the first
//! keyframe at least [`TsCutterConfig::min_duration`] of media time after the segment began.
//! A keyframe is a PES whose first packet has the `random_access_indicator`, or (H.264) one
//! holding an IDR slice; so a PES is held until the next one on the video PID starts, and the
//! cut can go before it. What comes before the first keyframe cannot be decoded and is counted
//! ([`CutterStats::bytes_before_first_keyframe`]), not sent.
//!
//! The output is [`SegmentEvent`]s, the same the encoder's [`Segmenter`](super::segmenter)
//! gives, so a consumer streams a segment while it is still being read. No I/O and no clock:
//! pacing by the stream's timestamps is the caller's, from [`TsCutter::clock`].
//!
//! Input is untrusted: lost sync is skipped to the next sync byte and counted; bytes that never
//! find sync, or a stream with no video, are a typed [`CutError`].

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

use crate::h264::nal::has_idr;
use crate::time::{duration_to_ticks_90k, ticks_90k_to_duration};
use crate::ts::demux::TsDemuxer;
use crate::ts::mux::{PAT_PID, SYNC_BYTE, TS_PACKET_LEN};
use crate::ts::segmenter::{SegmentEvent, SegmentSummary};

/// Input read without finding a single sync byte before it is not a transport stream.
pub const SYNC_SEARCH_LIMIT: u64 = 64 * 1024;
/// Input read without a PMT naming a video stream before giving up on it.
pub const VIDEO_SEARCH_LIMIT: u64 = 4 * 1024 * 1024;

/// Why the input cannot be cut.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CutError {
    /// No `0x47` sync byte where TS packets should be.
    #[error("not an MPEG transport stream: no sync byte (0x47) in the first {bytes} bytes")]
    NotTransportStream {
        /// Bytes read.
        bytes: u64,
    },
    /// No PMT names a video stream.
    #[error("the transport stream has no video stream (no PMT lists one) in its first {bytes} bytes")]
    NoVideo {
        /// Bytes read.
        bytes: u64,
    },
    /// The stream has video but never a keyframe, so no segment could start.
    #[error("the transport stream's video has no keyframe in {bytes} bytes")]
    NoKeyframe {
        /// Bytes read.
        bytes: u64,
    },
}

/// Cutter settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsCutterConfig {
    /// Minimum media time per segment; the cut is at the first keyframe after it.
    pub min_duration: Duration,
}

impl Default for TsCutterConfig {
    fn default() -> Self {
        TsCutterConfig { min_duration: Duration::from_secs(1) }
    }
}

/// What the cutter has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutterStats {
    /// Bytes pushed in.
    pub bytes_in: u64,
    /// Whole packets read.
    pub packets: u64,
    /// Bytes skipped looking for sync (and a truncated last packet).
    pub bytes_skipped: u64,
    /// Packets before the first keyframe, not sent (undecodable), in bytes.
    pub bytes_before_first_keyframe: u64,
    /// Video access units (PES) passed through.
    pub access_units: u64,
    /// Keyframes seen.
    pub keyframes: u64,
    /// Segments started.
    pub segments: u64,
    /// Bytes emitted, the PAT/PMT copies included.
    pub bytes_out: u64,
}

/// The segment being emitted.
#[derive(Debug)]
struct OpenSegment {
    index: u64,
    start_pts: Option<i64>,
    last_pts: Option<i64>,
    bytes: u64,
    frames: u64,
}

/// The cutter. Feed it with [`TsCutter::push`], end with [`TsCutter::finish`].
#[derive(Debug, Default)]
pub struct TsCutter {
    config: TsCutterConfig,
    /// Learns the PMT and video PIDs; fed only the packets it needs.
    demux: TsDemuxer,
    /// Input short of a whole packet.
    carry: Vec<u8>,
    synced: bool,
    pat: Option<Vec<u8>>,
    pmt: Option<Vec<u8>>,
    /// Packets from the latest video PES start on, held until the next one shows what it was.
    group: Vec<u8>,
    group_pts: Option<i64>,
    group_random_access: bool,
    open: Option<OpenSegment>,
    /// The open segment's PAT/PMT copies still to go out, in front of its first packets, so
    /// the keyframe's first packet shares a chunk with them (a consumer marking a chunk as a
    /// discontinuity marks the video too).
    psi_due: bool,
    clock: Option<i64>,
    stats: CutterStats,
}

impl TsCutter {
    /// A cutter with `config`.
    pub fn new(config: TsCutterConfig) -> TsCutter {
        TsCutter { config, ..Default::default() }
    }

    /// What it has seen so far.
    pub fn stats(&self) -> CutterStats {
        self.stats
    }

    /// The video stream the cutter follows, once a PMT named one.
    pub fn video_stream(&self) -> Option<crate::ts::demux::VideoStream> {
        self.demux.video_stream()
    }

    /// The PTS (90 kHz) of the latest video access unit emitted: how far into the media the
    /// output is, for pacing.
    pub fn clock(&self) -> Option<i64> {
        self.clock
    }

    /// Feeds the next bytes (any size); returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SegmentEvent>, CutError> {
        self.stats.bytes_in += bytes.len() as u64;
        self.carry.extend_from_slice(bytes);
        let mut out = Vec::new();
        self.read_packets(false, &mut out);
        self.check_progress()?;
        Ok(out)
    }

    /// The input ended: emits the held access unit and closes the last segment.
    pub fn finish(&mut self) -> Result<Vec<SegmentEvent>, CutError> {
        let mut out = Vec::new();
        self.read_packets(true, &mut out);
        self.stats.bytes_skipped += self.carry.len() as u64;
        self.carry.clear();
        self.release_group(&mut out);
        self.end_segment(&mut out);
        let bytes = self.stats.bytes_in;
        if bytes > 0 && !self.synced {
            return Err(CutError::NotTransportStream { bytes });
        }
        if bytes > 0 && self.demux.video_stream().is_none() {
            return Err(CutError::NoVideo { bytes });
        }
        if bytes > 0 && self.stats.keyframes == 0 {
            return Err(CutError::NoKeyframe { bytes });
        }
        Ok(out)
    }

    /// Reads the whole packets held. A sync byte counts only when another follows a packet
    /// later (or the input ends there), so a stray `0x47` in garbage is not taken for one.
    fn read_packets(&mut self, at_end: bool, out: &mut Vec<SegmentEvent>) {
        let mut at = 0;
        loop {
            let left = self.carry.len() - at;
            if left < TS_PACKET_LEN || (!at_end && left == TS_PACKET_LEN) {
                break;
            }
            let confirmed = self.carry[at] == SYNC_BYTE
                && (left == TS_PACKET_LEN || self.carry[at + TS_PACKET_LEN] == SYNC_BYTE);
            if !confirmed {
                self.stats.bytes_skipped += 1;
                at += 1;
                continue;
            }
            self.synced = true;
            let mut packet = [0u8; TS_PACKET_LEN];
            packet.copy_from_slice(&self.carry[at..at + TS_PACKET_LEN]);
            at += TS_PACKET_LEN;
            self.packet(&packet, out);
        }
        self.carry.drain(..at);
    }

    fn check_progress(&self) -> Result<(), CutError> {
        let bytes = self.stats.bytes_in;
        if !self.synced && bytes >= SYNC_SEARCH_LIMIT {
            return Err(CutError::NotTransportStream { bytes });
        }
        if self.demux.video_stream().is_none() && bytes >= VIDEO_SEARCH_LIMIT {
            return Err(CutError::NoVideo { bytes });
        }
        Ok(())
    }

    fn packet(&mut self, p: &[u8; TS_PACKET_LEN], out: &mut Vec<SegmentEvent>) {
        self.stats.packets += 1;
        let header = PacketHeader::read(p);
        let video = self.demux.video_stream().map(|v| v.pid);
        let pmt = self.demux.pmt_pid();
        if header.pid == PAT_PID || Some(header.pid) == pmt || video.is_none() {
            // Only PSI matters to it; its access units are not needed.
            drop(self.demux.push(p));
        }
        if header.pusi && header.pid == PAT_PID {
            self.pat = Some(p.to_vec());
        } else if header.pusi && Some(header.pid) == self.demux.pmt_pid() {
            self.pmt = Some(p.to_vec());
        }
        let video = self.demux.video_stream().map(|v| v.pid);
        if header.pusi && Some(header.pid) == video {
            self.release_group(out);
            self.group_random_access = header.random_access;
            self.group_pts = header.payload(p).and_then(pes_pts);
        }
        if !self.group.is_empty() || (header.pusi && Some(header.pid) == video) {
            self.group.extend_from_slice(p);
        } else {
            self.emit(Bytes::copy_from_slice(p), out);
        }
    }

    /// The held access unit is complete: cut before it if it is a keyframe due to start a
    /// segment, then emit it.
    fn release_group(&mut self, out: &mut Vec<SegmentEvent>) {
        if self.group.is_empty() {
            return;
        }
        let group = std::mem::take(&mut self.group);
        let keyframe = self.group_random_access || self.has_idr(&group);
        self.stats.access_units += 1;
        if keyframe {
            self.stats.keyframes += 1;
            if self.cut_due() {
                self.end_segment(out);
                self.start_segment(out);
            }
        }
        if let Some(open) = &mut self.open {
            open.frames += 1;
            open.start_pts = open.start_pts.or(self.group_pts);
            open.last_pts = self.group_pts.or(open.last_pts);
            self.clock = self.group_pts.or(self.clock);
        }
        self.emit(Bytes::from(group), out);
    }

    fn cut_due(&self) -> bool {
        let Some(open) = &self.open else { return true };
        let min = duration_to_ticks_90k(self.config.min_duration);
        match (open.start_pts, self.group_pts) {
            (Some(start), Some(now)) => wrapped_diff(now, start) >= min,
            _ => true,
        }
    }

    fn start_segment(&mut self, out: &mut Vec<SegmentEvent>) {
        let index = self.stats.segments;
        self.stats.segments += 1;
        out.push(SegmentEvent::SegmentStart { index });
        self.open = Some(OpenSegment { index, start_pts: None, last_pts: None, bytes: 0, frames: 0 });
        self.psi_due = true;
    }

    fn end_segment(&mut self, out: &mut Vec<SegmentEvent>) {
        let Some(open) = self.open.take() else { return };
        let duration = match (open.start_pts, open.last_pts) {
            (Some(a), Some(b)) => ticks_90k_to_duration(wrapped_diff(b, a)),
            _ => Duration::ZERO,
        };
        out.push(SegmentEvent::SegmentEnd(SegmentSummary {
            index: open.index,
            bytes: open.bytes,
            frames: open.frames,
            // Audio passes through uncounted: only the video is cut on.
            audio_packets: 0,
            start_pts: open.start_pts.unwrap_or(0),
            duration,
        }));
    }

    /// Sends bytes into the open segment; before the first keyframe there is none, and they
    /// are counted instead.
    fn emit(&mut self, bytes: Bytes, out: &mut Vec<SegmentEvent>) {
        let bytes = match std::mem::take(&mut self.psi_due) {
            true => {
                let psi = self.pat.iter().chain(self.pmt.iter()).flatten();
                Bytes::from(psi.chain(bytes.iter()).copied().collect::<Vec<u8>>())
            }
            false => bytes,
        };
        match &mut self.open {
            Some(open) => {
                open.bytes += bytes.len() as u64;
                self.stats.bytes_out += bytes.len() as u64;
                out.push(SegmentEvent::Chunk(bytes));
            }
            None => self.stats.bytes_before_first_keyframe += bytes.len() as u64,
        }
    }

    /// Whether the video payload of `group` (its video PID's packets, PES header skipped)
    /// holds an H.264 IDR slice.
    fn has_idr(&self, group: &[u8]) -> bool {
        let Some(video) = self.demux.video_stream() else { return false };
        let mut es = Vec::with_capacity(group.len());
        for p in group.chunks_exact(TS_PACKET_LEN) {
            let header = PacketHeader::read(p);
            if header.pid != video.pid {
                continue;
            }
            let Some(payload) = header.payload(p) else { continue };
            if header.pusi {
                match pes_header_len(payload) {
                    Some(len) if len <= payload.len() => es.extend_from_slice(&payload[len..]),
                    _ => continue,
                }
            } else {
                es.extend_from_slice(payload);
            }
        }
        has_idr(&es)
    }
}

/// The fields of a TS packet header the cutter uses.
struct PacketHeader {
    pid: u16,
    pusi: bool,
    random_access: bool,
    /// Where the payload starts, if the packet has one that fits.
    payload_at: Option<usize>,
}

impl PacketHeader {
    fn read(p: &[u8]) -> PacketHeader {
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let pusi = p[1] & 0x40 != 0;
        let control = (p[3] >> 4) & 0x03;
        let has_adaptation = control & 0x02 != 0;
        let adaptation_len = if has_adaptation { usize::from(p[4]) } else { 0 };
        let random_access = has_adaptation && adaptation_len > 0 && p[5] & 0x40 != 0;
        let at = if has_adaptation { 5 + adaptation_len } else { 4 };
        let payload_at = (control & 0x01 != 0 && at < TS_PACKET_LEN).then_some(at);
        PacketHeader { pid, pusi, random_access, payload_at }
    }

    fn payload<'p>(&self, p: &'p [u8]) -> Option<&'p [u8]> {
        self.payload_at.map(|at| &p[at..])
    }
}

/// Length of the PES header at the start of `payload` (through its optional fields).
fn pes_header_len(payload: &[u8]) -> Option<usize> {
    (payload.len() >= 9 && payload[..3] == [0, 0, 1]).then(|| 9 + usize::from(payload[8]))
}

/// The PTS of the PES starting in `payload`, if it has one.
fn pes_pts(payload: &[u8]) -> Option<i64> {
    let len = pes_header_len(payload)?;
    let has_pts = payload[7] & 0x80 != 0;
    (has_pts && len >= 14 && payload.len() >= 14).then(|| crate::ts::demux::read_timestamp(&payload[9..14]))
}

/// `a - b` on the 33-bit 90 kHz clock, across one wrap.
fn wrapped_diff(a: i64, b: i64) -> i64 {
    const WRAP: i64 = 1 << 33;
    let d = a - b;
    if d < -WRAP / 2 {
        d + WRAP
    } else {
        d
    }
}
