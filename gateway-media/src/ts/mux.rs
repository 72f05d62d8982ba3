//! A small MPEG transport stream muxer for H.264 (ISO/IEC 13818-1), written here because the
//! Rust crates measured either write no PCR or carry far more than we need.
//!
//! What it writes, per the spec:
//! * 188-byte packets, sync byte 0x47, a 4-bit continuity counter per PID that increments on
//!   every packet carrying payload (2.4.3.3), adaptation-field stuffing to fill the last packet
//!   of a PES (2.4.3.5).
//! * PAT (program 1 -> PMT PID) and PMT (stream list, PCR PID) as single-packet sections with
//!   CRC-32/MPEG-2 (2.4.4, Annex B), written at the start of every segment so each segment
//!   can be decoded alone.
//! * One PES per access unit (stream_id 0xE0), `data_alignment_indicator` set, PTS always and
//!   DTS only when it differs from PTS (2.4.3.7), an access unit delimiter in front of every
//!   H.264 access unit that lacks one (required for AVC in TS, 2.14).
//! * PCR in the adaptation field of the first packet of every PES on the PCR PID (the video
//!   PID), which keeps the PCR interval at one frame (<= 100 ms from 10 fps up), and
//!   `random_access_indicator` on the first packet of every keyframe.
//!
//! Audio is not written yet, but the seam is here: [`TsConfig::streams`] is a list, the PMT
//! lists every stream with its own `es_info` descriptors, and [`TsMuxer::write_pes`] takes a
//! stream index.

use std::time::Duration;

use crate::encoder::{Codec, EncodedPacket};
use crate::muxer::{MuxError, SegmentMuxer};
use crate::time::duration_to_ticks_90k;

/// Size of a transport stream packet.
pub const TS_PACKET_LEN: usize = 188;
/// First byte of every packet.
pub const SYNC_BYTE: u8 = 0x47;
/// The PID of the program association table.
pub const PAT_PID: u16 = 0x0000;
/// Default PID of the program map table (what ffmpeg uses too).
pub const DEFAULT_PMT_PID: u16 = 0x1000;
/// Default PID of the video stream.
pub const DEFAULT_VIDEO_PID: u16 = 0x0100;
/// PES stream_id of the first video stream.
pub const STREAM_ID_VIDEO: u8 = 0xE0;

/// Timestamps are 33-bit counters of the 90 kHz clock and wrap (about every 26.5 hours).
const TS_MASK: i64 = (1 << 33) - 1;
/// Payload bytes after the 4-byte packet header.
const PAYLOAD_LEN: usize = TS_PACKET_LEN - 4;
/// An AUD NAL unit with primary_pic_type 7 (any slice type).
const H264_AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xF0];

/// Elementary stream types this muxer can declare in the PMT (Table 2-34).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamType {
    /// H.264 / AVC video, stream_type 0x1B.
    H264,
}

impl StreamType {
    /// The PMT `stream_type` byte.
    pub const fn code(self) -> u8 {
        match self {
            StreamType::H264 => 0x1B,
        }
    }

    /// The codec of packets this stream carries.
    pub const fn codec(self) -> Codec {
        match self {
            StreamType::H264 => Codec::H264,
        }
    }
}

/// One elementary stream of the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsStream {
    /// The PID its packets travel on (0x0010..=0x1FFE).
    pub pid: u16,
    /// What it carries.
    pub stream_type: StreamType,
    /// The PES stream_id (0xE0.. video, 0xC0.. audio, 0xBD private).
    pub stream_id: u8,
    /// Descriptors for the PMT ES_info loop (empty for H.264; e.g. a registration descriptor
    /// for Opus once audio is added).
    pub es_info: Vec<u8>,
}

impl TsStream {
    /// An H.264 stream on `pid`.
    pub fn h264(pid: u16) -> Self {
        Self { pid, stream_type: StreamType::H264, stream_id: STREAM_ID_VIDEO, es_info: Vec::new() }
    }
}

