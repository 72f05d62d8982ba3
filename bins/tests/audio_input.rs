//! Issue 16 (audio): `write-frames --audio` sends WAV (a file or a pipe, any rate) beside the
//! video as Opus in the same MPEG-TS; what comes back holds both tracks in ffprobe, the audio as
//! long as the video; audio that cannot go is a usage error (exit 2) before any network work.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{mpegts, run_with, Run};

/// `seconds` of a 440 Hz tone at `rate`, stereo, as WAV.
fn wav(rate: u32, seconds: u32) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"),
        ])
        .args(["-ac", "2", "-c:a", "pcm_s16le", "-f", "wav", "-"])
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The `audio in:` line's numbers: frames, encoded, dropped, refused, packets.
fn audio_in(r: &Run) -> Vec<u64> {
    let line = r
        .all()
        .lines()
        .find_map(|l| l.strip_prefix("audio in: ").map(str::to_owned))
        .expect("an audio in line");
    line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect()
}

/// Codec type and name of every stream, and the audio's duration in seconds.
fn streams(path: &std::path::Path) -> (Vec<String>, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    // ffprobe lists the streams under the program and again on their own.
    let mut kinds: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
        if !kinds.iter().any(|k| k == line) {
            kinds.push(line.to_owned());
        }
    }
    let pcm = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "s16le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(pcm.status.success() && pcm.stderr.is_empty(), "{}", String::from_utf8_lossy(&pcm.stderr));
    (kinds, pcm.stdout.len() as f64 / 2.0 / 48_000.0)
}

#[test]
fn wav_audio_goes_out_with_the_video_from_a_file_and_a_pipe() {
    let dir = std::env::temp_dir().join(format!("lpgw-audio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.wav");
    std::fs::write(&input, wav(44_100, 4)).unwrap();

    // A 44.1 kHz file with 60 frames (2 s) of the test pattern, as fast as the encoder goes.
    let out = dir.join("out.ts");
    let r = run_with(
        &[
            "write-frames",
            "--count",
            "60",
            "--no-pace",
            "--audio",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        None,
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let n = audio_in(&r);
    // 2 s of 20 ms frames: 100, all encoded; none dropped or refused.
    assert_eq!(&n[..4], [100, 100, 0, 0], "{}", r.all());
    let (kinds, seconds) = streams(&out);
    assert_eq!(kinds, ["h264,video", "opus,audio"], "{}", r.all());
    assert!((seconds - 2.0).abs() < 0.05, "{seconds} s of audio for 2 s of video");

    // A pipe on stdin, live, through a BYOC job.
    let out = dir.join("byoc.ts");
    let r = run_with(
        &["byoc-write-frames", "--count", "30", "--audio", "-", "--output", out.to_str().unwrap()],
        Some(&wav(48_000, 2)),
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let n = audio_in(&r);
    assert_eq!((n[0], n[3]), (50, 0), "{}", r.all());
    let (kinds, seconds) = streams(&out);
    assert_eq!(kinds, ["h264,video", "opus,audio"]);
    assert!(seconds > 0.9, "{seconds} s of audio");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Arguments, stdin, and the reason the refusal must name.
type Case<'a> = (Vec<&'a str>, Option<&'a [u8]>, &'a str);

/// Refused with exit 2 and the reason, before any network work (the flags point at closed
/// ports, so getting further would be a connection error instead).
#[test]
fn audio_that_cannot_go_is_a_usage_error_before_any_job() {
    let dir = std::env::temp_dir().join(format!("lpgw-audio-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ts = dir.join("in.ts");
    std::fs::write(&ts, mpegts(1, true)).unwrap();
    let wav_file = dir.join("in.wav");
    std::fs::write(&wav_file, wav(48_000, 1)).unwrap();
    let closed = ["--orchestrator", "127.0.0.1:1", "--signer", "http://127.0.0.1:1"];
    let cases: Vec<Case> = vec![
        (vec!["write-frames", "--audio", "-"], Some(b"not audio at all"), "not a WAV stream"),
        (vec!["write-frames", "--audio", "-"], Some(b"RIFF"), "not a WAV stream"),
        (vec!["write-frames", "--audio", "/nonexistent/a.wav"], None, "cannot open --audio"),
        (
            vec!["write-frames", "--input", ts.to_str().unwrap(), "--audio", wav_file.to_str().unwrap()],
            None,
            "carries its own audio",
        ),
        (
            vec!["byoc-write-frames", "--codec", "av1", "--audio", wav_file.to_str().unwrap()],
            None,
            "with H.264",
        ),
        (
            vec!["write-frames", "--input", "-", "--audio", "-"],
            Some(b"YUV4MPEG2 W320 H240 F30:1\n"),
            "cannot both read stdin",
        ),
    ];
    for (mut args, stdin, reason) in cases {
        args.extend(closed);
        let r = run_with(&args, stdin, &[], Duration::from_secs(30));
        assert_eq!(r.code, Some(2), "{reason}: {r:?}");
        assert!(r.stderr.contains(reason), "{reason}: {}", r.stderr);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
