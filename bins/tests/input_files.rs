//! Issue 16 (real inputs): `write-frames` and `byoc-write-frames` publish a Y4M file or pipe
//! made by Debian's ffmpeg instead of the test pattern, and what comes back reads whole in
//! ffprobe at the input's size with every frame; bad input is a usage error (exit 2) before any
//! network work, and input that breaks off mid-stream ends the run with exit 1 and the reason.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{mpegts, run_with, Run};

/// `frames` frames of ffmpeg's test source at `size` and 30 fps, as Y4M.
fn y4m(size: &str, frames: u32) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", &format!("testsrc=size={size}:rate=30")])
        .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Width, height and frame count ffprobe reads from `path`.
fn probe(path: &std::path::Path) -> (String, u64) {
    let out = Command::new("ffprobe")
        .args(["-v", "warning", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=width,height,nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_owned();
    let fields: Vec<&str> = line.split(',').collect();
    (format!("{}x{}", fields[0], fields[1]), fields[2].trim().parse().unwrap())
}

fn encoded(r: &Run) -> u64 {
    r.all()
        .lines()
        .find_map(|l| l.strip_prefix("video in: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a video in line")
}

#[test]
fn a_y4m_file_and_a_y4m_pipe_are_published_and_come_back_whole() {
    let dir = std::env::temp_dir().join(format!("lpgw-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.y4m");
    std::fs::write(&input, y4m("320x240", 75)).unwrap();

    // A file, as fast as the encoder takes it.
    let out = dir.join("out.ts");
    let r = run_with(
        &["write-frames", "--input", input.to_str().unwrap(), "--no-pace", "--output", out.to_str().unwrap()],
        None,
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(encoded(&r), 75, "every input frame encoded: {}", r.all());
    assert_eq!(probe(&out), ("320x240".to_owned(), 75));

    // A pipe on stdin, live at the input's rate, through a BYOC job with --count.
    let out = dir.join("byoc.ts");
    let r = run_with(
        &["byoc-write-frames", "--input", "-", "--count", "40", "--output", out.to_str().unwrap()],
        Some(&y4m("160x120", 60)),
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let (size, frames) = probe(&out);
    assert_eq!(size, "160x120");
    assert_eq!(frames, encoded(&r));
    assert!(frames >= 35, "a live publisher may drop a few frames, not more: {frames} of 40");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Refused with exit 2 and a reason naming the problem, before any network work: the network
/// flags point at closed ports, so getting that far would be a connection error instead.
#[test]
fn bad_y4m_input_is_a_usage_error_before_any_job() {
    let cases: [(&[u8], &str); 4] = [
        (b"RIFF....WAVEfmt ", "not a Y4M stream"),
        (b"YUV4MPEG2 W320 H24", "truncated"),
        (b"YUV4MPEG2 W321 H240 F30:1\n", "odd side"),
        (b"YUV4MPEG2 W320 H240 F30:1 C444\n", "convert to 8-bit 4:2:0"),
    ];
    for (input, reason) in cases {
        let r = run_with(
            &[
                "write-frames",
                "--input",
                "-",
                "--orchestrator",
                "127.0.0.1:1",
                "--signer",
                "http://127.0.0.1:1",
            ],
            Some(input),
            &[],
            Duration::from_secs(30),
        );
        assert_eq!(r.code, Some(2), "{reason}: {r:?}");
        assert!(r.stderr.contains("--input -: ") && r.stderr.contains(reason), "{reason}: {}", r.stderr);
    }
    let r = run_with(&["write-frames", "--input", "/nonexistent/in.y4m"], None, &[], Duration::from_secs(30));
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("cannot open --input /nonexistent/in.y4m"), "{}", r.stderr);
}

/// Input that breaks off inside a frame: what came before is published, the run exits 1 with
/// the reason.
#[test]
fn y4m_input_cut_mid_frame_ends_the_run_with_the_reason() {
    let mut input = y4m("160x120", 20);
    input.truncate(input.len() - 1000);
    let r =
        run_with(&["write-frames", "--input", "-", "--no-pace"], Some(&input), &[], Duration::from_secs(90));
    assert_eq!(r.code, Some(1), "{r:?}");
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("the input broke off after 19 frames, which were published: Y4M frame 19 is truncated"),
        "{}",
        r.stderr
    );
    assert_eq!(encoded(&r), 19, "every frame before the break is encoded: {}", r.all());
}

/// `--output FILE --decode`: the job's output decoded to Y4M, every frame, readable by ffprobe
/// and by our reader; the test pattern's burned-in counter reads back in order.
#[test]
fn decoded_output_is_y4m_with_every_frame_in_order() {
    let dir = std::env::temp_dir().join(format!("lpgw-decode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.y4m");
    let r = run_with(
        &["write-frames", "--count", "60", "--no-pace", "--output", out.to_str().unwrap(), "--decode"],
        None,
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.all().contains(&format!("{} frames decoded", encoded(&r))), "{}", r.all());
    assert_eq!(probe(&out), ("640x360".to_owned(), encoded(&r)));
    let mut reader = gateway_media::y4m::Y4mReader::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut counters = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        counters.push(gateway_media::TestPattern::read_counter(&frame).expect("the counter reads back"));
    }
    assert_eq!(counters, (0..60).collect::<Vec<u64>>());
    std::fs::remove_dir_all(&dir).unwrap();

    let r = run_with(
        &["byoc-write-frames", "--codec", "av1", "--output", "-", "--decode"],
        None,
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--decode reads H.264 output only"), "{}", r.stderr);
}

/// MPEG-TS input is published as it is (no encoder): every access unit goes out and comes back.
#[test]
fn an_mpegts_file_and_pipe_are_published_as_they_are_and_come_back_whole() {
    let dir = std::env::temp_dir().join(format!("lpgw-input-ts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.ts");
    std::fs::write(&input, mpegts(5, true)).unwrap();

    // A file, as fast as the job takes it.
    let out = dir.join("out.ts");
    let r = run_with(
        &["write-frames", "--input", input.to_str().unwrap(), "--no-pace", "--output", out.to_str().unwrap()],
        None,
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(encoded(&r), 150, "every access unit published: {}", r.all());
    assert_eq!(probe(&out), ("320x180".to_owned(), 150));

    // A pipe on stdin, at the stream's own pace, through a BYOC job.
    let out = dir.join("byoc.ts");
    let r = run_with(
        &["byoc-write-frames", "--input", "-", "--output", out.to_str().unwrap()],
        Some(&mpegts(5, true)),
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(encoded(&r), 150, "{}", r.all());
    assert_eq!(probe(&out), ("320x180".to_owned(), 150));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// MPEG-TS that cannot be published is refused with exit 2 and the reason, before any job.
#[test]
fn mpegts_without_video_or_for_av1_is_a_usage_error() {
    let offline = ["--orchestrator", "127.0.0.1:1", "--signer", "http://127.0.0.1:1"];
    let r = run_with(
        &[&["write-frames", "--input", "-"][..], &offline[..]].concat(),
        Some(&mpegts(5, false)),
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--input -: ") && r.stderr.contains("no video stream"), "{}", r.stderr);

    let r = run_with(
        &[&["byoc-write-frames", "--input", "-", "--codec", "av1"][..], &offline[..]].concat(),
        Some(&mpegts(5, true)),
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("published as it is"), "{}", r.stderr);
}
