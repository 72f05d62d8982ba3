//! Marking a break in an MPEG-TS stream: the `discontinuity_indicator` (ISO/IEC 13818-1,
//! 2.4.3.4) on the first packet of every PID after bytes were lost.
//!
//! A stream's continuity counters run on across trickle segments, so consecutive segments join
//! into one valid stream. When a segment is lost on the way (drained after a stall), the next
//! one's counters jump; readers that join the segments (ffmpeg, PyAV, a player reading an
//! `--output` file) then report continuity errors and flag the next access unit corrupt. With
//! the indicator set they take the jump as intended.

use super::mux::{SYNC_BYTE, TS_PACKET_LEN};

/// The null packet's PID, which carries no continuity.
const NULL_PID: u16 = 0x1FFF;

/// `chunk` with the discontinuity indicator set on the first packet of each PID it holds.
/// `None` when `chunk` is not whole TS packets starting at a packet boundary.
///
/// A packet with an adaptation field gets the flag in place (the first video packet of a
/// segment carries one, with the PCR and random-access flags). A PSI packet (PAT, PMT) without
/// one gets a two-byte adaptation field in the 0xFF filler after its section. Any other packet
/// has no room without re-packetizing and is left as it is.
pub fn mark_discontinuity(chunk: &[u8]) -> Option<Vec<u8>> {
    if chunk.is_empty() || !chunk.len().is_multiple_of(TS_PACKET_LEN) {
        return None;
    }
    let mut out = chunk.to_vec();
    let mut marked: Vec<u16> = Vec::new();
    for p in out.chunks_exact_mut(TS_PACKET_LEN) {
        if p[0] != SYNC_BYTE {
            return None;
        }
        let pid = (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
        if pid == NULL_PID || marked.contains(&pid) {
            continue;
        }
        marked.push(pid);
        let adaptation = (p[3] >> 4) & 0b11;
        if adaptation & 0b10 != 0 && p[4] > 0 {
            p[5] |= 0x80;
        } else if adaptation == 0b01 && has_room_after_section(p) {
            // Shift pointer_field and section right by two bytes over the filler.
            p.copy_within(4..TS_PACKET_LEN - 2, 6);
            p[3] |= 0b0011_0000;
            p[4] = 1;
            p[5] = 0x80;
        }
    }
    Some(out)
}

/// Whether `p` is a payload-only PSI packet (payload start, pointer_field 0, not a PES start
/// code) whose one section leaves at least two 0xFF filler bytes at the end.
fn has_room_after_section(p: &[u8]) -> bool {
    let payload_start = p[1] & 0x40 != 0;
    if !payload_start || p[4] != 0 || p[5..8] == [0, 0, 1] {
        return false;
    }
    let section_len = (usize::from(p[6] & 0x0F) << 8) | usize::from(p[7]);
    let end = 8 + section_len; // pointer_field, table_id and the two length bytes, then the rest
    end + 2 <= TS_PACKET_LEN && p[end..].iter().all(|&b| b == 0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::EncodedPacket;
    use crate::ts::demux::TsDemuxer;
    use crate::{Codec, TsMuxer};

    fn segment(muxer: &mut TsMuxer, first_pts: i64, frames: i64) -> Vec<u8> {
        let mut out = Vec::new();
        muxer.write_tables(&mut out);
        for i in 0..frames {
            let data = vec![0x65; 300 + i as usize * 7];
            let packet = EncodedPacket {
                codec: Codec::H264,
                pts: first_pts + i * 3000,
                dts: first_pts + i * 3000,
                keyframe: i == 0,
                data: data.into(),
            };
            muxer.write_pes(0, &packet, &mut out).unwrap();
        }
        out
    }

    fn pid(p: &[u8]) -> u16 {
        (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2])
    }

    #[test]
    fn the_first_packet_of_every_pid_is_marked_and_nothing_else_changes() {
        let mut muxer = TsMuxer::default();
        let seg = segment(&mut muxer, 0, 3);
        let marked = mark_discontinuity(&seg).unwrap();
        assert_eq!(marked.len(), seg.len());
        let mut seen = Vec::new();
        for (before, after) in seg.chunks(TS_PACKET_LEN).zip(marked.chunks(TS_PACKET_LEN)) {
            let first = !seen.contains(&pid(before));
            seen.push(pid(before));
            if !first {
                assert_eq!(before, after, "only first packets change");
                continue;
            }
            assert_eq!(after[3] & 0x0F, before[3] & 0x0F, "the counter stays");
            assert!(after[3] & 0x20 != 0 && after[4] > 0 && after[5] & 0x80 != 0, "marked: {after:02x?}");
        }
        assert_eq!(seen.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "PAT, PMT, video");
    }

    #[test]
    fn a_lost_segment_leaves_no_continuity_gap_once_the_next_is_marked() {
        let mut muxer = TsMuxer::default();
        let first = segment(&mut muxer, 0, 4);
        let _lost = segment(&mut muxer, 12_000, 4);
        let third = segment(&mut muxer, 24_000, 4);

        let mut plain = first.clone();
        plain.extend_from_slice(&third);
        let mut demuxer = TsDemuxer::new();
        demuxer.push(&plain);
        demuxer.finish();
        assert!(demuxer.stats().continuity_gaps > 0, "the jump shows unmarked");

        let mut joined = first;
        joined.extend_from_slice(&mark_discontinuity(&third).unwrap());
        let mut demuxer = TsDemuxer::new();
        let units = demuxer.push(&joined).len() + demuxer.finish().len();
        assert_eq!(demuxer.stats().continuity_gaps, 0);
        assert_eq!(units, 8, "every access unit of both segments");
    }

    #[test]
    fn what_is_not_whole_packets_is_refused() {
        let seg = segment(&mut TsMuxer::default(), 0, 1);
        assert!(mark_discontinuity(&seg[..seg.len() - 1]).is_none());
        assert!(mark_discontinuity(&[]).is_none());
        let mut bad = seg.clone();
        bad[TS_PACKET_LEN] = 0;
        assert!(mark_discontinuity(&bad).is_none());
    }
}
