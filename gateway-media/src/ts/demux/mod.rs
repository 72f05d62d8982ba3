//! An MPEG transport stream demuxer for the output side: bytes of a TS stream in (in chunks of
//! any size, as HTTP delivers them), video access units with their timestamps out.
//!
//! It follows the program the way a player does (ISO/IEC 13818-1): the PAT names the first
//! program's PMT PID, the PMT lists the elementary streams, and the first video stream is
//! followed (H.264 is recognised as such; H.265, MPEG-2 video and AV1 with an `AV01`
//! registration descriptor are passed through as opaque payloads carrying their stream type).
//! Each PES of that stream is reassembled into one [`AccessUnit`] with its PTS/DTS (90 kHz)
//! and a keyframe flag, taken from the `random_access_indicator` or, for H.264, an IDR NAL unit.
//! With [`TsDemuxer::with_audio`] it follows the first audio stream too and returns its units
//! through [`TsDemuxer::push_media`]: Opus PES are split into their packets by the control
//! headers ([`crate::ts::opus`]), each stamped from the PES pts plus the packets before it.
//!
//! Input is untrusted. Nothing here panics on any byte sequence; every malformed thing is
//! skipped and counted in [`DemuxStats`] with a typed [`DemuxIssue`]: lost sync bytes (the
//! demuxer resyncs on the next `0x47` that is followed by another one a packet later),
//! transport errors, bad adaptation fields, continuity gaps (the PES in progress is dropped),
//! PSI sections with a bad CRC, PES headers that do not parse, truncated PES. Memory is
//! bounded: at most [`MAX_ACCESS_UNIT_BYTES`] of one PES, one PSI section (1 KiB) and under
//! three packets of unconsumed input are held, whatever the input.

use bytes::Bytes;
use thiserror::Error;

use crate::encoder::Codec;
use crate::h264::nal::has_idr;
use crate::ts::mux::{crc32_mpeg2, PAT_PID, SYNC_BYTE, TS_PACKET_LEN};
use crate::ts::opus::{self, Trim, OPUS_REGISTRATION};
pub(crate) use pes::read_timestamp;
use pes::{has_registration, parse_pes};

/// The largest PES (one access unit, header included) the demuxer reassembles; larger ones
/// are dropped and counted as [`DemuxIssue::OversizedUnit`].
pub const MAX_ACCESS_UNIT_BYTES: usize = 8 * 1024 * 1024;
/// PMT `stream_type` of H.264 video.
pub const STREAM_TYPE_H264: u8 = 0x1B;
/// PMT `stream_type` of PES private data, which carries AV1 (with an `AV01` registration).
pub const STREAM_TYPE_PRIVATE_PES: u8 = 0x06;
/// The null packet PID.
pub const NULL_PID: u16 = 0x1FFF;

/// Longest PSI section (section_length is at most 1021 for PAT and PMT, plus 3 header bytes).
const MAX_SECTION_LEN: usize = 1024;
/// Input bytes held while looking for the next packet boundary.
const INPUT_WINDOW: usize = 2 * TS_PACKET_LEN + 1;
/// Timestamps are 33-bit counters of the 90 kHz clock.
pub(crate) const TS_MASK: i64 = (1 << 33) - 1;
/// Stream types that carry audio: MPEG-1/2 audio, AAC (ADTS, LATM), AC-3.
const AUDIO_STREAM_TYPES: [u8; 5] = [0x03, 0x04, 0x0F, 0x11, 0x81];
/// Stream types that carry video (Table 2-34 and its amendments).
const VIDEO_STREAM_TYPES: [u8; 8] = [0x01, 0x02, 0x10, STREAM_TYPE_H264, 0x20, 0x24, 0x42, 0xEA];

