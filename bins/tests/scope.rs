//! `scope` (issue 17): a Scope job on a `local-network --scope` (an orchestrator with a
//! serverless worker), paid through the signer, updated from stdin, its events printed as JSON
//! lines, stopped after `--for`; no Scope runner is exit 1 with the reason; bad options exit 2.

mod common;

use std::time::Duration;

use common::{run, run_with, LocalNet};

#[test]
fn a_scope_job_prints_its_events_takes_updates_from_stdin_and_is_paid() {
    let net = LocalNet::start(&["--scope"]);
    let (orch, signer) = (net.url("orchestrator"), net.url("signer"));
    let args = [
        "scope",
        "--orchestrator",
        &orch,
        "--signer",
        &signer,
        "--param",
        "prompt=cat",
        "--for",
        "4",
        "--json",
        "--control-stdin",
    ];
    let r = run_with(&args, Some(b"{\"prompt\":\"dog\"}\nnot json\n"), &[], Duration::from_secs(30));
    assert_eq!(r.code, Some(0), "{r:?}");
    let lines: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mid = lines[0]["job"]["manifest_id"].as_str().unwrap();
    assert_eq!(lines[0]["job"]["control_url"], format!("{orch}/ai/trickle/{mid}-control"));
    assert_eq!(lines[0]["runner"], format!("{orch}/scope"));
    assert!(lines.iter().any(|e| e["type"] == "status" && e["pipeline"] == "scope"), "{}", r.stdout);
    assert!(
        lines.iter().any(|e| e["type"] == "params_updated" && e["params"]["prompt"] == "dog"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("ignored (not a JSON object): not json"), "{}", r.stderr);
    assert!(r.stderr.contains("1 recurring payment(s)"), "paid every 3 s for 4 s: {}", r.stderr);
}

#[test]
fn no_scope_runner_is_exit_1_and_bad_options_exit_2() {
    let net = LocalNet::start(&[]);
    let r = run(&["scope", "--orchestrator", &net.url("orchestrator"), "--for", "1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("no orchestrator available"), "{}", r.stderr);
    let r = run(&["scope", "--orchestrator", &net.url("orchestrator"), "--for", "0"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    let r = run(&["scope", "--orchestrator", &net.url("orchestrator"), "--param", "novalue"]);
    assert_eq!(r.code, Some(2), "{r:?}");
}
