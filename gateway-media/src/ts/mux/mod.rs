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
//! * Opus audio as ffmpeg writes it ([`crate::ts::opus`]): PES private data with the `Opus`
//!   registration, several packets per PES ([`TsMuxer::write_audio_pes`]), each behind its
//!   control header, the stream's first packet trimmed by the encoder's pre-skip.

use std::time::Duration;

use crate::encoder::{Codec, EncodedPacket};
use crate::muxer::{MuxError, SegmentMuxer};
use crate::time::duration_to_ticks_90k;
use crate::ts::opus::{self, Trim};

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
/// Default PID of the audio stream (what ffmpeg gives its second stream).
pub const DEFAULT_AUDIO_PID: u16 = 0x0101;
/// PES stream_id of the first video stream.
pub const STREAM_ID_VIDEO: u8 = 0xE0;
/// PES stream_id of the first MPEG audio stream (AAC).
pub const STREAM_ID_AUDIO: u8 = 0xC0;

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
    /// Opus audio, stream_type 0x06 (PES private data) with the `Opus` registration.
    Opus,
    /// AAC audio in ADTS frames, stream_type 0x0F.
    Aac,
}

impl StreamType {
    /// The PMT `stream_type` byte.
    pub const fn code(self) -> u8 {
        match self {
            StreamType::H264 => 0x1B,
            StreamType::Opus => 0x06,
            StreamType::Aac => 0x0F,
        }
    }