/// One problem found in the input; each is counted in [`DemuxStats`] and the input goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DemuxIssue {
    /// A packet did not start with `0x47`; bytes were skipped to the next packet boundary.
    #[error("lost TS sync; skipped {skipped} bytes")]
    LostSync {
        /// Bytes skipped before sync was found again (so far).
        skipped: u64,
    },
    /// The packet is unusable: transport_error_indicator set, reserved adaptation field
    /// control, an adaptation field longer than the packet, or scrambled payload.
    #[error("invalid TS packet on PID {pid:#06x}: {reason}")]
    InvalidPacket {
        /// Its PID.
        pid: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A packet of the followed stream is missing (continuity counter gap); the access unit
    /// in progress was dropped.
    #[error("continuity gap on PID {pid:#06x}: expected counter {expected}, got {got}")]
    ContinuityGap {
        /// The PID.
        pid: u16,
        /// Counter expected.
        expected: u8,
        /// Counter received.
        got: u8,
    },
    /// A PAT or PMT section that does not parse or whose CRC is wrong.
    #[error("invalid {table} section: {reason}")]
    InvalidSection {
        /// `PAT` or `PMT`.
        table: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The PMT lists no video stream.
    #[error("the program has no video stream")]
    NoVideoStream,
    /// A PES whose header does not parse; dropped.
    #[error("invalid PES: {reason}")]
    InvalidPes {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A PES larger than [`MAX_ACCESS_UNIT_BYTES`]; dropped.
    #[error("access unit larger than {MAX_ACCESS_UNIT_BYTES} bytes dropped")]
    OversizedUnit,
    /// A PES that ended before the length its header declared, or whose stream broke off;
    /// dropped.
    #[error("truncated access unit dropped after {received} bytes")]
    TruncatedUnit {
        /// Bytes received (header included).
        received: usize,
        /// Bytes the header declared (header included), when it declared a length.
        declared: Option<usize>,
    },
    /// The stream ended in the middle of a packet.
    #[error("stream ended inside a TS packet ({0} bytes left over)")]
    TrailingBytes(usize),
}

/// Counters of one demuxer: what came out and every kind of input it skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DemuxStats {
    /// Input bytes received.
    pub bytes_in: u64,
    /// Whole TS packets read.
    pub packets: u64,
    /// Video access units returned.
    pub access_units: u64,
    /// Audio units returned (Opus packets, or PES of other audio codecs).
    pub audio_units: u64,
    /// Times sync was lost ([`DemuxIssue::LostSync`]).
    pub sync_losses: u64,
    /// Bytes skipped while out of sync, or left over at the end.
    pub bytes_skipped: u64,
    /// [`DemuxIssue::InvalidPacket`].
    pub invalid_packets: u64,
    /// [`DemuxIssue::ContinuityGap`].
    pub continuity_gaps: u64,
    /// [`DemuxIssue::InvalidSection`] and [`DemuxIssue::NoVideoStream`].
    pub invalid_sections: u64,
    /// [`DemuxIssue::InvalidPes`].
    pub invalid_pes: u64,
    /// [`DemuxIssue::OversizedUnit`].
    pub oversized_units: u64,
    /// [`DemuxIssue::TruncatedUnit`].
    pub truncated_units: u64,
}

impl DemuxStats {
    /// Total problems counted.
    pub fn issues(&self) -> u64 {
        self.sync_losses
            + self.invalid_packets
            + self.continuity_gaps
            + self.invalid_sections
            + self.invalid_pes
            + self.oversized_units
            + self.truncated_units
    }
}

/// The video elementary stream being followed, as the PMT declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoStream {
    /// Its PID.
    pub pid: u16,
    /// Its PMT `stream_type`.
    pub stream_type: u8,
    /// The codec, when it is one the gateway knows (H.264, or AV1 by its registration).
    pub codec: Option<Codec>,
}

/// The audio elementary stream being followed, as the PMT declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioStream {
    /// Its PID.
    pub pid: u16,
    /// Its PMT `stream_type`.
    pub stream_type: u8,
    /// The codec, when it is one the gateway knows (Opus, by its registration).
    pub codec: Option<Codec>,
    /// Channels its descriptors declare (Opus).
    pub channels: Option<u8>,
}

/// One audio unit: an Opus packet, or for other codecs one whole PES payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioUnit {
    /// The stream it belongs to.
    pub stream: AudioStream,
    /// Presentation time, 90 kHz, 33 bits.
    pub pts: Option<i64>,
    /// Samples to drop at its start and end (Opus control header).
    pub trim: Trim,
    /// The packet.
    pub data: Bytes,
}

/// What [`TsDemuxer::push_media`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaUnit {
    /// A video access unit.
    Video(AccessUnit),
    /// An audio unit.
    Audio(AudioUnit),
}

