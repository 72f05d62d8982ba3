//! `trickle publish` and `trickle subscribe` against a `local-network --trickle-autocreate`
//! child: stdin bytes make it through segments and back unchanged.

mod common;

use std::time::Duration;

use common::{run, run_with, LocalNet};

fn payload(len: usize) -> Vec<u8> {
    // Not compressible and not text, so nothing in between can hide a change.
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn publish_then_subscribe_round_trips_stdin() {
    let net = LocalNet::start(&["--trickle-autocreate"]);
    let channel = format!("{}/cli-round-trip", net.url("trickle"));
    let data = payload(10_000);
    let published = run_with(
        &["trickle", "publish", &channel, "--segment-bytes", "4096", "--keep-open"],
        Some(&data),
        &[],
        Duration::from_secs(20),
    );
    assert_eq!(published.code, Some(0), "{published:?}");
    assert!(published.stderr.contains("published 3 segment(s)"), "{}", published.stderr);

    let sub = std::process::Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["trickle", "subscribe", &channel, "--start", "0", "--count", "3"])
        .output()
        .unwrap();
    assert_eq!(sub.status.code(), Some(0), "{}", String::from_utf8_lossy(&sub.stderr));
    assert_eq!(sub.stdout.len(), data.len());
    assert!(sub.stdout == data, "the bytes differ");

    // One file per segment, named by its index.
    let dir = std::env::temp_dir().join(format!("lpg-trickle-{}", std::process::id()));
    let r = run(&[
        "trickle",
        "subscribe",
        &channel,
        "--start",
        "0",
        "--count",
        "3",
        "--output",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let mut joined = Vec::new();
    for seq in 0..3 {
        let part = std::fs::read(dir.join(format!("{seq}.bin"))).expect("segment file");
        assert_eq!(part.len(), if seq < 2 { 4096 } else { 10_000 - 2 * 4096 });
        joined.extend(part);
    }
    assert!(joined == data);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_deletes_the_channel_at_the_end_and_subscribers_see_it() {
    let net = LocalNet::start(&["--trickle-autocreate"]);
    let channel = format!("{}/cli-closed", net.url("trickle"));
    let r = run_with(&["trickle", "publish", &channel], Some(b"bye"), &[], Duration::from_secs(20));
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = run(&["trickle", "subscribe", &channel, "--start", "0"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("not found"), "{}", r.stderr);
}

/// 5 s of H.264 (a keyframe every 30 frames at 30 fps) and AAC in MPEG-TS, from Debian's ffmpeg.
fn real_ts() -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-c:v", "libx264", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0"])
        .args(["-c:a", "aac", "-t", "5", "-f", "mpegts", "pipe:1"])
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `--keyframes`: a real TS stream goes out without re-encoding, cut at the first keyframe
/// 2 s into each segment (1 s GOPs), and each segment read back decodes alone, every frame.
#[test]
fn keyframes_mode_publishes_a_real_ts_stream_in_segments_that_decode_alone() {
    let net = LocalNet::start(&["--trickle-autocreate"]);
    let channel = format!("{}/cli-ts", net.url("trickle"));
    let ts = real_ts();
    let published = run_with(
        &["trickle", "publish", &channel, "--keyframes", "--min-segment-ms", "2000", "--keep-open"],
        Some(&ts),
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(published.code, Some(0), "{published:?}");
    assert!(published.stderr.contains("published 3 segment(s)"), "{}", published.stderr);

    let dir = std::env::temp_dir().join(format!("lpg-trickle-ts-{}", std::process::id()));
    let args = ["trickle", "subscribe", &channel, "--start", "0", "--count", "3", "--output"];
    let r = run(&[&args[..], &[dir.to_str().unwrap()]].concat());
    assert_eq!(r.code, Some(0), "{r:?}");
    let frames: Vec<u64> = (0..3).map(|seq| common::ffprobe_frames(&dir.join(format!("{seq}.ts")))).collect();
    assert_eq!(frames, [60, 60, 30]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Input `--keyframes` cannot cut is refused with the reason before anything is published.
#[test]
fn keyframes_mode_refuses_input_that_is_not_ts() {
    let net = LocalNet::start(&["--trickle-autocreate"]);
    let channel = format!("{}/cli-not-ts", net.url("trickle"));
    let y4m = b"YUV4MPEG2 W320 H180 F30:1 C420\n".repeat(4000);
    let r =
        run_with(&["trickle", "publish", &channel, "--keyframes"], Some(&y4m), &[], Duration::from_secs(20));
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("not an MPEG transport stream"), "{}", r.stderr);
    assert!(r.stderr.contains("published 0 segment(s)"), "{}", r.stderr);
}