    /// The codec of packets this stream carries.
    pub const fn codec(self) -> Codec {
        match self {
            StreamType::H264 => Codec::H264,
            StreamType::Opus => Codec::Opus,
            StreamType::Aac => Codec::Aac,
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
    /// Descriptors for the PMT ES_info loop (empty for H.264; the registration and channel
    /// configuration for Opus).
    pub es_info: Vec<u8>,
    /// Samples (48 kHz) the stream's first audio packet starts with that a player must drop:
    /// the Opus encoder's pre-skip. 0 for video.
    pub start_trim: u16,
}

impl TsStream {
    /// An H.264 stream on `pid`.
    pub fn h264(pid: u16) -> Self {
        Self {
            pid,
            stream_type: StreamType::H264,
            stream_id: STREAM_ID_VIDEO,
            es_info: Vec::new(),
            start_trim: 0,
        }
    }

    /// An Opus stream of `channels` (1 or 2) on `pid` whose encoder has `pre_skip` samples of
    /// delay.
    pub fn opus(pid: u16, channels: u8, pre_skip: u16) -> Self {
        Self {
            pid,
            stream_type: StreamType::Opus,
            stream_id: opus::STREAM_ID_PRIVATE_1,
            es_info: opus::es_info(channels),
            start_trim: pre_skip,
        }
    }
}

impl TsStream {
    /// An AAC (ADTS) stream on `pid`.
    pub fn aac(pid: u16) -> Self {
        Self {
            pid,
            stream_type: StreamType::Aac,
            stream_id: STREAM_ID_AUDIO,
            es_info: Vec::new(),
            start_trim: 0,
        }
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
    /// H.264 video (carrying the PCR) and Opus audio of `channels` with `pre_skip`.
    pub fn with_opus(channels: u8, pre_skip: u16) -> Self {
        let mut c = Self::default();
        c.streams.push(TsStream::opus(DEFAULT_AUDIO_PID, channels, pre_skip));
        c
    }

    /// H.264 video (carrying the PCR) and AAC audio in ADTS frames.
    pub fn with_aac() -> Self {
        let mut c = Self::default();
        c.streams.push(TsStream::aac(DEFAULT_AUDIO_PID));
        c
    }

    /// Opus audio alone (the audio carries the PCR).
    pub fn opus_only(channels: u8, pre_skip: u16) -> Self {
        Self { streams: vec![TsStream::opus(DEFAULT_VIDEO_PID, channels, pre_skip)], ..Self::default() }
    }

    /// The index of the first stream carrying `codec`.
    pub fn stream_of(&self, codec: Codec) -> Option<usize> {
        self.streams.iter().position(|s| s.stream_type.codec() == codec)
    }

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
    /// Per stream: the start trim its next packet carries (the first packet's pre-skip).
    start_trim: Vec<u16>,
    pcr_lead_90k: i64,
    /// The audio PES payload being put together (kept to reuse its allocation).
    audio_buf: Vec<u8>,
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
            start_trim: config.streams.iter().map(|s| s.start_trim).collect(),
            audio_buf: Vec::new(),
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
        if matches!(s.stream_type, StreamType::Opus | StreamType::Aac) {
            return self.write_audio_pes(stream, std::slice::from_ref(packet), out);
        }
        let aud: &[u8] =
            if s.stream_type == StreamType::H264 && !starts_with_aud(&packet.data) { &H264_AUD } else { &[] };

        let mut header = [0u8; 19];
        let header =
            pes_header(s.stream_id, packet.pts, packet.dts, aud.len() + packet.data.len(), &mut header)?;
        let pid = s.pid;
        let pcr = self.pcr_for(stream, packet.dts);
        let mut payload = Chain::new([header, aud, &packet.data]);
        let cc = &mut self.stream_cc[stream];
        write_pes_packets(pid, cc, pcr, packet.keyframe, &mut payload, out);
        Ok(())
    }

    /// Appends audio packets of stream `stream` as one PES stamped with the first one's pts.
    /// Opus packets go each behind its control header (the stream's very first one carrying
    /// the pre-skip as its start trim), which players split them back by; ADTS frames (AAC)
    /// carry their own headers and go as they are.
    pub fn write_audio_pes(
        &mut self,
        stream: usize,
        packets: &[EncodedPacket],
        out: &mut Vec<u8>,
    ) -> Result<(), MuxError> {
        let s = self.config.streams.get(stream).ok_or(MuxError::UnknownStream(stream))?;
        let expected = s.stream_type.codec();
        if let Some(p) = packets.iter().find(|p| p.codec != expected) {
            return Err(MuxError::CodecMismatch { expected, got: p.codec });
        }
        let Some(first) = packets.first() else { return Ok(()) };
        let mut payload = std::mem::take(&mut self.audio_buf);
        payload.clear();
        let mut start_trim = self.start_trim[stream];
        let opus = s.stream_type == StreamType::Opus;
        for p in packets {
            // ADTS frames carry their own headers; Opus packets get TS's control header.
            if opus {
                opus::write_control_header(p.data.len(), Trim { start: start_trim, end: 0 }, &mut payload);
            }
            payload.extend_from_slice(&p.data);
            start_trim = 0;
        }
        let (pid, stream_id) = (s.pid, s.stream_id);
        let pcr = self.pcr_for(stream, first.dts);
        let mut header = [0u8; 19];
        let result = match pes_header(stream_id, first.pts, first.dts, payload.len(), &mut header) {
            Ok(header) => {
                let mut chain = Chain::new([header, &payload]);
                write_pes_packets(pid, &mut self.stream_cc[stream], pcr, first.keyframe, &mut chain, out);
                self.start_trim[stream] = 0;
                Ok(())
            }
            Err(e) => Err(e),
        };
        self.audio_buf = payload;
        result
    }

    /// The PCR a PES of `stream` decoded at `dts` carries, if `stream` carries the PCR.
    fn pcr_for(&self, stream: usize, dts: i64) -> Option<i64> {
        (stream == self.config.pcr_stream).then(|| (dts - self.pcr_lead_90k).max(0) & TS_MASK)
    }
}

/// Writes a PES header for `payload_len` bytes of stream `stream_id` into `buf`; returns the
/// bytes written. DTS only when it differs from PTS.
fn pes_header(
    stream_id: u8,
    pts: i64,
    dts: i64,
    payload_len: usize,
    buf: &mut [u8; 19],
) -> Result<&[u8], MuxError> {
    let with_dts = dts != pts;
    let header_data_len: usize = if with_dts { 10 } else { 5 };
    buf[..4].copy_from_slice(&[0, 0, 1, stream_id]);
    // PES_packet_length counts bytes after itself; 0 ("unbounded") is allowed for video only.
    let pes_len = 3 + header_data_len + payload_len;
    let pes_len_field = match u16::try_from(pes_len) {
        Ok(n) => n,
        Err(_) if (0xE0..=0xEF).contains(&stream_id) => 0,
        Err(_) => return Err(MuxError::PesTooLarge(pes_len)),
    };
    buf[4..6].copy_from_slice(&pes_len_field.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator = 1, no copyright, copy.
    buf[6] = 0x84;
    buf[7] = if with_dts { 0xC0 } else { 0x80 };
    buf[8] = header_data_len as u8;
    if with_dts {
        write_timestamp(0b0011, pts, &mut buf[9..14]);
        write_timestamp(0b0001, dts, &mut buf[14..19]);
    } else {
        write_timestamp(0b0010, pts, &mut buf[9..14]);
    }
    Ok(&buf[..9 + header_data_len])
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

    fn audio_codec(&self) -> Option<Codec> {
        self.config
            .streams
            .iter()
            .map(|s| s.stream_type.codec())
            .find(|&c| matches!(c, Codec::Opus | Codec::Aac))
    }

    fn write_audio(&mut self, packets: &[EncodedPacket], out: &mut Vec<u8>) -> Result<(), MuxError> {
        let codec = self.audio_codec().ok_or(MuxError::Unsupported("no audio stream".into()))?;
        let stream = self.config.stream_of(codec).ok_or(MuxError::Unsupported("no audio stream".into()))?;
        self.write_audio_pes(stream, packets, out)
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
mod tests;
