//! An MPEG transport stream demuxer for the output side: bytes of a TS stream in (in chunks of
//! any size, as HTTP delivers them), video access units with their timestamps out.
//!
//! It follows the program the way a player does (ISO/IEC 13818-1): the PAT names the first
//! program's PMT PID, the PMT lists the elementary streams, and the first video stream is
//! followed (H.264 is recognised as such; H.265, MPEG-2 video and AV1 with an `AV01`
//! registration descriptor are passed through as opaque payloads carrying their stream type).
//! Each PES of that stream is reassembled into one [`AccessUnit`] with its PTS/DTS (90 kHz)
//! and a keyframe flag, taken from the `random_access_indicator` or, for H.264, an IDR NAL unit.
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
const TS_MASK: i64 = (1 << 33) - 1;
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
    /// Access units returned.
    pub access_units: u64,
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
    video_cc: Option<u8>,
    pes: Option<PesAssembly>,
    stats: DemuxStats,
    last_issue: Option<DemuxIssue>,
}

impl TsDemuxer {
    /// A demuxer waiting for a PAT.
    pub fn new() -> TsDemuxer {
        TsDemuxer::default()
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

    /// Feeds the next bytes of the stream; returns the access units they completed.
    pub fn push(&mut self, mut chunk: &[u8]) -> Vec<AccessUnit> {
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
        let mut out = Vec::new();
        self.consume_input(true, &mut out);
        if !self.input.is_empty() {
            let n = self.input.len();
            self.stats.bytes_skipped += n as u64;
            self.note(DemuxIssue::TrailingBytes(n));
            self.input.clear();
        }
        self.close_pes(&mut out);
        let stats = self.stats;
        let last_issue = self.last_issue;
        *self = TsDemuxer { stats, last_issue, ..TsDemuxer::default() };
        out
    }

    /// The stream broke off (a segment's connection failed): the access unit in progress is
    /// dropped, counted as truncated, and the demuxer starts over, keeping its counters.
    pub fn abandon(&mut self) {
        if let Some(pes) = self.pes.take() {
            self.note(DemuxIssue::TruncatedUnit { received: pes.buf.len(), declared: pes.declared });
        }
        let stats = self.stats;
        let last_issue = self.last_issue;
        *self = TsDemuxer { stats, last_issue, ..TsDemuxer::default() };
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
    fn consume_input(&mut self, at_end: bool, out: &mut Vec<AccessUnit>) {
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
    fn read_packet(&mut self, p: &[u8; TS_PACKET_LEN], out: &mut Vec<AccessUnit>) {
        self.stats.packets += 1;
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        let video_pid = self.video.map(|v| v.pid);
        let relevant = pid == PAT_PID || Some(pid) == self.pmt_pid || Some(pid) == video_pid;
        if pid == NULL_PID || !relevant {
            return;
        }
        let invalid = |reason| DemuxIssue::InvalidPacket { pid, reason };
        if p[1] & 0x80 != 0 {
            self.note(invalid("transport_error_indicator set"));
            if Some(pid) == video_pid {
                self.drop_pes();
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
        if Some(pid) == video_pid {
            // Continuity: counts packets with payload; one duplicate is allowed (2.4.3.3).
            if has_payload {
                if let Some(last) = self.video_cc {
                    let expected = (last + 1) & 0x0F;
                    if cc == last && !discontinuity {
                        return;
                    }
                    if cc != expected && !discontinuity {
                        self.note(DemuxIssue::ContinuityGap { pid, expected, got: cc });
                        self.drop_pes();
                    }
                }
                self.video_cc = Some(cc);
            }
            if scrambled {
                self.note(invalid("scrambled payload"));
                self.drop_pes();
                return;
            }
            if has_payload {
                self.video_payload(pusi, random_access, &p[start..], out);
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
            if video && found.is_none() && pid != PAT_PID && pid != NULL_PID && Some(pid) != self.pmt_pid {
                found = Some(VideoStream { pid, stream_type, codec });
            }
            es = &es[5 + es_info_len..];
        }
        let Some(stream) = found else {
            return Err(DemuxIssue::NoVideoStream);
        };
        if self.video != Some(stream) {
            self.video = Some(stream);
            self.video_cc = None;
            self.pes = None;
        }
        Ok(())
    }

    /// Payload of a video packet.
    fn video_payload(&mut self, pusi: bool, random_access: bool, payload: &[u8], out: &mut Vec<AccessUnit>) {
        if pusi {
            self.close_pes(out);
            self.pes = Some(PesAssembly { buf: Vec::new(), random_access, declared: None });
        }
        let Some(pes) = self.pes.as_mut() else { return };
        let want = pes.declared.map_or(payload.len(), |d| d.saturating_sub(pes.buf.len()).min(payload.len()));
        if pes.buf.len() + want > MAX_ACCESS_UNIT_BYTES {
            self.pes = None;
            self.note(DemuxIssue::OversizedUnit);
            return;
        }
        pes.buf.extend_from_slice(&payload[..want]);
        if pes.declared.is_none() && pes.buf.len() >= 6 {
            if pes.buf[..3] != [0, 0, 1] {
                self.pes = None;
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
            self.close_pes(out);
        }
    }

    /// Ends the PES in progress (a new one starts, or the stream ends).
    fn close_pes(&mut self, out: &mut Vec<AccessUnit>) {
        let Some(pes) = self.pes.take() else { return };
        if let Some(declared) = pes.declared {
            if pes.buf.len() < declared {
                self.note(DemuxIssue::TruncatedUnit { received: pes.buf.len(), declared: Some(declared) });
                return;
            }
        }
        let Some(stream) = self.video else { return };
        match parse_pes(pes.buf) {
            Ok((pts, dts, data)) => {
                let keyframe = pes.random_access || (stream.codec == Some(Codec::H264) && has_idr(&data));
                self.stats.access_units += 1;
                out.push(AccessUnit { stream, pts, dts, keyframe, data });
            }
            Err(issue) => self.note(issue),
        }
    }

    fn drop_pes(&mut self) {
        self.pes = None;
    }
}

/// Whether `descriptors` holds a registration descriptor (tag 5) with `format`.
fn has_registration(mut descriptors: &[u8], format: &[u8; 4]) -> bool {
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
fn parse_pes(buf: Vec<u8>) -> Result<(Option<i64>, Option<i64>, Bytes), DemuxIssue> {
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

#[cfg(test)]
mod tests;
