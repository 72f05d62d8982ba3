//! Tests of the segmenter: cuts at keyframes, headers per segment, refused packets, and
//! audio interleaved by time.

use super::*;
use crate::av1::ivf::{IvfMuxer, IVF_HEADER_LEN};
use crate::encoder::Codec;
use crate::ts::mux::{TsConfig, DEFAULT_AUDIO_PID, DEFAULT_PMT_PID, PAT_PID, TS_PACKET_LEN};

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
    assert!(s.finish().is_empty());
}

#[test]
fn event_order_at_a_cut() {
    let mut s = Segmenter::mpegts(SegmenterConfig { target_duration: Duration::from_millis(50) });
    let first = s.push(&pkt(0, true)).unwrap();
    assert!(matches!(first.as_slice(), [SegmentEvent::SegmentStart { index: 0 }, SegmentEvent::Chunk(_)]));
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

fn opus(i: i64) -> EncodedPacket {
    // 20 ms packets: 1800 ticks of the 90 kHz clock.
    EncodedPacket {
        codec: Codec::Opus,
        data: Bytes::from(vec![0xFC; 40]),
        pts: i * 1800,
        dts: i * 1800,
        keyframe: true,
    }
}

fn av_segmenter() -> Segmenter {
    Segmenter::with_muxer(TsMuxer::new(TsConfig::with_opus(2, 312)).unwrap(), SegmenterConfig::default())
}

/// Audio PES start (pts) per segment, read back from the TS chunks.
fn audio_pes_pts(events: &[SegmentEvent]) -> Vec<Vec<i64>> {
    let mut out: Vec<Vec<i64>> = Vec::new();
    for e in events {
        match e {
            SegmentEvent::SegmentStart { .. } => out.push(Vec::new()),
            SegmentEvent::Chunk(c) => {
                for p in c.chunks(TS_PACKET_LEN) {
                    let start = p[1] & 0x40 != 0;
                    if pid(p) == DEFAULT_AUDIO_PID && start {
                        let off = if p[3] & 0x20 != 0 { 5 + usize::from(p[4]) } else { 4 };
                        out.last_mut().unwrap().push(crate::ts::demux::read_timestamp(&p[off + 9..off + 14]));
                    }
                }
            }
            SegmentEvent::SegmentEnd(_) => {}
        }
    }
    out
}

fn summaries(events: &[SegmentEvent]) -> Vec<SegmentSummary> {
    events
        .iter()
        .filter_map(|e| match e {
            SegmentEvent::SegmentEnd(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn audio_is_interleaved_by_time_in_100_ms_units_and_stays_in_its_segment() {
    let mut s = av_segmenter();
    let mut events = Vec::new();
    // 5 s: video at 30 fps with a keyframe every second, audio every 20 ms, pushed in time
    // order with the audio a packet ahead (it encodes faster).
    let (mut v, mut a) = (0i64, 0i64);
    while v < 150 {
        if a * 1800 <= v * 3000 + 1800 {
            events.extend(s.push(&opus(a)).unwrap());
            a += 1;
        } else {
            events.extend(s.push(&pkt(v, v % 30 == 0)).unwrap());
            v += 1;
        }
    }
    events.extend(s.finish());
    let ends = summaries(&events);
    assert_eq!(ends.iter().map(|e| e.frames).collect::<Vec<_>>(), [60, 60, 30]);
    assert_eq!(ends.iter().map(|e| e.audio_packets).sum::<u64>(), a as u64, "every audio packet is written");
    assert_eq!(s.audio_dropped(), 0);
    let pes = audio_pes_pts(&events);
    for (i, seg) in pes.iter().enumerate() {
        let (start, next) = (ends[i].start_pts, ends.get(i + 1).map_or(i64::MAX, |e| e.start_pts));
        for w in seg.windows(2) {
            assert!(w[1] > w[0], "audio in pts order: {seg:?}");
            assert!(w[1] - w[0] <= 9000, "units of about 100 ms: {seg:?}");
        }
        assert!(seg.iter().all(|&p| p < next), "segment {i} holds audio of the next: {seg:?}");
        assert!(seg.iter().skip(1).all(|&p| p >= start - 9000), "segment {i} holds old audio: {seg:?}");
    }
}

#[test]
fn audio_before_the_first_keyframe_opens_the_first_segment_and_old_audio_is_counted() {
    let mut s = av_segmenter();
    let mut events = Vec::new();
    // 3 s of audio while the video encoder warms up: 2 s are held, the rest dropped and
    // counted.
    for i in 0..150 {
        events.extend(s.push(&opus(i)).unwrap());
    }
    assert!(events.is_empty(), "nothing goes out before a segment opens");
    let first = EncodedPacket { pts: 150 * 1800, dts: 150 * 1800, ..pkt(0, true) };
    events.extend(s.push(&first).unwrap());
    events.extend(s.finish());
    let ends = summaries(&events);
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0].frames, 1);
    assert_eq!(ends[0].audio_packets + s.audio_dropped(), 150, "every packet written or counted");
    assert!(s.audio_dropped() > 0 && s.audio_dropped() < 60, "{}", s.audio_dropped());
    // The first chunk: PAT, PMT, then the held audio ahead of the keyframe.
    let SegmentEvent::Chunk(c) = &events[1] else { panic!("{events:?}") };
    assert_eq!(pid(&c[..]), PAT_PID);
    assert_eq!(pid(&c[2 * TS_PACKET_LEN..]), DEFAULT_AUDIO_PID);
}

#[test]
fn audio_alone_is_cut_by_time() {
    let mut s =
        Segmenter::with_muxer(TsMuxer::new(TsConfig::opus_only(1, 312)).unwrap(), SegmenterConfig::default());
    let mut events = Vec::new();
    for i in 0..250 {
        events.extend(s.push(&opus(i)).unwrap());
    }
    events.extend(s.finish());
    let ends = summaries(&events);
    assert_eq!(
        ends.iter().map(|e| (e.start_pts, e.audio_packets, e.duration)).collect::<Vec<_>>(),
        [
            (0, 100, Duration::from_secs(2)),
            (180_000, 100, Duration::from_secs(2)),
            (360_000, 50, Duration::from_secs(1)),
        ]
    );
}

#[test]
fn a_muxer_without_audio_refuses_it() {
    let mut s = Segmenter::mpegts(SegmenterConfig::default());
    assert!(matches!(s.push(&opus(0)), Err(SegmentError::Mux(MuxError::CodecMismatch { .. }))));
}
