//! `byoc-train` (issue 17): a training job to completion with JSON output, a failing worker
//! and a refused capability as exit code 1, bad options as 2 before anything is paid,
//! `--no-wait`, and Ctrl-C cancelling the job on the orchestrator.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{run, LocalNet};

#[test]
fn a_job_completes_and_json_prints_gos_final_status() {
    let r = run(&[
        "byoc-train",
        "--model-id",
        "flux-dev",
        "--param",
        "steps=3",
        "--poll-interval",
        "0.2",
        "--json",
    ]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let status: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["progress"], 100);
    assert_eq!(status["model_id"], "flux-dev");
    let job_id = status["job_id"].as_str().unwrap();
    assert!(
        status["result"]["diffusers_lora_file"]["url"]
            .as_str()
            .unwrap()
            .contains(&format!("/files/{job_id}/")),
        "{status}"
    );
    assert!(r.stderr.contains(&format!("training job {job_id} submitted to")), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{job_id}: running")), "each state change is told: {}", r.stderr);
}

#[test]
fn a_failing_worker_and_a_refused_capability_exit_1_with_the_reason() {
    let r = run(&["byoc-train", "--model-id", "m", "--param", "fail=true", "--poll-interval", "0.2"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout.contains("error: training diverged"), "{}", r.stdout);
    assert!(r.stderr.contains("ended failed"), "{}", r.stderr);

    let r = run(&["byoc-train", "--model-id", "m", "--capability", "no-such-capability"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no orchestrator"), "{}", r.stderr);
}

#[test]
fn bad_options_exit_2_before_any_job() {
    for args in [
        &["byoc-train", "--model-id", ""][..],
        &["byoc-train", "--model-id", "m", "--param", "novalue"],
        &["byoc-train", "--model-id", "m", "--params", "[1]"],
        &["byoc-train", "--model-id", "m", "--poll-interval", "0"],
        &["byoc-train", "--model-id", "m", "--max-price", "-1"],
    ] {
        let r = run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("submitted"), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn no_wait_prints_the_job_and_ctrl_c_cancels_a_followed_job() {
    let net = LocalNet::start(&[]);
    let (orch, signer) = (net.url("orchestrator"), net.url("signer"));
    let network = ["--orchestrator", orch.as_str(), "--signer", signer.as_str()];

    let mut args = vec!["byoc-train", "--model-id", "m", "--no-wait", "--json"];
    args.extend(network);
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{r:?}");
    let submitted: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(submitted["orchestrator"].as_str().unwrap().trim_end_matches('/'), orch);
    let status = job_status(&orch, submitted["job_id"].as_str().unwrap());
    assert!(
        status.contains("\"status\":\"running\"") || status.contains("\"status\":\"submitted\""),
        "{status}"
    );

    let mut args = vec!["byoc-train", "--model-id", "m", "--poll-interval", "0.2"];
    args.extend(network);
    let mut child = common::spawn(&args);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut line, deadline) = (String::new(), Instant::now() + Duration::from_secs(30));
    let job_id = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0 && Instant::now() < deadline, "no job submitted");
        if let Some(rest) = line.strip_prefix("training job ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{rest}");
    assert!(rest.contains(&format!("training job {job_id} cancelled")), "{rest}");
    let status = job_status(&orch, &job_id);
    assert!(status.contains("\"status\":\"cancelled\"") && status.contains("Cancelled by user"), "{status}");
}

/// `GET /process/job/{id}` on a plaintext orchestrator, over a bare socket: the body.
fn job_status(orch: &str, job_id: &str) -> String {
    let addr = orch.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /process/job/{job_id} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or(answer)
}
