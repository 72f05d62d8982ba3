//! The whole path a caller's frames take: FrameQueue -> H264Encoder -> Segmenter, with an
//! encoder simulated slower than real time. Debt skipping must drop frames (counted), keyframes
//! must still follow media time, and what is left must decode in ffprobe with exactly the pts
//! of the frames that were encoded.

mod common;

use std::time::Duration;

use common::*;
use livepeer_gateway_media::{FrameQueue, H264Config, H264Encoder, SegmentEvent, Segmenter, VideoEncoder};

#[test]
fn slow_encoder_drops_by_debt_and_segments_still_decode() {
    let (w, h, fps) = (320u32, 180u32, 30u32);
    let pattern = pattern(w, h, fps);
    let mut queue = FrameQueue::new(8).unwrap();
    let mut encoder = H264Encoder::new(H264Config::new(w, h)).unwrap();
    let mut segmenter = Segmenter::mpegts(segmenter_config(Duration::from_secs(2)));

    // Simulated clock: frame i arrives at i/30 s; every encode "takes" 50 ms (1.5 frame times).
    let arrival = |i: u64| Duration::from_secs_f64(i as f64 / f64::from(fps));
    let encode_cost = Duration::from_millis(50);
    let total = 180u64; // 6 s of input
    let mut now = Duration::ZERO;
    let mut next = 0u64;
    let mut encoded_pts = Vec::new();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut keyframe_pts = Vec::new();
    loop {
        while next < total && arrival(next) <= now {
            queue.push(pattern.frame(next));
            next += 1;
        }
        let Some(frame) = queue.pop() else {
            if next >= total {
                break;
            }
            now = arrival(next);
            continue;
        };
        let packets = encoder.encode(&frame).unwrap();
        now += encode_cost;
        queue.record_encode(frame.pts_90k(), encode_cost);
        for p in packets {
            encoded_pts.push(p.pts);
            if p.keyframe {
                keyframe_pts.push(p.pts);
            }
            for e in segmenter.push(&p).unwrap() {
                match e {
                    SegmentEvent::SegmentStart { .. } => segments.push(Vec::new()),
                    SegmentEvent::Chunk(c) => segments.last_mut().unwrap().extend_from_slice(&c),
                    SegmentEvent::SegmentEnd(_) => {}
                }
            }
        }
    }
    segmenter.finish();

    let stats = queue.stats();
    eprintln!("{stats:?}");
    // Encoding at 20 fps against 30 fps input: about a third of the frames must go, by debt
    // (the queue never fills because the debt rule keeps up with the input).
    assert_eq!(stats.frames_in, total);
    assert_eq!(stats.frames_out + stats.dropped_debt + stats.dropped_overflow + stats.depth as u64, total);
    // 6 s at 20 fps of encoder capacity: about 120 frames encoded, 60 dropped.
    assert!((50..=65).contains(&stats.dropped_debt), "{stats:?}");
    assert_eq!(stats.dropped_overflow, 0);
    assert_eq!(stats.frames_out as usize, encoded_pts.len());
    assert!(encoded_pts.windows(2).all(|w| w[1] > w[0]));

    // Keyframes by media time: first frame at or after each 2 s mark since the last one.
    assert_eq!(keyframe_pts[0], 0);
    for k in keyframe_pts.windows(2) {
        assert!(k[1] - k[0] >= 180_000 && k[1] - k[0] < 180_000 + 3 * 3000, "{keyframe_pts:?}");
    }
    assert_eq!(segments.len(), keyframe_pts.len());

    // Every segment decodes alone with exactly the encoded pts, in order.
    let dir = temp_dir("pipeline");
    let mut decoded = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let p = ffprobe(&write(&dir, &format!("{i}.ts"), s));
        assert!(p.keyframes[0]);
        assert_eq!((p.width, p.height), (u64::from(w), u64::from(h)));
        decoded.extend(p.pts);
    }
    assert_eq!(decoded, encoded_pts);
    std::fs::remove_dir_all(&dir).ok();
}
