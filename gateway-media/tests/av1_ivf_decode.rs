//! AV1 in IVF, checked by ffprobe/ffmpeg: each segment alone and one whole-stream file decode
//! with the right frame count, size, timestamps and pictures. Small frames keep this fast in
//! debug builds. Note: rav1e is generic over the pixel type, so its encoder is instantiated
//! (and optimised) with *this* crate's opt-level; the root profile's rav1e override alone does
//! not make it fast in debug.

mod common;

use std::time::Duration;

use common::*;
use livepeer_gateway_media::{Av1Config, Av1Encoder, IvfMuxer, Rational, Segmenter};

const W: u32 = 320;
const H: u32 = 180;
const FPS: u32 = 30;
const FRAMES: u64 = 60; // 2 s with a keyframe every 0.8 s: segments of 24, 24, 12
const TICKS_PER_FRAME: i64 = 3000;

#[test]
fn ivf_segments_decode_alone_and_as_one_stream() {
    let mut cfg = Av1Config::new(W, H);
    cfg.frame_rate = Rational::new(FPS, 1);
    cfg.keyframe_interval = Duration::from_millis(800);
    let mut enc = Av1Encoder::new(cfg).unwrap();
    let segmenter =
        Segmenter::with_muxer(IvfMuxer::new(W, H).unwrap(), segmenter_config(Duration::from_millis(800)));
    let segs = encode_segments(&mut enc, segmenter, &pattern(W, H, FPS), FRAMES);
    let frames: Vec<u64> = segs.iter().map(|s| s.summary.frames).collect();
    assert_eq!(frames, vec![24, 24, 12]);

    let dir = temp_dir("av1-ivf");
    let mut start = 0u64;
    // One stream file = first segment's header, then every segment without its 32-byte header.
    let mut whole = Vec::new();
    for s in &segs {
        let path = write(&dir, &format!("{}.ivf", s.summary.index), &s.bytes);
        let p = ffprobe(&path);
        let end = start + s.summary.frames;
        assert_eq!(p.codec, "av1");
        assert_eq!((p.width, p.height), (u64::from(W), u64::from(H)));
        let want: Vec<i64> = (start..end).map(|i| i as i64 * TICKS_PER_FRAME).collect();
        assert_eq!(p.pts, want, "segment {}", s.summary.index);
        assert!(p.keyframes[0], "segment {} starts on a key frame", s.summary.index);
        let counters = ffmpeg_counters(&path, W as usize, H as usize);
        assert_eq!(counters, (start..end).map(Some).collect::<Vec<_>>());
        whole.extend_from_slice(if whole.is_empty() { &s.bytes } else { &s.bytes[32..] });
        start = end;
    }
    let p = ffprobe(&write(&dir, "all.ivf", &whole));
    assert_eq!(p.pts.len() as u64, FRAMES);
    // ffmpeg reads IVF from a pipe too.
    let piped = ffprobe_stdin(&whole, "ivf");
    assert_eq!(piped.pts, (0..FRAMES as i64).map(|i| i * TICKS_PER_FRAME).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).ok();
}
