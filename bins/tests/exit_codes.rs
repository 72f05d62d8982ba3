//! Issue 19.2: a job that did not do what was asked exits 1 with the reason in one line; a
//! partial result passes only with `--allow-partial`.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{run_with, LocalNet};

/// POSTs `body` to `url` (plain HTTP) and returns the status line.
fn post(url: &str, body: &str) -> String {
    let rest = url.strip_prefix("http://").expect("plain HTTP");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

/// Runs `write-frames` against `net` and, once it streams, makes every trickle request answer
/// 404 (the channel gone mid-stream).
fn write_frames_losing_its_channel(extra: &[&str]) -> common::Run {
    let net = LocalNet::start(&[]);
    let (orch, signer, admin) = (net.url("orchestrator"), net.url("signer"), net.url("admin"));
    let mut args: Vec<String> =
        ["write-frames", "--count", "300", "--orchestrator", &orch, "--signer", &signer]
            .iter()
            .map(|s| s.to_string())
            .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let runner = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with(&args, None, &[], Duration::from_secs(60))
    });
    std::thread::sleep(Duration::from_secs(3));
    let fault = r#"{"kind":"respond_status","path":"/ai/trickle/","status":404,"count":100000}"#;
    let status = post(&format!("{admin}/orchestrators/0/faults"), fault);
    assert!(status.contains("200"), "{status}");
    let r = runner.join().unwrap();
    drop(net);
    r
}

#[test]
fn a_stream_that_ends_early_exits_1_with_the_reason() {
    let r = write_frames_losing_its_channel(&[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    let last = r.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("the stream ended early") && last.contains("--allow-partial"), "{}", r.stderr);
}

#[test]
fn allow_partial_accepts_it_with_a_warning() {
    let r = write_frames_losing_its_channel(&["--allow-partial"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains("warning: partial result accepted (--allow-partial): the stream ended early"),
        "{all}"
    );
}

/// `subscribe-events --count 1000` whose events channel goes away (every trickle request
/// answers 404) ends short of its count: exit 1 with the reason last; `--allow-partial` exits 0
/// with a warning.
#[test]
fn subscribe_events_ending_short_of_its_count_exits_1_unless_partial_is_allowed() {
    for (extra, code) in [(None, 1), (Some("--allow-partial"), 0)] {
        let net = LocalNet::start(&[]);
        let (orch, signer, admin) = (net.url("orchestrator"), net.url("signer"), net.url("admin"));
        let mut args: Vec<String> =
            ["subscribe-events", "--count", "1000", "--orchestrator", &orch, "--signer", &signer]
                .iter()
                .map(|s| s.to_string())
                .collect();
        args.extend(extra.map(str::to_owned));
        let runner = std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_with(&args, None, &[], Duration::from_secs(60))
        });
        std::thread::sleep(Duration::from_secs(3));
        let fault = r#"{"kind":"respond_status","path":"/ai/trickle/","status":404,"count":100000}"#;
        assert!(post(&format!("{admin}/orchestrators/0/faults"), fault).contains("200"));
        let r = runner.join().unwrap();
        drop(net);
        assert_eq!(r.code, Some(code), "{r:?}");
        let last = r.stderr.lines().last().unwrap_or_default();
        if code == 1 {
            // The stream's own end, when it ended too, follows as the cause.
            assert!(
                last.starts_with("error: the events channel ended after ")
                    && last.contains(" of 1000 event(s)")
                    && last.ends_with(" (--allow-partial accepts a partial result)"),
                "{}",
                r.stderr
            );
        } else {
            assert!(
                r.stderr
                    .contains("warning: partial result accepted (--allow-partial): the events channel ended"),
                "{}",
                r.stderr
            );
        }
    }
}
