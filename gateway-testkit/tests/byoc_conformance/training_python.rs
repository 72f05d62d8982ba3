//! The official Python SDK's BYOC training calls (`submit_training_job`,
//! `get_training_status`, `wait_for_training`) against the orchestrator double's training
//! routes, offchain (the SDK pays only through gRPC on port 8935, see `python_sdk.rs`).

use std::time::Duration;

use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};
use serde_json::Value;

use crate::common;
use crate::harness::CAP;

#[test]
fn python_sdk_trains_through_the_double_to_completion() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = NetworkConfig::default();
    config.orchestrator.offchain = true;
    config.orchestrator.training_duration = Duration::from_millis(1500);
    config.orchestrator.training_poll_interval = Duration::from_millis(100);
    let net = rt.block_on(LocalNetwork::start(config)).unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/training_peer.py");
    let out = std::process::Command::new(common::python()).arg(script).arg(&orch).arg(CAP).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    let job_id = v["job_id"].as_str().unwrap();
    assert_eq!(job_id.len(), 8, "the orchestrator's id, not the SDK's uuid: {v}");
    assert_eq!(v["submit_status"], "submitted");
    assert_eq!(v["status_url"], format!("/process/job/{job_id}"), "go's relative URL: {v}");
    assert_eq!(v["running"]["status"], "running", "{v}");
    assert_eq!(v["running"]["model_id"], "flux-dev");
    assert_eq!(v["final"]["status"], "completed", "{v}");
    assert_eq!(v["final"]["progress"], 100);
    assert_eq!(v["final"]["done"], true);
    let lora = v["final"]["lora_url"].as_str().unwrap();
    assert!(lora.ends_with(&format!("/files/{job_id}/lora.safetensors")), "{v}");
    assert!(v["final"]["config_url"].as_str().unwrap().ends_with("/config.json"), "{v}");
    // go's time.Time: an RFC 3339 string (the SDK types it as a float but passes it on).
    assert!(v["final"]["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    assert!(v["unknown"].as_str().unwrap().contains("not found"), "{v}");
    rt.block_on(net.shutdown());
}
