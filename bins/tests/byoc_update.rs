//! `byoc-update` (issue 17): a stream started by another gateway is updated by its id (the
//! worker announces the new parameters), an id no orchestrator runs is exit 1 with each
//! orchestrator's answer, and bad parameters are exit 2 before anything is sent.

mod common;

use std::time::Duration;

use common::{run, LocalNet};
use gateway_actors::{ByocJobRequest, Gateway, GatewayConfig};
use gateway_core::token::NetworkSettings;

#[test]
fn a_stream_is_updated_by_its_id_from_another_process() {
    let net = LocalNet::start(&[]);
    let (orch, signer) = (net.url("orchestrator"), net.url("signer"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let network = NetworkSettings {
        orchestrators: vec![orch.clone()],
        signer: Some(signer.clone()),
        ..Default::default()
    };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let job = rt.block_on(gw.start_byoc_job(ByocJobRequest::new("text-reversal"))).unwrap();
    let mut events = job.events().unwrap();

    let args = [
        "byoc-update",
        "--stream-id",
        &job.stream_id,
        "--params",
        r#"{"prompt":"a fox"}"#,
        "--orchestrator",
        &orch,
        "--signer",
        &signer,
    ];
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout.trim(), r#"{"status":"ok"}"#);
    assert!(r.stderr.contains(&format!("stream {} updated on {orch}", job.stream_id)), "{}", r.stderr);
    let applied = rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ev =
                tokio::time::timeout_at(deadline, events.next()).await.expect("no event").unwrap().unwrap();
            if ev["type"] == "params_updated" {
                break ev;
            }
        }
    });
    assert_eq!(applied["params"]["prompt"], "a fox");
    // --json for scripts; the parameters from stdin.
    let json_args = [
        "byoc-update",
        "--stream-id",
        &job.stream_id,
        "--params-file",
        "-",
        "--json",
        "--orchestrator",
        &orch,
        "--signer",
        &signer,
    ];
    let r = common::run_with(&json_args, Some(br#"{"prompt":"an owl"}"#), &[], Duration::from_secs(30));
    assert_eq!(r.code, Some(0), "{r:?}");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"stream_id": job.stream_id, "orchestrator": orch, "reply": {"status": "ok"}})
    );

    let mut unknown = args;
    unknown[2] = "no-such-stream";
    let r = run(&unknown);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("404") && r.stderr.contains("stream not found"), "{}", r.stderr);

    rt.block_on(job.stop()).unwrap();
    gw.shutdown();
}

#[test]
fn bad_parameters_exit_2() {
    for args in [
        &["byoc-update", "--stream-id", "s"][..],
        &["byoc-update", "--stream-id", "s", "--params", "[1]"],
        &["byoc-update", "--stream-id", "s", "--params-file", "/no/such/file"],
    ] {
        let r = run(args);
        assert_eq!(r.code, Some(2), "{args:?}: {r:?}");
    }
}