/// One reassembled access unit (one PES) of the video stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The stream it belongs to.
    pub stream: VideoStream,
    /// Presentation time, 90 kHz, 33 bits as written (no unwrapping).
    pub pts: Option<i64>,
    /// Decode time, 90 kHz, when written apart from the PTS.
    pub dts: Option<i64>,
    /// A random access point: `random_access_indicator` set, or an H.264 IDR slice inside.
    pub keyframe: bool,
    /// The elementary stream bytes (for H.264, Annex B NAL units with start codes).
    pub data: Bytes,
}

/// The video units of `units`.
fn video_only(units: Vec<MediaUnit>) -> Vec<AccessUnit> {
    units
        .into_iter()
        .filter_map(|u| match u {
            MediaUnit::Video(v) => Some(v),
            MediaUnit::Audio(_) => None,
        })
        .collect()
}

impl AccessUnit {
    /// The decode time: the DTS, else the PTS.
    pub fn decode_time(&self) -> Option<i64> {
        self.dts.or(self.pts)
    }
}

/// A PES being reassembled.
#[derive(Debug)]
struct PesAssembly {
    buf: Vec<u8>,
    random_access: bool,
    /// `6 + PES_packet_length` once known and non-zero.
    declared: Option<usize>,
}

/// A followed PID: its continuity counter and the PES in progress.
#[derive(Debug, Default)]
struct Track {
    cc: Option<u8>,
    pes: Option<PesAssembly>,
}

/// Which followed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video,
    Audio,
}

/// A PSI section being reassembled.
#[derive(Debug, Default)]
struct SectionAssembly {
    buf: Vec<u8>,
    active: bool,
}

/// The demuxer. Feed it with [`TsDemuxer::push`], end with [`TsDemuxer::finish`].
#[derive(Debug, Default)]
pub struct TsDemuxer {
    /// Unconsumed input (less than [`INPUT_WINDOW`] bytes between calls).
    input: Vec<u8>,
    /// Whether the next byte of `input` is expected to be a sync byte.
    synced: bool,
    /// Whether any packet has been read (the first sync needs no confirmation).
    started: bool,
    /// Bytes skipped in the current sync loss.
    skipping: u64,
    pmt_pid: Option<u16>,
    pat: SectionAssembly,
    pmt: SectionAssembly,
    video: Option<VideoStream>,
    video_track: Track,
    /// Whether to follow an audio stream.
    follow_audio: bool,
    audio: Option<AudioStream>,
    audio_track: Track,
    stats: DemuxStats,
    last_issue: Option<DemuxIssue>,
}

impl TsDemuxer {
    /// A demuxer waiting for a PAT.
    pub fn new() -> TsDemuxer {
        TsDemuxer::default()
    }

    /// A demuxer that follows the first audio stream too (see [`Self::push_media`]); a
    /// program with audio and no video is then no issue.
    pub fn with_audio() -> TsDemuxer {
        TsDemuxer { follow_audio: true, ..TsDemuxer::default() }
    }

    /// The audio stream followed, once a PMT declared one (with [`Self::with_audio`]).
    pub fn audio_stream(&self) -> Option<AudioStream> {
        self.audio
    }

    /// Counters so far.
    pub fn stats(&self) -> DemuxStats {
        self.stats
    }

    /// The most recent problem found, if any.
    pub fn last_issue(&self) -> Option<DemuxIssue> {
        self.last_issue
    }

    /// The PID of the first program's PMT, once the PAT named it.
    pub fn pmt_pid(&self) -> Option<u16> {
        self.pmt_pid
    }

    /// The video stream followed, once a PMT declared one.
    pub fn video_stream(&self) -> Option<VideoStream> {
        self.video
    }

