//! Issue 16 (audio): `write-frames --audio` sends WAV (a file or a pipe, any rate) beside the
//! video as Opus in the same MPEG-TS; what comes back holds both tracks in ffprobe, the audio as
//! long as the video, and `--output-audio` decodes the returning track into a WAV file ffprobe
//! reads, with the tone at its pitch. Audio that cannot go is a usage error (exit 2) before any
//! network work; an output with no audio for `--output-audio` fails the run. `--output-audio -`
//! streams the WAV on stdout; Ctrl-C still leaves a finished file.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{mpegts, run_with, Run};

/// `seconds` of a 440 Hz tone at `rate` in `channels`, as ffmpeg writes it with `output`
/// (its codec and format options).
fn sine(rate: u32, channels: u32, seconds: u32, output: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={rate}:duration={seconds}"))
        .args(["-ac", &channels.to_string()])
        .args(output)
        .arg("-")
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `seconds` of a 440 Hz tone at `rate`, stereo, as WAV.
fn wav(rate: u32, seconds: u32) -> Vec<u8> {
    sine(rate, 2, seconds, &["-c:a", "pcm_s16le", "-f", "wav"])
}

/// A scratch folder for one test (created if missing; the test removes it).
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lpgw-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
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

/// The WAV file's codec, channels and rate as ffprobe reads them, its seconds, and the pitch of
/// its first channel over up to a second after the first 0.2 s.
fn wav_out(path: &std::path::Path) -> (String, f64, f64) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,channels,sample_rate", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let probe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let pcm = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "s16le", "-af", "pan=mono|c0=c0", "-"])
        .output()
        .unwrap();
    assert!(pcm.status.success() && pcm.stderr.is_empty(), "{}", String::from_utf8_lossy(&pcm.stderr));
    let samples: Vec<i16> = pcm.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let second: Vec<i16> = samples.iter().skip(9_600).take(48_000).copied().collect();
    let hz = second.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count() as f64 * 48_000.0
        / second.len().max(1) as f64;
    (probe, samples.len() as f64 / 48_000.0, hz)
}

/// The WAV at `back` is `channels` of 48 kHz 16-bit PCM, `seconds` long (within 30 ms), and
/// holds the 440 Hz tone.
fn assert_tone_back(back: &std::path::Path, channels: u16, seconds: f64) {
    let (probe, wav_seconds, hz) = wav_out(back);
    assert_eq!(probe, format!("pcm_s16le,48000,{channels}"));
    assert!((wav_seconds - seconds).abs() < 0.03, "{wav_seconds} s back, {seconds} s expected");
    assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
}

/// The `audio out:` line's numbers: packets, samples.
fn audio_out(r: &Run) -> Vec<u64> {
    let line = r
        .all()
        .lines()
        .find_map(|l| l.strip_prefix("audio out: ").map(str::to_owned))
        .expect("an audio out line");
    line.split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|s| !s.is_empty() && !s.contains('.'))
        .map(|s| s.parse().unwrap())
        .collect()
}

