//! Tests of the MPEG-TS muxer: tables, PES layout, PCR, continuity, configuration.

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

#[test]
fn opus_pes_carry_several_packets_behind_control_headers_and_the_pre_skip_once() {
    let mut mux = TsMuxer::new(TsConfig::with_opus(2, 312)).unwrap();
    let opus = |i: i64, len: usize| EncodedPacket {
        codec: Codec::Opus,
        data: Bytes::from(vec![i as u8; len]),
        pts: 1800 * i,
        dts: 1800 * i,
        keyframe: true,
    };
    let mut out = Vec::new();
    mux.write_tables(&mut out);
    mux.write_audio_pes(1, &[opus(0, 300), opus(1, 40)], &mut out).unwrap();
    mux.write_audio_pes(1, &[opus(2, 255)], &mut out).unwrap();
    // A single packet through write_pes is a PES of its own.
    mux.write_pes(1, &opus(3, 10), &mut out).unwrap();
    let pkts = parse(&out);
    // The PMT declares private data with the Opus registration and 2 channels, as ffmpeg does.
    let pmt = &pkts[1].payload;
    let es = pmt.windows(5).position(|w| w == [0x06, 0xE1, 0x01, 0xF0, 0x0A]).expect("the Opus ES entry");
    assert_eq!(pmt[es + 5..es + 15], crate::ts::opus::es_info(2)[..]);
    let units = pes_units(&pkts, DEFAULT_AUDIO_PID);
    assert_eq!(units.len(), 3);
    for (unit, pts) in units.iter().zip([0, 3600, 5400]) {
        assert_eq!(unit[..4], [0, 0, 1, 0xBD]);
        assert_eq!(usize::from(u16::from_be_bytes([unit[4], unit[5]])), unit.len() - 6);
        assert_eq!(read_ts(&unit[9..14]), pts);
    }
    let split = crate::ts::opus::split_packets(&units[0][14..]).unwrap();
    assert_eq!(split.iter().map(|p| (p.data.len(), p.trim.start)).collect::<Vec<_>>(), [(300, 312), (40, 0)]);
    let split = crate::ts::opus::split_packets(&units[1][14..]).unwrap();
    assert_eq!(split.iter().map(|p| (p.data.len(), p.trim.start)).collect::<Vec<_>>(), [(255, 0)]);
    // Video refuses audio and audio video.
    assert!(mux.write_audio_pes(0, &[opus(4, 10)], &mut out).is_err());
    assert!(mux.write_audio_pes(1, &[packet(0, 0, 10, true)], &mut out).is_err());
}

#[test]
fn aac_pes_carry_adts_frames_as_they_are_under_stream_type_0x0f() {
    let mut mux = TsMuxer::new(TsConfig::with_aac()).unwrap();
    let adts = |i: i64| EncodedPacket {
        codec: Codec::Aac,
        data: Bytes::from(vec![0xFF, 0xF1, 0x50, 0x80, 0x01, 0x1F, 0xFC, i as u8]),
        pts: 1920 * i,
        dts: 1920 * i,
        keyframe: true,
    };
    let mut out = Vec::new();
    mux.write_tables(&mut out);
    mux.write_audio_pes(1, &[adts(0), adts(1)], &mut out).unwrap();
    let pkts = parse(&out);
    // The PMT declares ADTS AAC on the audio PID with no descriptors.
    let pmt = &pkts[1].payload;
    assert!(pmt.windows(5).any(|w| w == [0x0F, 0xE1, 0x01, 0xF0, 0x00]), "the AAC ES entry");
    let units = pes_units(&pkts, DEFAULT_AUDIO_PID);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0][..4], [0, 0, 1, STREAM_ID_AUDIO]);
    assert_eq!(read_ts(&units[0][9..14]), 0);
    // The two frames, back to back, with no header of the muxer's between them.
    assert_eq!(units[0][14..], [adts(0).data.as_ref(), adts(1).data.as_ref()].concat()[..]);
    assert_eq!(mux.audio_codec(), Some(Codec::Aac));
}
