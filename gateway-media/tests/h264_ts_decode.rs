//! H.264 in MPEG-TS, checked by real decoders: every segment alone and the concatenation must
//! decode in ffprobe/ffmpeg and in the official Python SDK's PyAV decoder with the right frame
//! count, size, timestamps and (via the burned-in counter) the right pictures in order.

mod common;

use std::time::Duration;

use common::*;
use livepeer_gateway_media::{H264Config, H264Encoder, Rational, Segmenter};

const W: u32 = 320;
const H: u32 = 180;
const FPS: u32 = 30;
const FRAMES: u64 = 150; // 5 s: segments of 60, 60 and 30 frames
const TICKS_PER_FRAME: i64 = 3000;

fn encode() -> Vec<Segment> {
    let mut cfg = H264Config::new(W, H);
    cfg.frame_rate = Rational::new(FPS, 1);
    cfg.bitrate_bps = 600_000;
    let mut enc = H264Encoder::new(cfg).unwrap();
    let segmenter = Segmenter::mpegts(segmenter_config(Duration::from_secs(2)));
    let segs = encode_segments(&mut enc, segmenter, &pattern(W, H, FPS), FRAMES);
    assert_eq!(enc.skipped_frames(), 0);
    segs
}

fn expected_pts(range: std::ops::Range<u64>) -> Vec<i64> {
    range.map(|i| i as i64 * TICKS_PER_FRAME).collect()
}

#[test]
fn segments_are_cut_per_gop_and_stream_chunk_by_chunk() {
    let segs = encode();
    let frames: Vec<u64> = segs.iter().map(|s| s.summary.frames).collect();
    assert_eq!(frames, vec![60, 60, 30]);
    let durations: Vec<Duration> = segs.iter().map(|s| s.summary.duration).collect();
    assert_eq!(durations, vec![Duration::from_secs(2), Duration::from_secs(2), Duration::from_secs(1)]);
    for s in &segs {
        // One chunk per access unit: a consumer gets bytes as each frame is encoded.
        assert_eq!(s.chunks as u64, s.summary.frames);
        assert_eq!(s.bytes.len() % 188, 0);
    }
    // Easy content undershoots; what matters live is never overshooting the target.
    let total: usize = segs.iter().map(|s| s.bytes.len()).sum();
    let kbps = total as f64 * 8.0 / 5.0 / 1000.0;
    assert!(kbps < 900.0, "{kbps:.0} kbit/s for a 600 kbit/s target");
}

#[test]
fn ffprobe_decodes_each_segment_alone_and_the_concatenation() {
    let segs = encode();
    let dir = temp_dir("h264-ffprobe");
    let mut start = 0u64;
    let mut all = Vec::new();
    for s in &segs {
        let path = write(&dir, &format!("{}.ts", s.summary.index), &s.bytes);
        let p = ffprobe(&path);
        let end = start + s.summary.frames;
        assert_eq!(p.codec, "h264");
        assert_eq!((p.width, p.height), (u64::from(W), u64::from(H)));
        assert_eq!(p.pts, expected_pts(start..end), "segment {}", s.summary.index);
        assert_eq!(s.summary.start_pts, start as i64 * TICKS_PER_FRAME);
        // Starts on an IDR, and that is its only keyframe.
        assert_eq!(p.keyframes.iter().filter(|&&k| k).count(), 1);
        assert!(p.keyframes[0]);
        // The right pictures, in order.
        let counters = ffmpeg_counters(&path, W as usize, H as usize);
        let want: Vec<Option<u64>> = (start..end).map(Some).collect();
        assert_eq!(counters, want, "segment {}", s.summary.index);
        all.extend_from_slice(&s.bytes);
        start = end;
    }

    let path = write(&dir, "all.ts", &all);
    let p = ffprobe(&path);
    assert_eq!(p.pts, expected_pts(0..FRAMES));
    assert_eq!(
        p.keyframes.iter().enumerate().filter(|(_, &k)| k).map(|(i, _)| i).collect::<Vec<_>>(),
        vec![0, 60, 120]
    );
    let counters = ffmpeg_counters(&path, W as usize, H as usize);
    assert_eq!(counters, (0..FRAMES).map(Some).collect::<Vec<_>>());

    // A live consumer reads from a pipe, with no seeking.
    let piped = ffprobe_stdin(&all, "mpegts");
    assert_eq!(piped.pts, expected_pts(0..FRAMES));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn python_sdk_decoder_reads_each_segment_and_the_concatenation() {
    let segs = encode();
    let dir = temp_dir("h264-pyav");
    let mut paths = Vec::new();
    let mut all = Vec::new();
    for s in &segs {
        paths.push(write(&dir, &format!("{}.ts", s.summary.index), &s.bytes));
        all.extend_from_slice(&s.bytes);
    }
    paths.push(write(&dir, "all.ts", &all));
    let decoded = py_decode(&paths);
    assert_eq!(decoded.len(), segs.len() + 1);

    let mut start = 0u64;
    for (s, d) in segs.iter().zip(&decoded) {
        let end = start + s.summary.frames;
        assert_eq!(d.count as u64, s.summary.frames, "segment {}", s.summary.index);
        assert!(d.widths.iter().all(|&w| w == u64::from(W)));
        assert!(d.heights.iter().all(|&h| h == u64::from(H)));
        assert_eq!(d.pts, expected_pts(start..end));
        assert_eq!(d.time_base, "1/90000");
        start = end;
    }
    let whole = decoded.last().unwrap();
    assert_eq!(whole.count as u64, FRAMES);
    assert_eq!(whole.pts, expected_pts(0..FRAMES));
    std::fs::remove_dir_all(&dir).ok();
}