#[test]
fn wav_audio_goes_out_with_the_video_from_a_file_and_a_pipe() {
    let dir = scratch("audio");
    let input = dir.join("in.wav");
    std::fs::write(&input, wav(44_100, 4)).unwrap();

    // A 44.1 kHz file with 60 frames (2 s) of the test pattern, as fast as the encoder goes.
    let out = dir.join("out.ts");
    let back = dir.join("back.wav");
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
            "--output-audio",
            back.to_str().unwrap(),
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
    // The track came back decoded: every packet, 2 s less the encoder's lookahead, at 440 Hz.
    let (packets, samples) = (audio_out(&r)[0], audio_out(&r)[1]);
    assert_eq!(packets, n[4], "{}", r.all());
    let (probe, wav_seconds, hz) = wav_out(&back);
    assert_eq!(probe, "pcm_s16le,48000,2");
    assert_eq!((wav_seconds * 48_000.0).round() as u64, samples);
    assert!((wav_seconds - 2.0).abs() < 0.01, "{wav_seconds} s");
    assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");

    // A pipe on stdin, live, through a BYOC job; the audio back with the video kept per segment.
    let out = dir.join("byoc.ts");
    let r = run_with(
        &[
            "byoc-write-frames",
            "--count",
            "30",
            "--audio",
            "-",
            "--output",
            out.to_str().unwrap(),
            "--output-audio",
            back.to_str().unwrap(),
        ],
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
    assert_tone_back(&back, 2, seconds);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--output-audio` on a job whose output carries no audio: the run says so and fails, and the
/// file is still a WAV (empty) ffprobe reads; `--allow-partial` lets it exit 0.
#[test]
fn an_output_with_no_audio_fails_output_audio_and_leaves_an_empty_wav() {
    let dir = scratch("audio-none");
    let back = dir.join("back.wav");
    let args = ["write-frames", "--count", "30", "--no-pace", "--output-audio", back.to_str().unwrap()];
    let r = run_with(&args, None, &[], Duration::from_secs(90));
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("the output carried no audio"), "{}", r.all());
    assert_eq!(audio_out(&r)[..2], [0, 0], "{}", r.all());
    let (probe, seconds, _) = wav_out(&back);
    assert_eq!((probe.as_str(), seconds), ("pcm_s16le,48000,2", 0.0));
    let r = run_with(&[&args[..], &["--allow-partial"]].concat(), None, &[], Duration::from_secs(90));
    assert_eq!(r.code, Some(0), "{r:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Arguments, stdin, and the reason the refusal must name.
type Case<'a> = (Vec<&'a str>, Option<&'a [u8]>, &'a str);

/// Refused with exit 2 and the reason, before any network work (the flags point at closed
/// ports, so getting further would be a connection error instead).
#[test]
fn audio_that_cannot_go_is_a_usage_error_before_any_job() {
    let dir = scratch("audio-bad");
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
        (vec!["write-frames", "--output-audio", "/nonexistent/a.wav"], None, "cannot create --output-audio"),
        (vec!["write-frames", "--output", "-", "--output-audio", "-"], None, "cannot both write to stdout"),
        (vec!["write-frames", "--audio", "-", "--audio-raw", "s16le:48000"], Some(b""), "raw PCM format"),
        (vec!["write-frames", "--audio", "-", "--audio-raw", "s16le:48000:12"], Some(b""), "12 channels"),
        (
            vec!["byoc-write-frames", "--codec", "av1", "--output-audio", "x.wav"],
            None,
            "AV1 output carries none",
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

/// Codec name and start time of each stream, as ffprobe reads them (each stream once).
fn starts(path: &std::path::Path) -> Vec<(String, f64)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,start_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let mut starts: Vec<(String, f64)> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
        let (codec, start) = line.split_once(',').unwrap();
        if !starts.iter().any(|(c, _)| c == codec) {
            starts.push((codec.to_owned(), start.parse().unwrap()));
        }
    }
    starts
}

/// A file Debian's ffmpeg makes (H.264 and libopus stereo in MPEG-TS, 3 s) goes through an LV2V
/// job as it is: both tracks come back in ffprobe with their A/V offset kept (under a frame),
/// and `--output-audio` decodes the returning Opus at the tone's pitch for its whole length.
#[test]
fn an_ffmpeg_file_with_h264_and_opus_round_trips_through_an_lv2v_job() {
    let dir = scratch("audio-ts");
    let input = dir.join("in.ts");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
        .args(["-c:v", "libx264", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0"])
        .args(["-c:a", "libopus", "-ac", "2", "-t", "3", "-f", "mpegts"])
        .arg(&input)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));

    let (out, back) = (dir.join("out.ts"), dir.join("back.wav"));
    let r = run_with(
        &[
            "write-frames",
            "--input",
            input.to_str().unwrap(),
            "--no-pace",
            "--output",
            out.to_str().unwrap(),
            "--output-audio",
            back.to_str().unwrap(),
        ],
        None,
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let (kinds, seconds) = streams(&out);
    assert_eq!(kinds, ["h264,video", "opus,audio"], "{}", r.all());
    assert!((seconds - 3.0).abs() < 0.05, "{seconds} s of audio back");
    let (sent, came) = (starts(&input), starts(&out));
    assert_eq!(came.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["h264", "opus"]);
    let offset = |s: &[(String, f64)]| s[1].1 - s[0].1;
    assert!((offset(&sent) - offset(&came)).abs() < 1.0 / 30.0, "A/V offset {:?} became {:?}", sent, came);
    assert_tone_back(&back, 2, seconds);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Headerless PCM on a pipe (`ffmpeg -f s16le`), mono at 44.1 kHz, named by `--audio-raw`: sent
/// beside the frames as a mono Opus track, it comes back as mono WAV at the tone's pitch.
#[test]
fn raw_pcm_on_a_pipe_goes_out_with_the_video() {
    let dir = scratch("audio-raw");
    let pcm = sine(44_100, 1, 2, &["-f", "s16le"]);
    let back = dir.join("back.wav");
    let r = run_with(
        &[
            "write-frames",
            "--count",
            "60",
            "--no-pace",
            "--audio",
            "-",
            "--audio-raw",
            "s16le:44100:1",
            "--output-audio",
            back.to_str().unwrap(),
        ],
        Some(&pcm),
        &[],
        Duration::from_secs(90),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(&audio_in(&r)[..4], [100, 100, 0, 0], "{}", r.all());
    assert_tone_back(&back, 1, 2.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Ctrl-C in the middle of a live run still leaves a finished WAV: its header gives the length
/// of the samples that came back (not the "unknown length" a started file carries), and
/// ffprobe reads that length, with the tone in it.
#[test]
fn ctrl_c_mid_run_leaves_a_wav_with_its_length() {
    let dir = scratch("audio-ctrl-c");
    let input = dir.join("in.wav");
    std::fs::write(&input, wav(48_000, 20)).unwrap();
    let back = dir.join("back.wav");
    // 20 s of frames at live pace: far longer than the test waits.
    let args = [
        "write-frames",
        "--count",
        "600",
        "--audio",
        input.to_str().unwrap(),
        "--output-audio",
        back.to_str().unwrap(),
    ];
    let child = common::spawn(&args);
    // Wait for more than a second of audio to have come back, then interrupt.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&back).map(|m| m.len()).unwrap_or(0) < 44 + 48_000 * 4 * 3 / 2 {
        assert!(std::time::Instant::now() < deadline, "no audio came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let r = common::wait_with(child, &args, Duration::from_secs(30));
    assert_eq!(r.code, Some(130), "{r:?}");

    let bytes = std::fs::read(&back).unwrap();
    let len = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    assert_eq!(&bytes[36..40], b"data");
    assert_eq!(len(4), bytes.len() - 8, "RIFF size");
    assert_eq!(len(40), bytes.len() - 44, "data size");
    let seconds = (bytes.len() - 44) as f64 / (48_000.0 * 4.0);
    assert!((1.5..20.0).contains(&seconds), "{seconds} s");
    assert_tone_back(&back, 2, seconds);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--output-audio -`: the WAV streams on stdout (the summary moves to stderr), with the
/// "unknown length" header a pipe gets; ffprobe reads it whole, 2 s of the tone.
#[test]
fn output_audio_dash_streams_the_wav_on_stdout() {
    let dir = scratch("audio-stdout");
    let input = dir.join("in.wav");
    std::fs::write(&input, wav(48_000, 2)).unwrap();
    let out = Command::new("timeout")
        .arg("90")
        .arg(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["write-frames", "--count", "60", "--no-pace", "--audio"])
        .arg(&input)
        .args(["--output-audio", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("audio out: "), "the summary goes to stderr: {stderr}");
    let bytes = out.stdout;
    assert_eq!((&bytes[0..4], &bytes[8..12]), (&b"RIFF"[..], &b"WAVE"[..]), "stdout holds only the WAV");
    assert_eq!(&bytes[4..8], &u32::MAX.to_le_bytes(), "a pipe's header says unknown length");
    let back = dir.join("back.wav");
    std::fs::write(&back, &bytes).unwrap();
    assert_tone_back(&back, 2, 2.0);
    std::fs::remove_dir_all(&dir).unwrap();
}
