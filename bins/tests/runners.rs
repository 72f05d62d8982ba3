//! `runners` (issue 17): lists runners registered with a separate `local-network`, found
//! through the orchestrator list or through the signer's discovery, filtered by app and GPU;
//! an unreachable orchestrator is exit 1 with the reason.

mod common;

use common::{run, LocalNet};
use gateway_actors::http::HttpClients;
use gateway_actors::live_runners::RunnerRegistration;
use gateway_actors::tls::OrchestratorTrust;
use gateway_core::runners::{HeartbeatRequest, RunnerGpu, RunnerPriceInfo};

#[test]
fn registered_runners_are_listed_by_app_and_gpu() {
    let net = LocalNet::start(&[]);
    let (orch, signer) = (net.url("orchestrator"), net.url("signer"));
    let secret = net.urls["runner_secret"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let register = |app: &str, gpu: &str| {
        let heartbeat = HeartbeatRequest {
            runner_url: "http://10.9.9.9:7000".into(),
            app: app.into(),
            gpu: Some(RunnerGpu { name: gpu.into(), ..Default::default() }),
            price_info: RunnerPriceInfo { price: 1.into(), ..Default::default() },
            ..Default::default()
        };
        rt.block_on(RunnerRegistration::register(&clients, &orch, &secret, heartbeat)).unwrap()
    };
    let echo = register("echo", "NVIDIA H100");
    let _ping = register("ping", "NVIDIA L40S");

    let r = run(&["runners", "--orchestrator", &orch, "--app", "echo", "--json"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    let list: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["runner"]["url"], format!("{orch}/apps/{}/session", echo.runner_id()));
    assert_eq!(list[0]["runner"]["price_info"]["currency"], "wei");

    // Through the signer's discovery instead of a list; by GPU; human output.
    let r = run(&["runners", "--signer", &signer, "--gpu", "NVIDIA L40S"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("ping  persistent  gpu NVIDIA L40S  1/1 free"), "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);

    let r = run(&["runners", "--orchestrator", &orch, "--app", "nothing"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("no runner matches"), "{}", r.stderr);
}

#[test]
fn an_unreachable_orchestrator_is_exit_1_with_the_reason() {
    let r = run(&["runners", "--orchestrator", "http://127.0.0.1:1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("127.0.0.1:1") && r.stderr.contains("/discovery"), "{}", r.stderr);
    assert!(r.stderr.contains("no orchestrator answered discovery"), "{}", r.stderr);
}
