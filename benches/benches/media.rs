//! Criterion benchmarks of gateway-media: encode speed per codec at 360p and 720p (frames/s,
//! on "clean" test-pattern frames and on "noisy" ones with per-frame pseudo-random luma noise,
//! a pessimistic stand-in for camera video), MPEG-TS mux and segmenter throughput, and the
//! frame helpers, and the frame queue in front of the encoder (push/pop with and without
//! overflow drops, debt skipping on). Sample sizes are small so `cargo bench -p benches --bench media` finishes in
//! about a minute on 2 cores.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use gateway_media::{
    rgb24_to_i420, Av1Config, Av1Encoder, Codec, EncodedPacket, FrameQueue, H264Config, H264Encoder,
    Rational, Segmenter, SegmenterConfig, TestPattern, TsMuxer, VideoEncoder, VideoFrame,
};

const FPS: u32 = 30;
/// Distinct frames cycled through while timing (preloaded: only encoding is measured).
const CLIP: u64 = 60;

/// Frames of the test pattern; `noisy` adds temporal noise of amplitude +-12 to luma.
fn clip(width: u32, height: u32, noisy: bool) -> Vec<VideoFrame> {
    let pattern = TestPattern::new(width, height, Rational::new(FPS, 1)).unwrap();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    (0..CLIP)
        .map(|i| {
            let f = pattern.frame(i);
            if !noisy {
                return f;
            }
            let mut y = f.y().to_vec();
            for px in y.iter_mut() {
                // xorshift64: cheap, deterministic noise.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let n = (seed % 25) as i16 - 12;
                *px = (i16::from(*px) + n).clamp(16, 235) as u8;
            }
            // Tightly packed planes (the pattern's strides equal the widths).
            y.extend_from_slice(f.u());
            y.extend_from_slice(f.v());
            VideoFrame::from_i420(width, height, f.pts(), f.time_base(), y).unwrap()
        })
        .collect()
}

/// Encodes the clip in a loop with increasing pts; one iteration = one frame.
fn run_encoder(
    c: &mut Criterion,
    group_name: &str,
    make: &dyn Fn(u32, u32) -> Box<dyn VideoEncoder>,
    cases: &[(u32, u32, bool)],
    slow: bool,
) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    if slow {
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
    } else {
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
    }
    for &(w, h, noisy) in cases {
        let frames = clip(w, h, noisy);
        let mut encoder = make(w, h);
        let mut n: u64 = 0;
        let id = BenchmarkId::new(if noisy { "noisy" } else { "clean" }, format!("{w}x{h}"));
        group.bench_function(id, |b| {
            b.iter(|| {
                let mut f = frames[(n % CLIP) as usize].clone();
                f.set_pts(n as i64, Rational::new(1, FPS)).unwrap();
                n += 1;
                encoder.encode(&f).unwrap()
            })
        });
    }
    group.finish();
}

fn encode_h264(c: &mut Criterion) {
    let make = |w, h| -> Box<dyn VideoEncoder> {
        let mut cfg = H264Config::new(w, h);
        cfg.bitrate_bps = if h <= 360 { 800_000 } else { 2_500_000 };
        Box::new(H264Encoder::new(cfg).unwrap())
    };
    let cases = [(640, 360, false), (640, 360, true), (1280, 720, false), (1280, 720, true)];
    run_encoder(c, "encode_h264_fps", &make, &cases, false);
}

fn encode_av1(c: &mut Criterion) {
    let make = |w, h| -> Box<dyn VideoEncoder> {
        let mut cfg = Av1Config::new(w, h);
        cfg.bitrate_bps = if h <= 360 { 800_000 } else { 2_500_000 };
        Box::new(Av1Encoder::new(cfg).unwrap())
    };
    let cases = [(640, 360, false), (640, 360, true), (1280, 720, false)];
    run_encoder(c, "encode_av1_speed10_fps", &make, &cases, true);
}

