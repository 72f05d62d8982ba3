//! The official Python SDK (`livepeer_gateway.byoc.submit_byoc_job`) as a BYOC client of the
//! local network: offchain, and paid through the local signer with realistic ticket parameters.
//!
//! The SDK asks for orchestrator info (to pay) over gRPC on port 8935 of the orchestrator's host,
//! whatever port the orchestrator URL names, and always over TLS. The paid case therefore runs a
//! TLS orchestrator on 127.0.0.1:8935; it is the only test here that binds a fixed port, and it
//! waits (bounded) for the port when another process holds it.

use std::time::Duration;

use gateway_core::lp_rpc::{self, Payment};
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig, NetworkError};
use serde_json::Value;

use crate::common;
use crate::harness::CAP;

/// Where the SDK looks for an orchestrator's gRPC endpoint.
const SDK_GRPC_PORT: u16 = 8935;
const TEXT: &str = "hello world";

/// Runs `tests/py/byoc_peer.py` against `orch_url` (and `signer_url` for a paid job); its JSON.
fn run_sdk(orch_url: &str, signer_url: Option<&str>) -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/byoc_peer.py");
    let mut cmd = std::process::Command::new(common::python());
    cmd.arg(script).arg(orch_url).arg(TEXT);
    if let Some(s) = signer_url {
        cmd.arg(s);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// A header of a recorded request (urllib capitalizes names its own way).
fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// The recorded requests whose URL contains `part`.
fn sent<'a>(v: &'a Value, part: &str) -> Vec<&'a Value> {
    v["sent"].as_array().unwrap().iter().filter(|r| r["url"].as_str().unwrap().contains(part)).collect()
}

#[test]
fn python_sdk_byoc_request_offchain_is_answered_without_payment() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut config = NetworkConfig::default();
    config.orchestrator.offchain = true;
    let net = rt.block_on(LocalNetwork::start(config)).unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    let v = run_sdk(&orch, None);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["data"]["reversed"], "dlrow olleh");
    assert_eq!(v["balance"], "0");
    // One request: the job, unsigned. The SDK leaves out `parameters`, `sender` and `sig`, which
    // go decodes as empty strings (an empty signature hex-decodes; offchain every one verifies).
    let [job] = sent(&v, "/process/request/")[..] else { panic!("{v}") };
    assert_eq!(job["url"], format!("{orch}/process/request/{CAP}"));
    let mut keys: Vec<&str> = job["job"].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["capability", "id", "request", "timeout_seconds"]);
    assert_eq!(job["job"]["request"], r#"{"text": "hello world"}"#);
    assert_eq!(job["body"], r#"{"text": "hello world"}"#);
    assert_eq!(net.orchestrator().stats().requests_served, 1);
    rt.block_on(net.shutdown());
}

/// A TLS network whose orchestrator listens on 127.0.0.1:8935, waiting up to a minute for the
/// port.
fn network_on_sdk_port(rt: &tokio::runtime::Runtime, tweak: impl Fn(&mut NetworkConfig)) -> LocalNetwork {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut config = NetworkConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], SDK_GRPC_PORT)),
            ..Default::default()
        };
        tweak(&mut config);
        match rt.block_on(LocalNetwork::start(config)) {
            Ok(net) => return net,
            Err(NetworkError::Bind { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("cannot run an orchestrator on port {SDK_GRPC_PORT}: {e}"),
        }
    }
}

/// Both paid cases need port 8935, so they run one after the other in one test.
#[test]
fn python_sdk_byoc_requests_paid_through_the_signer() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    paid_request_is_answered(&rt);
    payment_is_priced_at_the_transcoding_price(&rt);
}

/// Realistic ticket parameters (8 gwei EV, 0.0012 ETH face value) and the local network's
/// prices: the SDK signs, pays and gets the reversed text.
fn paid_request_is_answered(rt: &tokio::runtime::Runtime) {
    let net = network_on_sdk_port(rt, |_| {});
    let orch = net.orchestrator_urls()[0].clone();
    assert_eq!(orch, format!("https://127.0.0.1:{SDK_GRPC_PORT}"));
    let v = run_sdk(&orch, Some(&net.signer_url()));
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["data"]["reversed"], "dlrow olleh");

    // The job, signed over go's V1 encoding with the parameters left empty.
    let [sign] = sent(&v, "/sign-byoc-job")[..] else { panic!("{v}") };
    let sign_body: Value = serde_json::from_str(sign["body"].as_str().unwrap()).unwrap();
    assert_eq!(sign_body["parameters"], "");
    let [job] = sent(&v, "/process/request/")[..] else { panic!("{v}") };
    assert!(job["job"].get("parameters").is_none());
    let sender = job["job"]["sender"].as_str().unwrap();
    assert!(job["job"]["sig"].as_str().unwrap().starts_with("0x"));

    // The payment: an LV2V-typed one (priced at the base price GetOrchestrator quotes without
    // capabilities), one ticket at go-livepeer's default EV, well inside the signer's limit.
    let [pay] = sent(&v, "/generate-live-payment")[..] else { panic!("{v}") };
    let pay_body: Value = serde_json::from_str(pay["body"].as_str().unwrap()).unwrap();
    assert_eq!((pay_body["type"].as_str(), pay_body["capability"].as_str()), (Some("lv2v"), Some(CAP)));
    let payment: Payment = lp_rpc::from_base64("payment", header(job, "Livepeer-Payment").unwrap()).unwrap();
    assert_eq!(payment.ticket_sender_params.len(), 1);
    let price = payment.expected_price.clone().unwrap();
    assert_eq!((price.price_per_unit, price.pixels_per_unit), (1, 1));
    assert!(header(job, "Livepeer-Segment").is_some(), "sent along, and ignored by BYOC");

    // Credited to the signer's address on the capability, less one second of work.
    let who = gateway_core::eth::parse_address(sender).unwrap();
    assert_eq!(payment.sender, who.to_vec());
    let balance = net.orchestrator().balance(&who, CAP);
    assert_eq!(balance, 8e9 - 100.0);
    assert_eq!(v["balance"], "7999999900");
    rt.block_on(net.shutdown());
}

/// The SDK pays for 60 s of 720p30 LV2V at the orchestrator's transcoding price, whatever the
/// BYOC capability costs. At 1000 wei per pixel that is 208 tickets of 8 gwei, and go's signer
/// refuses more than 100: the SDK never reaches the orchestrator.
fn payment_is_priced_at_the_transcoding_price(rt: &tokio::runtime::Runtime) {
    let net = network_on_sdk_port(rt, |c| c.orchestrator.price_per_unit = 1000);
    let v = run_sdk(&net.orchestrator_urls()[0], Some(&net.signer_url()));
    let error = v["error"].as_str().unwrap_or_else(|| panic!("expected the SDK to fail: {v}"));
    assert!(error.contains("HTTP 400") && error.contains("numTickets 208 exceeds maximum of 100"), "{error}");
    assert!(sent(&v, "/process/request/").is_empty(), "{v}");
    assert_eq!(net.orchestrator().stats().requests_served, 0);
    rt.block_on(net.shutdown());
}