/// Muxer settings. The default is one H.264 stream on PID 0x100 carrying the PCR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsConfig {
    /// transport_stream_id in the PAT.
    pub transport_stream_id: u16,
    /// program_number of the single program.
    pub program_number: u16,
    /// PID of the PMT.
    pub pmt_pid: u16,
    /// Elementary streams, in PMT order.
    pub streams: Vec<TsStream>,
    /// Index into `streams` of the stream whose PID carries the PCR.
    pub pcr_stream: usize,
    /// How far the PCR runs behind the DTS of the access unit it travels with. 0 by default:
    /// timestamps are never shifted (consumers see the caller's pts), so a positive lead is
    /// clamped at 0 for the first frames. Live decoders (ffmpeg, PyAV) do not model the T-STD
    /// buffer and need none.
    pub pcr_lead: Duration,
}

impl Default for TsConfig {
    fn default() -> Self {
        Self {
            transport_stream_id: 1,
            program_number: 1,
            pmt_pid: DEFAULT_PMT_PID,
            streams: vec![TsStream::h264(DEFAULT_VIDEO_PID)],
            pcr_stream: 0,
            pcr_lead: Duration::ZERO,
        }
    }
}

impl TsConfig {
    /// Checks PIDs, stream list and that the PMT fits one packet.
    pub fn validate(&self) -> Result<(), MuxError> {
        let bad = |m: String| Err(MuxError::InvalidConfig(m));
        if self.streams.is_empty() {
            return bad("the program has no streams".into());
        }
        if self.pcr_stream >= self.streams.len() {
            return bad(format!(
                "pcr_stream {} is not one of the {} streams",
                self.pcr_stream,
                self.streams.len()
            ));
        }
        let mut pids = vec![self.pmt_pid];
        pids.extend(self.streams.iter().map(|s| s.pid));
        for (i, &pid) in pids.iter().enumerate() {
            // 0x0000-0x000F are reserved for tables, 0x1FFF is the null packet PID.
            if !(0x0010..=0x1FFE).contains(&pid) {
                return bad(format!("PID {pid:#06x} is reserved; use 0x0010..=0x1FFE"));
            }
            if pids[..i].contains(&pid) {
                return bad(format!("PID {pid:#06x} is used twice"));
            }
        }
        if self.streams.iter().any(|s| s.es_info.len() > 0x3FF) {
            return bad("ES_info longer than 1023 bytes".into());
        }
        // One-packet sections keep the writer simple: pointer field + section <= 184.
        let pmt_len = 12 + 4 + self.streams.iter().map(|s| 5 + s.es_info.len()).sum::<usize>();
        if pmt_len + 1 > PAYLOAD_LEN {
            return bad(format!("PMT of {pmt_len} bytes does not fit one packet"));
        }
        Ok(())
    }
}

/// Writes PAT/PMT and PES packets for one program; keeps continuity counters across calls, so
/// consecutive segments concatenate into one valid stream.
#[derive(Clone, Debug)]
pub struct TsMuxer {
    config: TsConfig,
    pat: Vec<u8>,
    pmt: Vec<u8>,
    pat_cc: u8,
    pmt_cc: u8,
    stream_cc: Vec<u8>,
    pcr_lead_90k: i64,
}

impl Default for TsMuxer {
    fn default() -> Self {
        Self::new(TsConfig::default()).expect("the default TS config is valid")
    }
}

