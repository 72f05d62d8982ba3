//! `serve-runner` (issue 17): a Rust live runner on a separate `local-network`: it registers
//! the sample app, a gateway (`call-runner`) is paid into a session on it, the runner reports
//! the session reserved and released, and Ctrl-C unregisters it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::{run, LocalNet};

#[test]
fn a_rust_runner_serves_a_paid_call_and_unregisters_on_ctrl_c() {
    let net = LocalNet::start(&[]);
    let (orch, signer) = (net.url("orchestrator"), net.url("signer"));
    let secret = net.urls["runner_secret"].as_str().unwrap().to_owned();
    let mut runner = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["serve-runner", "--orchestrator", &orch, "--app", "rusty-echo", "--price", "0.036", "--json"])
        .env("LIVEPEER_RUNNER_SECRET", &secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(runner.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let registered: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let runner_id = registered["runner_id"].as_str().unwrap().to_owned();

    let r = run(&[
        "call-runner",
        "--orchestrator",
        &orch,
        "--signer",
        &signer,
        "--app",
        "rusty-echo",
        "--path",
        "v1/hi",
        "--data",
        "{\"x\":1}",
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["body"]["path"], "/runner/v1/hi");
    assert_eq!(v["body"]["session"]["Livepeer-Runner-Route"], runner_id);
    let session = v["session_id"].as_str().unwrap().to_owned();

    // Let the released event arrive, then Ctrl-C.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(Command::new("kill").args(["-INT", &runner.id().to_string()]).status().unwrap().success());
    let status = runner.wait().unwrap();
    let mut stderr = String::new();
    runner.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains(&format!("session {session} reserved")), "{stderr}");
    assert!(stderr.contains(&format!("session {session} released")), "{stderr}");
    assert!(!stderr.contains(&secret), "the secret is never printed: {stderr}");
    let r = run(&["runners", "--orchestrator", &orch, "--app", "rusty-echo", "--json"]);
    assert_eq!(r.stdout.trim(), "[]", "unregistered on Ctrl-C: {r:?}");
}

#[test]
fn a_refused_registration_is_exit_1_and_bad_options_exit_2() {
    let net = LocalNet::start(&[]);
    let orch = net.url("orchestrator");
    let r = run(&["serve-runner", "--orchestrator", &orch, "--secret", "wrong", "--price", "1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains("401") && r.stderr.contains("invalid registration authorization"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("wrong"), "the secret is never printed: {}", r.stderr);
    let r = run(&["serve-runner", "--orchestrator", &orch, "--secret", "s", "--capacity", "0"]);
    assert_eq!(r.code, Some(2), "{r:?}");
}
