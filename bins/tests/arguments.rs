//! Bad arguments exit with 2 and say what is wrong; secrets given on the command line never
//! show up in what the command prints, logs included.

mod common;

use std::time::Duration;

use common::{run, run_with, LocalNet};

#[test]
fn bad_frame_options_exit_2_with_the_reason() {
    let r = run(&["write-frames", "--fps", "0"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--fps") && r.stderr.contains("0 is not in 1..=240"), "{}", r.stderr);
    let r = run(&["byoc-write-frames", "--width", "0"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("must be an even number from 16 to 7680"), "{}", r.stderr);
    let r = run(&["byoc-write-frames", "--codec", "vp9"]);
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[test]
fn bad_caps_exit_2_with_the_reason() {
    let r = run(&["get-orchestrator-info", "--caps", "byoc/ok,nope/x", "127.0.0.1:1"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("unknown pipeline \"nope\""), "{}", r.stderr);
    let r = run(&["select-orchestrator", "--caps", "byoc"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = run(&["write-control", "--message", "[1]"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("JSON object"), "{}", r.stderr);
}

const SECRET: &str = "sekrit-7f3a9c";

#[test]
fn signer_headers_never_appear_in_output_or_errors() {
    let header = format!("Authorization: Bearer {SECRET}");
    let trace = [("RUST_LOG", "trace")];
    let limit = Duration::from_secs(30);

    // A malformed header is a bad argument, reported without its text.
    let r = run_with(
        &["select-orchestrator", "--signer", "http://127.0.0.1:1", "--signer-header", SECRET],
        None,
        &trace,
        limit,
    );
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(r.stderr.contains("--signer-header number 1 is not NAME:VALUE"), "{}", r.stderr);
    assert!(!r.all().contains(SECRET), "{r:?}");

    // An unreachable signer fails the job; the error names the signer, not the header.
    let r = run_with(
        &["select-orchestrator", "--signer", "http://127.0.0.1:1", "--signer-header", &header],
        None,
        &trace,
        limit,
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("error:"), "{}", r.stderr);
    assert!(!r.all().contains(SECRET), "{r:?}");

    // A working signer gets the header on every call, and a full trace log still hides it.
    let net = LocalNet::start(&[]);
    let r = run_with(
        &["byoc-text-reversal", "--signer", &net.url("signer"), "--signer-header", &header, "--text", "ok"],
        None,
        &trace,
        limit,
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr.lines().rev().take(20).collect::<Vec<_>>().join("\n"));
    assert_eq!(r.stdout.trim(), "ko");
    assert!(!r.all().contains(SECRET), "the secret leaked");
}

/// Issue 19.3: a malformed `--orchestrator` address is a usage error (exit 2) before any network
/// work, whatever the command.
#[test]
fn a_malformed_orchestrator_address_is_a_usage_error() {
    for args in [
        &["select-orchestrator", "--orchestrator", "ftp://nowhere:1"][..],
        &["byoc-request", "--orchestrator", "127.0.0.1:1,https://user:secret@o.example:8935/x"][..],
        &["get-orchestrator-info", "host:notaport"][..],
    ] {
        let r = run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(r.stderr.contains("--orchestrator"), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.contains("secret"), "credentials are not echoed: {}", r.stderr);
    }
}