impl TsMuxer {
    /// A muxer for `config`; fails if the configuration is invalid.
    pub fn new(config: TsConfig) -> Result<Self, MuxError> {
        config.validate()?;
        let pat = pat_section(&config);
        let pmt = pmt_section(&config);
        Ok(Self {
            stream_cc: vec![0; config.streams.len()],
            pcr_lead_90k: duration_to_ticks_90k(config.pcr_lead),
            config,
            pat,
            pmt,
            pat_cc: 0,
            pmt_cc: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &TsConfig {
        &self.config
    }

    /// Appends one PAT packet and one PMT packet.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        write_section(PAT_PID, &mut self.pat_cc, &self.pat, out);
        write_section(self.config.pmt_pid, &mut self.pmt_cc, &self.pmt, out);
    }

    /// Appends one access unit of stream `stream` as a PES split into TS packets.
    pub fn write_pes(
        &mut self,
        stream: usize,
        packet: &EncodedPacket,
        out: &mut Vec<u8>,
    ) -> Result<(), MuxError> {
        let s = self.config.streams.get(stream).ok_or(MuxError::UnknownStream(stream))?;
        if s.stream_type.codec() != packet.codec {
            return Err(MuxError::CodecMismatch { expected: s.stream_type.codec(), got: packet.codec });
        }
        let aud: &[u8] =
            if s.stream_type == StreamType::H264 && !starts_with_aud(&packet.data) { &H264_AUD } else { &[] };

        let mut header = [0u8; 19];
        let with_dts = packet.dts != packet.pts;
        let header_data_len: usize = if with_dts { 10 } else { 5 };
        header[..4].copy_from_slice(&[0, 0, 1, s.stream_id]);
        // PES_packet_length counts bytes after itself; 0 ("unbounded") is allowed for video only.
        let pes_len = 3 + header_data_len + aud.len() + packet.data.len();
        let pes_len_field = match u16::try_from(pes_len) {
            Ok(n) => n,
            Err(_) if (0xE0..=0xEF).contains(&s.stream_id) => 0,
            Err(_) => return Err(MuxError::PesTooLarge(pes_len)),
        };
        header[4..6].copy_from_slice(&pes_len_field.to_be_bytes());
        // '10', not scrambled, no priority, data_alignment_indicator = 1, no copyright, copy.
        header[6] = 0x84;
        header[7] = if with_dts { 0xC0 } else { 0x80 };
        header[8] = header_data_len as u8;
        if with_dts {
            write_timestamp(0b0011, packet.pts, &mut header[9..14]);
            write_timestamp(0b0001, packet.dts, &mut header[14..19]);
        } else {
            write_timestamp(0b0010, packet.pts, &mut header[9..14]);
        }
        let header = &header[..9 + header_data_len];

        let pid = s.pid;
        let pcr =
            (stream == self.config.pcr_stream).then(|| (packet.dts - self.pcr_lead_90k).max(0) & TS_MASK);
        let mut payload = Chain::new([header, aud, &packet.data]);
        let cc = &mut self.stream_cc[stream];
        write_pes_packets(pid, cc, pcr, packet.keyframe, &mut payload, out);
        Ok(())
    }
}

impl SegmentMuxer for TsMuxer {
    fn codec(&self) -> Codec {
        self.config.streams[0].stream_type.codec()
    }

    fn begin_segment(&mut self, out: &mut Vec<u8>) {
        self.write_tables(out);
    }

    fn write_packet(&mut self, packet: &EncodedPacket, out: &mut Vec<u8>) -> Result<(), MuxError> {
        let stream = self
            .config
            .streams
            .iter()
            .position(|s| s.stream_type.codec() == packet.codec)
            .ok_or(MuxError::CodecMismatch { expected: self.codec(), got: packet.codec })?;
        self.write_pes(stream, packet, out)
    }
}

fn starts_with_aud(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 0, 1, 0x09]) || data.starts_with(&[0, 0, 1, 0x09])
}

/// A read cursor over a few byte slices, so the PES header, AUD and access unit are packed
/// into TS packets without first being copied into one buffer.
struct Chain<'a, const N: usize> {
    parts: [&'a [u8]; N],
    index: usize,
    offset: usize,
    remaining: usize,
}