    /// Feeds the next bytes of the stream; returns the video access units they completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<AccessUnit> {
        video_only(self.push_media(chunk))
    }

    /// Feeds the next bytes of the stream; returns the video and audio units they completed.
    pub fn push_media(&mut self, mut chunk: &[u8]) -> Vec<MediaUnit> {
        self.stats.bytes_in += chunk.len() as u64;
        let mut out = Vec::new();
        while !chunk.is_empty() {
            let room = INPUT_WINDOW.saturating_sub(self.input.len()).max(1);
            let take = room.min(chunk.len());
            self.input.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            self.consume_input(false, &mut out);
        }
        out
    }

    /// Ends the stream: the access unit in progress is returned if its length was not
    /// declared (video PES usually leave it open), dropped as truncated if it was; leftover
    /// bytes are counted. The demuxer can then start over on a new stream.
    pub fn finish(&mut self) -> Vec<AccessUnit> {
        video_only(self.finish_media())
    }

    /// [`Self::finish`] with the audio.
    pub fn finish_media(&mut self) -> Vec<MediaUnit> {
        let mut out = Vec::new();
        self.consume_input(true, &mut out);
        if !self.input.is_empty() {
            let n = self.input.len();
            self.stats.bytes_skipped += n as u64;
            self.note(DemuxIssue::TrailingBytes(n));
            self.input.clear();
        }
        self.close_pes(Kind::Video, &mut out);
        self.close_pes(Kind::Audio, &mut out);
        self.reset();
        out
    }

    /// Starts over, keeping the counters and whether audio is followed.
    fn reset(&mut self) {
        let (stats, last_issue, follow_audio) = (self.stats, self.last_issue, self.follow_audio);
        *self = TsDemuxer { stats, last_issue, follow_audio, ..TsDemuxer::default() };
    }

    /// The stream broke off (a segment's connection failed): the access unit in progress is
    /// dropped, counted as truncated, and the demuxer starts over, keeping its counters.
    pub fn abandon(&mut self) {
        for kind in [Kind::Video, Kind::Audio] {
            if let Some(pes) = self.track(kind).pes.take() {
                self.note(DemuxIssue::TruncatedUnit { received: pes.buf.len(), declared: pes.declared });
            }
        }
        self.reset();
    }

    fn track(&mut self, kind: Kind) -> &mut Track {
        match kind {
            Kind::Video => &mut self.video_track,
            Kind::Audio => &mut self.audio_track,
        }
    }

    fn note(&mut self, issue: DemuxIssue) {
        let s = &mut self.stats;
        match issue {
            DemuxIssue::LostSync { .. } | DemuxIssue::TrailingBytes(_) => {}
            DemuxIssue::InvalidPacket { .. } => s.invalid_packets += 1,
            DemuxIssue::ContinuityGap { .. } => s.continuity_gaps += 1,
            DemuxIssue::InvalidSection { .. } | DemuxIssue::NoVideoStream => s.invalid_sections += 1,
            DemuxIssue::InvalidPes { .. } => s.invalid_pes += 1,
            DemuxIssue::OversizedUnit => s.oversized_units += 1,
            DemuxIssue::TruncatedUnit { .. } => s.truncated_units += 1,
        }
        self.last_issue = Some(issue);
    }

    /// Reads every whole packet in `input`, resyncing where needed. A packet is read once the
    /// byte after it is a sync byte too (or the stream ends right after it), so a packet with
    /// bytes missing inside is dropped instead of being read with its neighbour's bytes.
    fn consume_input(&mut self, at_end: bool, out: &mut Vec<MediaUnit>) {
        let mut pos = 0;
        let len = self.input.len();
        while pos < len {
            if self.input[pos] != SYNC_BYTE {
                self.lose_sync();
                let next = self.input[pos..].iter().position(|&b| b == SYNC_BYTE).map_or(len, |i| pos + i);
                self.skip((next - pos) as u64);
                pos = next;
                continue;
            }
            let left = len - pos;
            if left < TS_PACKET_LEN || (left == TS_PACKET_LEN && !at_end) {
                break;
            }
            if left > TS_PACKET_LEN && self.input[pos + TS_PACKET_LEN] != SYNC_BYTE {
                self.lose_sync();
                self.skip(1);
                pos += 1;
                continue;
            }
            self.synced = true;
            self.started = true;
            let mut packet = [0u8; TS_PACKET_LEN];
            packet.copy_from_slice(&self.input[pos..pos + TS_PACKET_LEN]);
            self.read_packet(&packet, out);
            pos += TS_PACKET_LEN;
        }
        self.input.drain(..pos);
    }

    /// Counts a loss of sync once per loss (and once for a stream that does not start in sync).
    fn lose_sync(&mut self) {
        if self.synced || !self.started {
            self.stats.sync_losses += 1;
            self.skipping = 0;
        }
        self.synced = false;
        self.started = true;
    }

    fn skip(&mut self, n: u64) {
        self.stats.bytes_skipped += n;
        self.skipping += n;
        self.note(DemuxIssue::LostSync { skipped: self.skipping });
    }

    /// One 188-byte packet.
    fn read_packet(&mut self, p: &[u8; TS_PACKET_LEN], out: &mut Vec<MediaUnit>) {
        self.stats.packets += 1;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let video_pid = self.video.map(|v| v.pid);
        let audio_pid = self.audio.map(|a| a.pid);
        let kind = if Some(pid) == video_pid {
            Some(Kind::Video)
        } else if Some(pid) == audio_pid {
            Some(Kind::Audio)
        } else {
            None
        };
        let relevant = pid == PAT_PID || Some(pid) == self.pmt_pid || kind.is_some();
        if pid == NULL_PID || !relevant {
            return;
        }
        let invalid = |reason| DemuxIssue::InvalidPacket { pid, reason };
        if p[1] & 0x80 != 0 {
            self.note(invalid("transport_error_indicator set"));
            if let Some(kind) = kind {
                self.track(kind).pes = None;
            }
            return;
        }
        let pusi = p[1] & 0x40 != 0;
        let scrambled = p[3] >> 6 != 0;
        let afc = (p[3] >> 4) & 0x03;
        let cc = p[3] & 0x0F;
        let mut start = 4;
        let (mut random_access, mut discontinuity) = (false, false);
        match afc {
            0 => {
                self.note(invalid("reserved adaptation_field_control"));
                return;
            }
            2 | 3 => {
                let af_len = usize::from(p[4]);
                let max = if afc == 2 { 183 } else { 182 };
                if af_len > max {
                    self.note(invalid("adaptation field longer than the packet"));
                    return;
                }
                if af_len > 0 {
                    discontinuity = p[5] & 0x80 != 0;
                    random_access = p[5] & 0x40 != 0;
                }
                start = 5 + af_len;
            }
            _ => {}
        }
        let has_payload = afc & 1 != 0;
        if let Some(kind) = kind {
            // Continuity: counts packets with payload; one duplicate is allowed (2.4.3.3).
            if has_payload {
                if let Some(last) = self.track(kind).cc {
                    let expected = (last + 1) & 0x0F;
                    if cc == last && !discontinuity {
                        return;
                    }
                    if cc != expected && !discontinuity {
                        self.note(DemuxIssue::ContinuityGap { pid, expected, got: cc });
                        self.track(kind).pes = None;
                    }
                }
                self.track(kind).cc = Some(cc);
            }
            if scrambled {
                self.note(invalid("scrambled payload"));
                self.track(kind).pes = None;
                return;
            }
            if has_payload {
                self.track_payload(kind, pusi, random_access, &p[start..], out);
            }
            return;
        }
        if scrambled || !has_payload {
            return;
        }
        self.psi_payload(pid, pusi, &p[start..]);
    }

    /// Payload of a PAT or PMT packet.
    fn psi_payload(&mut self, pid: u16, pusi: bool, payload: &[u8]) {
        let is_pat = pid == PAT_PID;
        let mut rest = payload;
        if pusi {
            let Some((&pointer, after)) = rest.split_first() else { return };
            let pointer = usize::from(pointer);
            if pointer > after.len() {
                let table = if is_pat { "PAT" } else { "PMT" };
                self.note(DemuxIssue::InvalidSection { table, reason: "pointer_field beyond the packet" });
                return;
            }
            // The bytes before the pointer end the previous section.
            let (tail, head) = after.split_at(pointer);
            self.section_bytes(is_pat, tail);
            let asm = if is_pat { &mut self.pat } else { &mut self.pmt };
            asm.buf.clear();
            asm.active = true;
            rest = head;
        }
        self.section_bytes(is_pat, rest);
    }

    /// Appends bytes to the section in progress and parses it once complete.
    fn section_bytes(&mut self, is_pat: bool, bytes: &[u8]) {
        let asm = if is_pat { &mut self.pat } else { &mut self.pmt };
        if !asm.active || bytes.is_empty() {
            return;
        }
        let room = MAX_SECTION_LEN - asm.buf.len();
        asm.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if asm.buf.len() < 3 {
            return;
        }
        if asm.buf[0] == 0xFF {
            // Stuffing after the last section.
            asm.active = false;
            return;
        }
        let total = 3 + ((usize::from(asm.buf[1] & 0x0F) << 8) | usize::from(asm.buf[2]));
        if total > MAX_SECTION_LEN {
            asm.active = false;
            let table = if is_pat { "PAT" } else { "PMT" };
            self.note(DemuxIssue::InvalidSection { table, reason: "section_length above 1021" });
            return;
        }
        if asm.buf.len() < total {
            return;
        }
        asm.active = false;
        let section = std::mem::take(&mut asm.buf);
        let result = if is_pat { self.read_pat(&section[..total]) } else { self.read_pmt(&section[..total]) };
        let asm = if is_pat { &mut self.pat } else { &mut self.pmt };
        asm.buf = section;
        asm.buf.clear();
        if let Err(issue) = result {
            self.note(issue);
        }
    }

    /// Checks the common section header and CRC; returns the bytes between header and CRC.
    fn section_body<'s>(
        section: &'s [u8],
        table: &'static str,
        table_id: u8,
    ) -> Result<Option<&'s [u8]>, DemuxIssue> {
        let bad = |reason| DemuxIssue::InvalidSection { table, reason };
        if section[0] != table_id {
            return Err(bad("unexpected table_id"));
        }
        if section.len() < 12 {
            return Err(bad("shorter than its fixed fields"));
        }
        if section[1] & 0x80 == 0 {
            return Err(bad("section_syntax_indicator is 0"));
        }
        if crc32_mpeg2(section) != 0 {
            return Err(bad("CRC mismatch"));
        }
        // current_next_indicator 0: a table for later; ignore it.
        if section[5] & 0x01 == 0 {
            return Ok(None);
        }
        Ok(Some(&section[8..section.len() - 4]))
    }

    fn read_pat(&mut self, section: &[u8]) -> Result<(), DemuxIssue> {
        let Some(body) = Self::section_body(section, "PAT", 0x00)? else { return Ok(()) };
        // The first program that is not the network PID entry.
        let pmt = body
            .chunks_exact(4)
            .filter(|e| u16::from_be_bytes([e[0], e[1]]) != 0)
            .map(|e| u16::from_be_bytes([e[2], e[3]]) & 0x1FFF)
            .next();
        match pmt {
            Some(pid) if pid != PAT_PID && pid != NULL_PID => {
                if self.pmt_pid != Some(pid) {
                    self.pmt_pid = Some(pid);
                    self.pmt = SectionAssembly::default();
                }
                Ok(())
            }
            _ => Err(DemuxIssue::InvalidSection { table: "PAT", reason: "no program with a usable PMT PID" }),
        }
    }

    fn read_pmt(&mut self, section: &[u8]) -> Result<(), DemuxIssue> {
        let Some(body) = Self::section_body(section, "PMT", 0x02)? else { return Ok(()) };
        let bad = |reason| DemuxIssue::InvalidSection { table: "PMT", reason };
        if body.len() < 4 {
            return Err(bad("shorter than its fixed fields"));
        }
        // PCR_PID (2), program_info_length (2), descriptors.
        let info_len = usize::from(u16::from_be_bytes([body[2], body[3]]) & 0x0FFF);
        let mut es = body.get(4 + info_len..).ok_or(bad("program_info_length beyond the section"))?;
        let mut found = None;
        let mut audio = None;
        while es.len() >= 5 {
            let stream_type = es[0];
            let pid = u16::from_be_bytes([es[1], es[2]]) & 0x1FFF;
            let es_info_len = usize::from(u16::from_be_bytes([es[3], es[4]]) & 0x0FFF);
            let descriptors = es.get(5..5 + es_info_len).ok_or(bad("ES_info_length beyond the section"))?;
            let codec = match stream_type {
                STREAM_TYPE_H264 => Some(Codec::H264),
                STREAM_TYPE_PRIVATE_PES if has_registration(descriptors, b"AV01") => Some(Codec::Av1),
                _ => None,
            };
            let video = VIDEO_STREAM_TYPES.contains(&stream_type) || codec.is_some();
            let usable = pid != PAT_PID && pid != NULL_PID && Some(pid) != self.pmt_pid;
            if video && found.is_none() && usable {
                found = Some(VideoStream { pid, stream_type, codec });
            }
            let opus =
                stream_type == STREAM_TYPE_PRIVATE_PES && has_registration(descriptors, OPUS_REGISTRATION);
            if (opus || AUDIO_STREAM_TYPES.contains(&stream_type)) && audio.is_none() && usable && !video {
                let (codec, channels) = if opus {
                    (Some(Codec::Opus), opus::channels_from_es_info(descriptors))
                } else {
                    (None, None)
                };
                audio = Some(AudioStream { pid, stream_type, codec, channels });
            }
            es = &es[5 + es_info_len..];
        }
        let audio = audio.filter(|_| self.follow_audio);
        if self.audio != audio {
            self.audio = audio;
            self.audio_track = Track::default();
        }
        let Some(stream) = found else {
            return if self.audio.is_some() { Ok(()) } else { Err(DemuxIssue::NoVideoStream) };
        };
        if self.video != Some(stream) {
            self.video = Some(stream);
            self.video_track = Track::default();
        }
        Ok(())
    }

    /// Payload of a packet of a followed stream.
    fn track_payload(
        &mut self,
        kind: Kind,
        pusi: bool,
        random_access: bool,
        payload: &[u8],
        out: &mut Vec<MediaUnit>,
    ) {
        if pusi {
            self.close_pes(kind, out);
            self.track(kind).pes = Some(PesAssembly { buf: Vec::new(), random_access, declared: None });
        }
        let track = self.track(kind);
        let Some(pes) = track.pes.as_mut() else { return };
        let want = pes.declared.map_or(payload.len(), |d| d.saturating_sub(pes.buf.len()).min(payload.len()));
        if pes.buf.len() + want > MAX_ACCESS_UNIT_BYTES {
            track.pes = None;
            self.note(DemuxIssue::OversizedUnit);
            return;
        }
        pes.buf.extend_from_slice(&payload[..want]);
        if pes.declared.is_none() && pes.buf.len() >= 6 {
            if pes.buf[..3] != [0, 0, 1] {
                track.pes = None;
                self.note(DemuxIssue::InvalidPes { reason: "no packet_start_code_prefix" });
                return;
            }
            let len = usize::from(u16::from_be_bytes([pes.buf[4], pes.buf[5]]));
            if len != 0 {
                pes.declared = Some(6 + len);
                // Bytes past the declared end are not part of this PES.
                pes.buf.truncate(6 + len);
            }
        }
        if pes.declared.is_some_and(|d| pes.buf.len() >= d) {
            self.close_pes(kind, out);
        }
    }

    /// Ends the PES in progress (a new one starts, or the stream ends).
    fn close_pes(&mut self, kind: Kind, out: &mut Vec<MediaUnit>) {
        let Some(pes) = self.track(kind).pes.take() else { return };
        if let Some(declared) = pes.declared {
            if pes.buf.len() < declared {
                self.note(DemuxIssue::TruncatedUnit { received: pes.buf.len(), declared: Some(declared) });
                return;
            }
        }
        let (pts, dts, data) = match parse_pes(pes.buf) {
            Ok(parts) => parts,
            Err(issue) => return self.note(issue),
        };
        match (kind, self.video, self.audio) {
            (Kind::Video, Some(stream), _) => {
                let keyframe = pes.random_access || (stream.codec == Some(Codec::H264) && has_idr(&data));
                self.stats.access_units += 1;
                out.push(MediaUnit::Video(AccessUnit { stream, pts, dts, keyframe, data }));
            }
            (Kind::Audio, _, Some(stream)) if stream.codec == Some(Codec::Opus) => {
                self.opus_units(stream, pts, data, out);
            }
            (Kind::Audio, _, Some(stream)) => {
                self.stats.audio_units += 1;
                out.push(MediaUnit::Audio(AudioUnit { stream, pts, trim: Trim::default(), data }));
            }
            _ => {}
        }
    }

    /// An Opus PES: its packets, the k-th stamped after the durations of those before it.
    fn opus_units(&mut self, stream: AudioStream, pts: Option<i64>, data: Bytes, out: &mut Vec<MediaUnit>) {
        let packets = match opus::split_packets(&data) {
            Ok(p) => p,
            Err(_) => {
                return self.note(DemuxIssue::InvalidPes { reason: "Opus control headers do not parse" })
            }
        };
        let mut samples = 0i64;
        for p in packets {
            let at = pts.map(|t| (t + samples * 15 / 8) & TS_MASK);
            samples += opus::packet_samples(p.data).unwrap_or(0) as i64;
            let unit = data.slice_ref(p.data);
            self.stats.audio_units += 1;
            out.push(MediaUnit::Audio(AudioUnit { stream, pts: at, trim: p.trim, data: unit }));
        }
    }
}

mod pes;
#[cfg(test)]
mod tests;