/// A fake H.264 access unit of `len` bytes (the muxer does not parse it).
fn access_unit(len: usize, pts: i64, keyframe: bool) -> EncodedPacket {
    let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
    data.extend((0..len - 5).map(|i| (i * 31 % 251) as u8));
    EncodedPacket { codec: Codec::H264, data: data.into(), pts, dts: pts, keyframe }
}

fn mux(c: &mut Criterion) {
    let mut group = c.benchmark_group("mpegts");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    // 10 KB ~ a 720p P-frame at 2.5 Mbit/s; 40 KB ~ an I-frame.
    for len in [10_000usize, 40_000] {
        let packet = access_unit(len, 0, true);
        group.throughput(Throughput::Bytes(len as u64));
        let mut muxer = TsMuxer::default();
        let mut out = Vec::with_capacity(2 * len);
        group.bench_function(BenchmarkId::new("write_pes", len), |b| {
            b.iter(|| {
                out.clear();
                muxer.write_pes(0, &packet, &mut out).unwrap();
                out.len()
            })
        });
    }
    // Segmenter on top: events, chunk Bytes, a segment cut every 60 frames.
    let packets: Vec<EncodedPacket> =
        (0..CLIP as i64).map(|i| access_unit(10_000, i * 3000, i == 0)).collect();
    group.throughput(Throughput::Bytes(10_000));
    let mut segmenter = Segmenter::mpegts(SegmenterConfig::default());
    let mut n: i64 = 0;
    group.bench_function("segmenter_push_10000", |b| {
        b.iter(|| {
            let mut p = packets[(n % CLIP as i64) as usize].clone();
            p.pts = n * 3000;
            p.dts = p.pts;
            n += 1;
            segmenter.push(&p).unwrap()
        })
    });
    group.finish();
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frames_720p");
    group.sample_size(20);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(1));
    let (w, h) = (1280u32, 720u32);
    let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i % 253) as u8).collect();
    group.bench_function("rgb24_to_i420", |b| b.iter(|| rgb24_to_i420(&rgb, w, h, 3 * w as usize).unwrap()));
    let pattern = TestPattern::new(w, h, Rational::new(FPS, 1)).unwrap();
    let mut i = 0u64;
    group.bench_function("test_pattern_frame", |b| {
        b.iter(|| {
            i += 1;
            pattern.frame(i)
        })
    });
    group.finish();
}

/// The frame queue between `write_frame` and the encoder: one iteration = one frame through.
/// Frames are `Bytes`-backed, so this measures the queue's bookkeeping, not pixel copies.
fn frame_queue(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_queue_720p");
    group.sample_size(30);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(1));
    let frame = TestPattern::new(1280, 720, Rational::new(FPS, 1)).unwrap().frame(0);
    let tb = Rational::new(1, FPS);
    // Steady state: the encoder keeps up (push one, pop one), debt skipping on as in the
    // publisher, each popped frame reported as encoded in 10 ms (faster than real time).
    let mut queue = FrameQueue::new(8).unwrap();
    queue.set_debt_skip(true);
    let mut pts: i64 = 0;
    group.bench_function("push_pop", |b| {
        b.iter(|| {
            let mut f = frame.clone();
            f.set_pts(pts, tb).unwrap();
            pts += 1;
            queue.push(f);
            let out = queue.pop().unwrap();
            queue.record_encode(out.pts_90k(), Duration::from_millis(10));
            out
        })
    });
    // The encoder is behind: the queue is full and every push drops the oldest frame.
    let mut queue = FrameQueue::new(8).unwrap();
    let mut pts: i64 = 0;
    group.bench_function("push_overflow", |b| {
        b.iter(|| {
            let mut f = frame.clone();
            f.set_pts(pts, tb).unwrap();
            pts += 1;
            queue.push(f)
        })
    });
    group.finish();
}

criterion_group!(benches, encode_h264, encode_av1, mux, frames, frame_queue);
criterion_main!(benches);
