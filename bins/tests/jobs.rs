//! Sample jobs end to end: on the embedded network (no network flags) and on a `local-network`
//! child named by flags.

mod common;

use std::time::Duration;

use common::{run, run_with, LocalNet};

#[test]
fn text_reversal_on_the_embedded_network() {
    let r = run(&["byoc-text-reversal", "--text", "hello livepeer"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout.trim(), "reepevil olleh", "{r:?}");
    assert!(r.stderr.contains("embedded local network"), "{}", r.stderr);
}

#[test]
fn write_text_streams_stdin_lines_through_a_named_network() {
    let net = LocalNet::start(&[]);
    let (orch, signer) = (net.url("orchestrator"), net.url("signer"));
    let r = run_with(
        &["byoc-write-text", "--orchestrator", &orch, "--signer", &signer],
        Some(b"abc\n\nhello world\n"),
        &[],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, "cba\ndlrow olleh\n", "{r:?}");
    assert!(!r.stderr.contains("embedded"), "flags name a network: {}", r.stderr);
}

#[test]
fn write_frames_saves_an_h264_stream_ffprobe_reads() {
    let dir = std::env::temp_dir().join(format!("lpg-frames-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("out.ts");
    let r = run_with(
        &[
            "write-frames",
            "--count",
            "60",
            "--no-pace",
            "--width",
            "320",
            "--height",
            "180",
            "--output",
            file.to_str().unwrap(),
        ],
        None,
        &[],
        Duration::from_secs(40),
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains("video in: 60 frames, 60 encoded, 0 dropped"), "{}", r.stdout);
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=codec_name,width,nb_read_frames", "-of", "json"])
        .arg(&file)
        .output()
        .expect("ffprobe is installed (scripts/setup.sh)");
    assert!(probe.status.success(), "{}", String::from_utf8_lossy(&probe.stderr));
    let v: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let stream = &v["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{v}");
    assert_eq!(stream["width"], 320, "{v}");
    assert_eq!(stream["nb_read_frames"], "60", "every frame came back through the job: {v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_stops_the_job_and_exits_130() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["subscribe-events", "--count", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first event proves the job runs; then interrupt it as a terminal would.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("\"type\":\"status\""), "{first}");
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "still running 20 s after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("interrupted: stopping"), "{stderr}");
    assert!(!stderr.contains("warning: stopping the job"), "the job stopped cleanly: {stderr}");
}