impl<'a, const N: usize> Chain<'a, N> {
    fn new(parts: [&'a [u8]; N]) -> Self {
        let remaining = parts.iter().map(|p| p.len()).sum();
        Self { parts, index: 0, offset: 0, remaining }
    }

    fn copy_to(&mut self, mut n: usize, out: &mut Vec<u8>) {
        while n > 0 && self.index < N {
            let part = &self.parts[self.index][self.offset..];
            let take = part.len().min(n);
            out.extend_from_slice(&part[..take]);
            n -= take;
            self.remaining -= take;
            self.offset += take;
            if self.offset == self.parts[self.index].len() {
                self.index += 1;
                self.offset = 0;
            }
        }
    }
}

/// Splits one PES into TS packets. The first packet carries payload_unit_start_indicator and,
/// when asked, the PCR and random_access_indicator; the last is padded with adaptation-field
/// stuffing (never with PES bytes, which would corrupt the access unit).
fn write_pes_packets<const N: usize>(
    pid: u16,
    cc: &mut u8,
    pcr: Option<i64>,
    random_access: bool,
    payload: &mut Chain<'_, N>,
    out: &mut Vec<u8>,
) {
    out.reserve(payload.remaining.div_ceil(PAYLOAD_LEN - 8) * TS_PACKET_LEN);
    let mut first = true;
    while payload.remaining > 0 {
        let flags = if first {
            (if pcr.is_some() { 0x10 } else { 0 }) | (if random_access { 0x40 } else { 0 })
        } else {
            0
        };
        // Bytes of adaptation field after its length byte, before any stuffing.
        let fields = if flags != 0 { 1 + if flags & 0x10 != 0 { 6 } else { 0 } } else { 0 };
        let af_fixed = if flags != 0 { 1 + fields } else { 0 };
        let room = PAYLOAD_LEN - af_fixed;
        let n = room.min(payload.remaining);
        let stuffing = room - n;

        out.push(SYNC_BYTE);
        out.push((u8::from(first) << 6) | ((pid >> 8) as u8 & 0x1F));
        out.push(pid as u8);
        if flags != 0 || stuffing > 0 {
            out.push(0x30 | *cc);
            if flags != 0 {
                out.push((fields + stuffing) as u8);
                out.push(flags);
                if let (true, Some(pcr)) = (flags & 0x10 != 0, pcr) {
                    write_pcr(pcr, out);
                }
                out.resize(out.len() + stuffing, 0xFF);
            } else if stuffing == 1 {
                // A zero-length adaptation field is exactly one byte of stuffing.
                out.push(0);
            } else {
                out.push((stuffing - 1) as u8);
                out.push(0);
                out.resize(out.len() + stuffing - 2, 0xFF);
            }
        } else {
            out.push(0x10 | *cc);
        }
        payload.copy_to(n, out);
        *cc = (*cc + 1) & 0x0F;
        first = false;
    }
}

/// Writes a PCR with base `pcr_base` (90 kHz) and extension 0 (6 bytes, 2.4.3.5).
fn write_pcr(pcr_base: i64, out: &mut Vec<u8>) {
    let b = (pcr_base & TS_MASK) as u64;
    out.extend_from_slice(&[
        (b >> 25) as u8,
        (b >> 17) as u8,
        (b >> 9) as u8,
        (b >> 1) as u8,
        // Last base bit, 6 reserved bits set, extension bit 8 (0).
        (((b & 1) as u8) << 7) | 0x7E,
        0,
    ]);
}

/// Writes a 33-bit PTS/DTS with its 4-bit prefix and marker bits (5 bytes).
fn write_timestamp(prefix: u8, ts: i64, out: &mut [u8]) {
    let t = (ts & TS_MASK) as u64;
    out[0] = (prefix << 4) | (((t >> 30) as u8 & 0x07) << 1) | 1;
    out[1] = (t >> 22) as u8;
    out[2] = (((t >> 15) as u8 & 0x7F) << 1) | 1;
    out[3] = (t >> 7) as u8;
    out[4] = (((t & 0x7F) as u8) << 1) | 1;
}

/// Writes one PSI section into one packet: pointer_field 0, section, 0xFF filler.
fn write_section(pid: u16, cc: &mut u8, section: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[SYNC_BYTE, 0x40 | ((pid >> 8) as u8 & 0x1F), pid as u8, 0x10 | *cc, 0]);
    out.extend_from_slice(section);
    out.resize(start + TS_PACKET_LEN, 0xFF);
    *cc = (*cc + 1) & 0x0F;
}

