//! The TS cutter on a real file from Debian's ffmpeg (H.264 with a 1 s GOP plus AAC audio):
//! segments start on keyframes with the PAT and PMT, decode alone in ffprobe with both tracks,
//! pass every packet after the first keyframe through unchanged, and do not depend on how the
//! input is chunked; bad input is a typed error.

mod common;

use std::process::Command;

use common::*;
use livepeer_gateway_media::ts::cutter::{CutError, TsCutter, TsCutterConfig};
use livepeer_gateway_media::{SegmentEvent, TsDemuxer};

/// 5 s of 320x180 at 30 fps, keyframe every 30 frames, with 48 kHz audio (AAC), as MPEG-TS.
fn source(audio_only: bool) -> Vec<u8> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    if !audio_only {
        cmd.args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"]);
        cmd.args(["-c:v", "libx264", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0"]);
    }
    cmd.args(["-c:a", "aac", "-t", "5", "-f", "mpegts", "pipe:1"]);
    run(&mut cmd, None)
}

/// Cuts `input` fed in pieces of `piece` bytes; answers whole segments.
fn cut(input: &[u8], piece: usize) -> (Vec<Vec<u8>>, TsCutter) {
    let mut cutter = TsCutter::new(TsCutterConfig::default());
    let mut events = Vec::new();
    for chunk in input.chunks(piece) {
        events.extend(cutter.push(chunk).unwrap());
    }
    events.extend(cutter.finish().unwrap());
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut open = false;
    for e in events {
        match e {
            SegmentEvent::SegmentStart { index } => {
                assert!(!open && index == segments.len() as u64);
                segments.push(Vec::new());
                open = true;
            }
            SegmentEvent::Chunk(b) => {
                assert!(open, "a chunk outside a segment");
                segments.last_mut().unwrap().extend_from_slice(&b);
            }
            SegmentEvent::SegmentEnd(summary) => {
                assert!(open);
                assert_eq!(summary.bytes, segments.last().unwrap().len() as u64);
                open = false;
            }
        }
    }
    assert!(!open, "the last segment was not ended");
    (segments, cutter)
}

fn pid(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2])
}

#[test]
fn a_real_stream_is_cut_on_its_keyframes_and_each_segment_decodes_alone() {
    let input = source(false);
    let (segments, cutter) = cut(&input, 4096);
    assert_eq!(segments.len(), 5, "one segment per 1 s GOP");
    let stats = cutter.stats();
    assert_eq!(stats.keyframes, 5);
    let dir = temp_dir("ts_cutter");
    let mut frames = 0;
    for (i, s) in segments.iter().enumerate() {
        assert_eq!(s.len() % 188, 0);
        assert_eq!(pid(&s[..188]), 0, "segment {i} starts with the PAT");
        let probe = ffprobe(&write(&dir, &format!("{i}.ts"), s));
        assert_eq!((probe.codec.as_str(), probe.width, probe.height), ("h264", 320, 180));
        assert_eq!(probe.keyframes.first(), Some(&true), "segment {i} starts on a keyframe");
        frames += probe.pts.len();
        // The audio track is there too.
        let streams = run(
            Command::new("ffprobe").args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name",
                "-of",
                "csv=p=0",
                dir.join(format!("{i}.ts")).to_str().unwrap(),
            ]),
            None,
        );
        let streams = String::from_utf8(streams).unwrap();
        assert!(streams.contains("aac") && streams.contains("h264"), "segment {i}: {streams}");
    }
    assert_eq!(frames, 150, "every frame of the source decodes from the segments");
    // Nothing but the PAT/PMT copies is added, nothing after the first keyframe is lost.
    let total: usize = segments.iter().map(Vec::len).sum();
    let added = total as u64 - (input.len() as u64 - stats.bytes_before_first_keyframe);
    assert_eq!(added, 5 * 2 * 188, "a PAT and a PMT per segment");
    assert_eq!(stats.bytes_out, total as u64);
    // Our demuxer reads the joined segments whole.
    let mut demux = TsDemuxer::new();
    let mut units = demux.push(&segments.concat());
    units.extend(demux.finish());
    assert_eq!(units.len(), 150);
    assert_eq!(demux.stats().issues(), 0, "{:?}", demux.last_issue());
}

#[test]
fn the_cut_does_not_depend_on_how_the_input_is_chunked() {
    let input = source(false);
    let (whole, _) = cut(&input, input.len());
    for piece in [1, 187, 188 * 7 + 3] {
        let (pieces, _) = cut(&input, piece);
        assert!(pieces == whole, "pieces of {piece} bytes cut differently");
    }
}

#[test]
fn a_longer_minimum_groups_gops() {
    let input = source(false);
    let mut cutter = TsCutter::new(TsCutterConfig { min_duration: std::time::Duration::from_secs(2) });
    let mut events = cutter.push(&input).unwrap();
    events.extend(cutter.finish().unwrap());
    let starts = events.iter().filter(|e| matches!(e, SegmentEvent::SegmentStart { .. })).count();
    assert_eq!(starts, 3, "2 s, 2 s and the last 1 s");
}

#[test]
fn a_stream_without_video_or_not_a_stream_is_a_typed_error() {
    let audio = source(true);
    let mut cutter = TsCutter::new(TsCutterConfig::default());
    cutter.push(&audio).unwrap();
    assert!(matches!(cutter.finish(), Err(CutError::NoVideo { .. })));

    let mut cutter = TsCutter::new(TsCutterConfig::default());
    let text = b"YUV4MPEG2 W320 H180 F30:1\n".repeat(4000);
    let err = cutter.push(&text).unwrap_err();
    assert!(matches!(err, CutError::NotTransportStream { .. }), "{err}");

    // A truncated real stream: what was whole still comes out, no panic.
    let input = source(false);
    let (segments, cutter) = cut(&input[..input.len() / 2 + 77], 1000);
    assert!(segments.len() >= 2);
    assert!(cutter.stats().bytes_skipped > 0);

    // Corrupted bytes anywhere: an answer, never a panic.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..20 {
        let mut bad = input.clone();
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % bad.len() as u64) as usize;
            bad[at] = (seed >> 32) as u8;
        }
        let mut cutter = TsCutter::new(TsCutterConfig::default());
        for chunk in bad.chunks(1000 + round) {
            let _ = cutter.push(chunk);
        }
        let _ = cutter.finish();
    }
}
