//! An orchestrator that dies and comes back, over real sockets: `LocalNetwork::kill` refuses
//! new connections and cuts the ones in flight, `revive` serves again on the same address as a
//! fresh process (no session, no channel) with its payment ledger kept.

mod common;

use std::time::Duration;

use gateway_core::capabilities::build_capabilities;
use gateway_core::jobs::{self, LiveVideoToVideoResponse};
use gateway_core::lp_rpc::orchestrator_client::OrchestratorClient;
use gateway_core::lp_rpc::{self, OrchestratorRequest};
use gateway_core::signer::SignOrchestratorInfoResponse;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig, NetworkError};
use livepeer_gateway_testkit::orchestrator::{PaymentRoute, Running};
use serde_json::json;

const QUERY: &str = "live-video-to-video/noop";

/// Starts an LV2V session on orchestrator `i` as a gateway does (signed GetOrchestrator, a
/// payment from the signer, the start call).
async fn start_lv2v(http: &reqwest::Client, net: &LocalNetwork, i: usize) -> LiveVideoToVideoResponse {
    let orch = net.orchestrator_urls()[i].clone();
    let id: SignOrchestratorInfoResponse = http
        .post(format!("{}/sign-orchestrator-info", net.signer_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = id.identity().unwrap();
    let caps = build_capabilities(&[QUERY.parse().unwrap()]);
    let endpoint = tonic::transport::Endpoint::from_shared(orch.clone()).unwrap();
    let mut grpc = OrchestratorClient::new(endpoint.connect().await.unwrap());
    let request = OrchestratorRequest {
        address: id.address_bytes.to_vec(),
        sig: id.signature,
        capabilities: Some(caps.clone()),
        ignore_capacity_check: true,
    };
    let info = grpc.get_orchestrator(request).await.unwrap().into_inner();
    let body = json!({
        "type": "lv2v",
        "capabilities": lp_rpc::to_base64(&caps),
        "orchestrator": lp_rpc::to_base64(&info),
    });
    let paid: gateway_core::signer::GenerateLivePaymentResponse = http
        .post(format!("{}/generate-live-payment", net.signer_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(format!("{orch}/live-video-to-video"))
        .header(jobs::HEADER_PAYMENT, &paid.payment)
        .header(jobs::HEADER_SEGMENT, &paid.seg_creds)
        .json(&json!({"model_id": "noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(tokio::time::Instant::now() < deadline, "{what} not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestrator_refuses_connections_and_comes_back_empty_on_the_same_address() {
    let mut net = LocalNetwork::start(NetworkConfig { orchestrators: 2, tls: false, ..Default::default() })
        .await
        .unwrap();
    let http = common::http();
    let job = start_lv2v(&http, &net, 0).await;
    let running = net.running(0).unwrap();
    assert_eq!(running.sessions, 1, "{running:?}");
    assert!(running.channels >= 3, "{running:?}");
    let ledger = net.orchestrators[0].orchestrator.ledger().lines();
    assert_eq!(ledger[&PaymentRoute::Lv2vStart].payments, 1, "{ledger:?}");
    let other = start_lv2v(&http, &net, 1).await;

    // A reader waiting for a segment that never comes: its request is in flight at the kill.
    let waiting = tokio::spawn({
        let (http, url) = (http.clone(), format!("{}/0", job.subscribe_url));
        async move { http.get(url).send().await.and_then(|r| r.error_for_status()).map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    let addr = net.orchestrators[0].server.addr;

    net.kill(0).await.unwrap();
    assert!(!net.is_serving(0));
    assert!(net.orchestrators[0].server.is_stopped());
    assert_eq!(net.orchestrators[0].server.open_connections(), 0);
    let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
    let cut = tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    assert!(cut.is_err(), "the request in flight was answered: {cut:?}");
    assert_eq!(net.running(0), Some(Running::default()), "a dead process runs nothing");
    assert!(matches!(net.revive(1).await, Err(NetworkError::StillServing(1))));
    assert!(matches!(net.kill(7).await, Err(NetworkError::NoOrchestrator(7))));
    // The other orchestrator is untouched.
    assert!(net.is_serving(1));
    assert_eq!(net.running(1).unwrap().sessions, 1);
    assert_eq!(http.get(format!("{}/-2", other.events_url)).send().await.unwrap().status(), 200);

    net.revive(0).await.unwrap();
    assert!(net.is_serving(0));
    assert_eq!(net.orchestrators[0].server.addr, addr);
    // Fresh process: the old session's channels are gone...
    let old = http.get(format!("{}/-2", job.events_url)).send().await.unwrap();
    assert_eq!(old.status(), 404);
    assert_eq!(net.running(0), Some(Running::default()));
    // ...its record is not.
    let ledger = net.orchestrators[0].orchestrator.ledger().lines();
    assert_eq!(ledger[&PaymentRoute::Lv2vStart].payments, 1, "{ledger:?}");
    assert_eq!(net.orchestrators[0].orchestrator.stats().lv2v_sessions_started, 1);
    // It takes new, paid sessions again, and the admin API sees the new process.
    let again = start_lv2v(&http, &net, 0).await;
    assert_ne!(again.manifest_id, job.manifest_id);
    assert_eq!(net.running(0).unwrap().sessions, 1);
    assert_eq!(net.orchestrators[0].orchestrator.ledger().payments(PaymentRoute::is_start), 2);
    let stats: serde_json::Value = http
        .get(format!("{}/orchestrators/0/stats", net.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["running_sessions"], 1, "{stats}");
    assert_eq!(stats["lv2v_sessions_started"], 2, "{stats}");

    // Ending its input ends the session: nothing left running.
    assert_eq!(http.delete(&again.publish_url).send().await.unwrap().status(), 200);
    wait_for("the revived orchestrator to be idle", || net.running(0).is_some_and(|r| r.is_idle())).await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_dies_and_comes_back_again_and_again() {
    let mut net = LocalNetwork::start(NetworkConfig { orchestrators: 1, tls: false, ..Default::default() })
        .await
        .unwrap();
    let http = common::http();
    for round in 0..3 {
        start_lv2v(&http, &net, 0).await;
        net.kill(0).await.unwrap();
        // Killing the dead again changes nothing.
        net.kill(0).await.unwrap();
        assert!(!net.is_serving(0), "round {round}");
        assert!(http.get(net.orchestrator_urls()[0].clone()).send().await.is_err(), "round {round}");
        net.revive(0).await.unwrap();
        assert!(net.is_serving(0), "round {round}");
        assert_eq!(net.running(0), Some(Running::default()), "round {round}");
    }
    assert_eq!(net.orchestrators[0].orchestrator.ledger().payments(PaymentRoute::is_start), 3);
    net.shutdown().await;
}