/// Finishes a section: fills in section_length and appends the CRC.
fn seal_section(mut s: Vec<u8>) -> Vec<u8> {
    // section_length counts the bytes after it, CRC included.
    let len = s.len() - 3 + 4;
    s[1] = 0xB0 | ((len >> 8) as u8 & 0x0F);
    s[2] = len as u8;
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn pat_section(c: &TsConfig) -> Vec<u8> {
    let mut s = vec![0x00, 0, 0];
    s.extend_from_slice(&c.transport_stream_id.to_be_bytes());
    // reserved '11', version 0, current_next_indicator 1; section 0 of 0.
    s.extend_from_slice(&[0xC1, 0, 0]);
    s.extend_from_slice(&c.program_number.to_be_bytes());
    s.extend_from_slice(&(0xE000 | c.pmt_pid).to_be_bytes());
    seal_section(s)
}

fn pmt_section(c: &TsConfig) -> Vec<u8> {
    let mut s = vec![0x02, 0, 0];
    s.extend_from_slice(&c.program_number.to_be_bytes());
    s.extend_from_slice(&[0xC1, 0, 0]);
    let pcr_pid = c.streams[c.pcr_stream].pid;
    s.extend_from_slice(&(0xE000 | pcr_pid).to_be_bytes());
    // No program descriptors.
    s.extend_from_slice(&0xF000u16.to_be_bytes());
    for st in &c.streams {
        s.push(st.stream_type.code());
        s.extend_from_slice(&(0xE000 | st.pid).to_be_bytes());
        s.extend_from_slice(&(0xF000 | st.es_info.len() as u16).to_be_bytes());
        s.extend_from_slice(&st.es_info);
    }
    seal_section(s)
}

/// CRC-32/MPEG-2 lookup table (polynomial 0x04C11DB7, MSB first).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04C1_1DB7 } else { c << 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32/MPEG-2 (Annex B): init 0xFFFFFFFF, not reflected, no final XOR. Running it over a
/// section including its CRC gives 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc, &b| (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::collections::HashMap;

    /// A parsed TS packet, just enough to check structure.
    #[derive(Debug)]
    struct Pkt {
        pid: u16,
        pusi: bool,
        cc: u8,
        has_payload: bool,
        pcr: Option<u64>,
        rai: bool,
        payload: Vec<u8>,
    }

    fn parse(ts: &[u8]) -> Vec<Pkt> {
        assert_eq!(ts.len() % TS_PACKET_LEN, 0, "whole packets only");
        ts.chunks_exact(TS_PACKET_LEN)
            .map(|p| {
                assert_eq!(p[0], SYNC_BYTE);
                let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
                let afc = (p[3] >> 4) & 3;
                let mut i = 4;
                let (mut pcr, mut rai) = (None, false);
                if afc & 2 != 0 {
                    let len = p[4] as usize;
                    if len > 0 {
                        let flags = p[5];
                        rai = flags & 0x40 != 0;
                        if flags & 0x10 != 0 {
                            let b = &p[6..12];
                            pcr = Some(
                                (u64::from(b[0]) << 25)
                                    | (u64::from(b[1]) << 17)
                                    | (u64::from(b[2]) << 9)
                                    | (u64::from(b[3]) << 1)
                                    | u64::from(b[4] >> 7),
                            );
                            assert_eq!(b[4] & 0x7E, 0x7E, "reserved bits set");
                        }
                    }
                    i += 1 + len;
                }
                Pkt {
                    pid,
                    pusi: p[1] & 0x40 != 0,
                    cc: p[3] & 0x0F,
                    has_payload: afc & 1 != 0,
                    pcr,
                    rai,
                    payload: p[i..].to_vec(),
                }
            })
            .collect()
    }

    fn read_ts(b: &[u8]) -> i64 {
        (i64::from(b[0] >> 1 & 7) << 30)
            | (i64::from(b[1]) << 22)
            | (i64::from(b[2] >> 1) << 15)
            | (i64::from(b[3]) << 7)
            | i64::from(b[4] >> 1)
    }

    fn packet(pts: i64, dts: i64, len: usize, keyframe: bool) -> EncodedPacket {
        // A fake access unit: starts like a slice NAL so the muxer adds an AUD.
        let mut data = vec![0, 0, 0, 1, 0x65];
        data.extend((0..len - 5).map(|i| (i % 251) as u8));
        EncodedPacket { codec: Codec::H264, data: Bytes::from(data), pts, dts, keyframe }
    }

    /// Reassembles the PES payloads of `pid`.
    fn pes_units(pkts: &[Pkt], pid: u16) -> Vec<Vec<u8>> {
        let mut units: Vec<Vec<u8>> = Vec::new();
        for p in pkts.iter().filter(|p| p.pid == pid) {
            if p.pusi {
                units.push(Vec::new());
            }
            units.last_mut().unwrap().extend_from_slice(&p.payload);
        }
        units
    }

    #[test]
    fn crc32_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        assert_eq!(crc32_mpeg2(b""), 0xFFFF_FFFF);
    }

    #[test]
    fn pat_and_pmt_are_valid_sections() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        m.write_tables(&mut out);
        let pkts = parse(&out);
        assert_eq!(pkts.len(), 2);
        let (pat, pmt) = (&pkts[0], &pkts[1]);
        assert_eq!((pat.pid, pmt.pid), (PAT_PID, DEFAULT_PMT_PID));
        assert!(pat.pusi && pmt.pusi);
        for p in [pat, pmt] {
            assert_eq!(p.payload[0], 0, "pointer_field");
            let len = ((usize::from(p.payload[2]) & 0x0F) << 8) | usize::from(p.payload[3]);
            let section = &p.payload[1..4 + len];
            // CRC over the whole section including its CRC is zero.
            assert_eq!(crc32_mpeg2(section), 0);
            assert!(p.payload[4 + len..].iter().all(|&b| b == 0xFF));
        }
        // PAT: program 1 -> PMT PID.
        let s = &pat.payload[1..];
        assert_eq!(s[0], 0x00);
        assert_eq!(u16::from_be_bytes([s[8], s[9]]), 1);
        assert_eq!(u16::from_be_bytes([s[10], s[11]]) & 0x1FFF, DEFAULT_PMT_PID);
        // PMT: PCR PID = video PID, one H.264 stream.
        let s = &pmt.payload[1..];
        assert_eq!(s[0], 0x02);
        assert_eq!(u16::from_be_bytes([s[8], s[9]]) & 0x1FFF, DEFAULT_VIDEO_PID);
        assert_eq!(s[12], 0x1B);
        assert_eq!(u16::from_be_bytes([s[13], s[14]]) & 0x1FFF, DEFAULT_VIDEO_PID);
        // Writing the tables again advances each PID's counter.
        m.write_tables(&mut out);
        let pkts = parse(&out);
        assert_eq!((pkts[2].cc, pkts[3].cc), (1, 1));
    }

    #[test]
    fn pes_structure_pcr_rai_and_stuffing() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        // Sizes chosen to hit every packing edge: with PCR the first packet has 176 payload bytes
        // and PES header + AUD are 20 bytes, so 156 fills one packet exactly, 339 leaves one
        // byte of stuffing (zero-length adaptation field), 338 two bytes, 340 none.
        let sizes = [5000usize, 339, 338, 340, 156, 155, 157, 6];
        let mut sent = Vec::new();
        for (i, &len) in sizes.iter().enumerate() {
            let p = packet(i as i64 * 3000 + 90_000, i as i64 * 3000 + 90_000, len, i == 0);
            m.write_pes(0, &p, &mut out).unwrap();
            sent.push(p);
        }
        let pkts = parse(&out);
        let units = pes_units(&pkts, DEFAULT_VIDEO_PID);
        assert_eq!(units.len(), sizes.len());
        for (i, (unit, p)) in units.iter().zip(&sent).enumerate() {
            assert_eq!(&unit[..4], &[0, 0, 1, STREAM_ID_VIDEO]);
            assert_eq!(unit[6], 0x84, "data_alignment_indicator");
            assert_eq!(unit[7], 0x80, "PTS only when pts == dts");
            assert_eq!(unit[8], 5);
            assert_eq!(unit[9] >> 4, 0b0010);
            assert_eq!(read_ts(&unit[9..14]), p.pts);
            let body = &unit[14..];
            let declared = usize::from(u16::from_be_bytes([unit[4], unit[5]]));
            assert_eq!(declared, unit.len() - 6, "PES_packet_length, no stray stuffing");
            assert_eq!(&body[..6], &H264_AUD, "AUD inserted");
            assert_eq!(&body[6..], &p.data[..], "access unit {i} intact");
        }
        // PCR and RAI only in the first packet of each PES; RAI only on the keyframe.
        let firsts: Vec<&Pkt> = pkts.iter().filter(|p| p.pusi).collect();
        for (i, p) in firsts.iter().enumerate() {
            assert_eq!(p.pcr, Some(sent[i].dts as u64));
            assert_eq!(p.rai, i == 0);
        }
        assert!(pkts.iter().filter(|p| !p.pusi).all(|p| p.pcr.is_none()));
        // Continuity counter increments by one per packet, mod 16.
        for w in pkts.windows(2) {
            assert!(w[1].has_payload);
            assert_eq!(w[1].cc, (w[0].cc + 1) % 16);
        }
    }

    #[test]
    fn dts_written_when_different_and_timestamps_wrap() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        let p = packet(9000, 6000, 100, false);
        m.write_pes(0, &p, &mut out).unwrap();
        let unit = &pes_units(&parse(&out), DEFAULT_VIDEO_PID)[0];
        assert_eq!((unit[7], unit[8]), (0xC0, 10));
        assert_eq!((unit[9] >> 4, unit[14] >> 4), (0b0011, 0b0001));
        assert_eq!((read_ts(&unit[9..14]), read_ts(&unit[14..19])), (9000, 6000));
        // 33-bit wrap.
        let mut out = Vec::new();
        m.write_pes(0, &packet((1 << 33) + 5, (1 << 33) + 5, 50, false), &mut out).unwrap();
        let unit = &pes_units(&parse(&out), DEFAULT_VIDEO_PID)[0];
        assert_eq!(read_ts(&unit[9..14]), 5);
    }

    #[test]
    fn continuity_counters_are_per_pid_across_segments() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        for seg in 0..3 {
            m.begin_segment(&mut out);
            for f in 0..7 {
                let pts = (seg * 7 + f) * 3000;
                m.write_packet(&packet(pts, pts, 700, f == 0), &mut out).unwrap();
            }
        }
        let mut last: HashMap<u16, u8> = HashMap::new();
        for p in parse(&out) {
            if let Some(prev) = last.insert(p.pid, p.cc) {
                assert_eq!(p.cc, (prev + 1) % 16, "pid {:#x}", p.pid);
            }
        }
        assert_eq!(last.len(), 3);
    }

    #[test]
    fn keeps_existing_aud_and_rejects_wrong_codec() {
        let mut m = TsMuxer::default();
        let mut out = Vec::new();
        let mut p = packet(0, 0, 20, true);
        let mut data = H264_AUD.to_vec();
        data.extend_from_slice(&p.data);
        p.data = Bytes::from(data);
        m.write_pes(0, &p, &mut out).unwrap();
        let unit = &pes_units(&parse(&out), DEFAULT_VIDEO_PID)[0];
        assert_eq!(&unit[14..], &p.data[..]);
        let av1 = EncodedPacket { codec: Codec::Av1, ..p.clone() };
        assert!(matches!(m.write_pes(0, &av1, &mut out), Err(MuxError::CodecMismatch { .. })));
        assert!(matches!(m.write_pes(3, &p, &mut out), Err(MuxError::UnknownStream(3))));
    }

    #[test]
    fn config_validation() {
        let mut c = TsConfig::default();
        c.streams[0].pid = 0x0001;
        assert!(TsMuxer::new(c).is_err());
        let mut c = TsConfig::default();
        c.streams[0].pid = c.pmt_pid;
        assert!(TsMuxer::new(c).is_err());
        let c = TsConfig { pcr_stream: 1, ..TsConfig::default() };
        assert!(TsMuxer::new(c).is_err());
        let c = TsConfig { streams: vec![], ..TsConfig::default() };
        assert!(TsMuxer::new(c).is_err());
    }

    #[test]
    fn pcr_lead_is_clamped_at_zero() {
        let mut m =
            TsMuxer::new(TsConfig { pcr_lead: Duration::from_millis(100), ..TsConfig::default() }).unwrap();
        let mut out = Vec::new();
        m.write_pes(0, &packet(3000, 3000, 10, true), &mut out).unwrap();
        m.write_pes(0, &packet(12_000, 12_000, 10, false), &mut out).unwrap();
        let pcrs: Vec<Option<u64>> = parse(&out).iter().map(|p| p.pcr).collect();
        assert_eq!(pcrs, vec![Some(0), Some(3000)]);
    }
}
