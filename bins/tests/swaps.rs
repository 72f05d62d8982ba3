//! Issue 15 on the command line: `write-frames`, `byoc-write-frames` and `subscribe-events`
//! keep going when the orchestrator ends the stream, print the swap with its reason, and
//! `--no-swap` keeps the old behaviour (the stream ends, exit 1).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{run_with, LocalNet, Run};

/// POSTs an empty body to `url` (plain HTTP) and returns the status line.
fn post(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("plain HTTP");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Runs `command` against a two-orchestrator network and, once it streams, has every
/// orchestrator end its sessions (the one running the stream closes it; the other has none
/// yet, so the stream moves there).
fn run_through_a_closed_stream(command: &[&str], after: Duration) -> Run {
    let net = LocalNet::start(&["--orchestrators", "2"]);
    let orchestrators: Vec<String> = net.urls["orchestrators"]
        .as_array()
        .expect("orchestrators")
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    let (signer, admin) = (net.url("signer"), net.url("admin"));
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(["--orchestrator".into(), orchestrators.join(","), "--signer".into(), signer]);
    let runner = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with(&args, None, &[], Duration::from_secs(90))
    });
    std::thread::sleep(after);
    for i in 0..orchestrators.len() {
        let status = post(&format!("{admin}/orchestrators/{i}/stop-sessions"));
        assert!(status.contains("200"), "{status}");
    }
    let r = runner.join().unwrap();
    drop(net);
    r
}

#[test]
fn write_frames_moves_to_the_other_orchestrator_and_says_why() {
    let r = run_through_a_closed_stream(
        &["write-frames", "--count", "240", "--width", "160", "--height", "96"],
        Duration::from_secs(3),
    );
    let all = r.all();
    assert!(all.contains("swap 1: "), "{all}");
    assert!(all.contains("the orchestrator closed the stream"), "{all}");
    // Every frame went in; the bytes lost with the old orchestrator are counted, so the run is
    // partial (exit 1, saying so) unless --allow-partial.
    assert!(all.contains("video in: 240 frames"), "{all}");
    assert_eq!(r.code, Some(1), "{}", r.all());
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("not published") && last.contains("--allow-partial"), "{}", r.all());
}

/// MPEG-TS published as it is moves too, at its next keyframe, every access unit counted.
#[test]
fn write_frames_with_mpegts_input_moves_too() {
    let path = std::env::temp_dir().join(format!("lpgw-swap-ts-{}.ts", std::process::id()));
    std::fs::write(&path, common::mpegts(8, true)).unwrap();
    let r = run_through_a_closed_stream(
        &["write-frames", "--input", path.to_str().unwrap(), "--allow-partial"],
        Duration::from_secs(3),
    );
    let _ = std::fs::remove_file(&path);
    let all = r.all();
    assert_eq!(r.code, Some(0), "{all}");
    assert!(all.contains("swap 1: ") && all.contains("the orchestrator closed the stream"), "{all}");
    assert!(all.contains("video in: 240 frames, 240 encoded"), "{all}");
}

#[test]
fn byoc_write_frames_moves_too() {
    let r = run_through_a_closed_stream(
        &["byoc-write-frames", "--count", "240", "--width", "160", "--height", "96", "--allow-partial"],
        Duration::from_secs(3),
    );
    assert_eq!(r.code, Some(0), "{}", r.all());
    assert!(r.all().contains("swap 1: "), "{}", r.all());
}

#[test]
fn with_no_swap_the_closed_stream_ends_the_run() {
    let r = run_through_a_closed_stream(
        &["write-frames", "--count", "240", "--width", "160", "--height", "96", "--no-swap"],
        Duration::from_secs(3),
    );
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(!r.all().contains("swap 1: "), "{}", r.all());
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("the stream ended early"), "{}", r.all());
}
