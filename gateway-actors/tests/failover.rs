//! The shared failover loop and the payment scheduler's owned session, on real sockets: a
//! start tries each candidate and reports why each failed as a typed
//! [`RejectionReason`]; a stop's last payment asked for while a recurring payment is in flight
//! waits for it, and is made once.

use std::time::Duration;

use gateway_core::jobs::LIVE_VIDEO_TO_VIDEO_PATH;
use gateway_core::rejection::JobError;
use gateway_core::rejection::{OrchestratorRejection, RejectionReason};
use gateway_core::token::NetworkSettings;
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::{LocalOrchestrator, OrchestratorConfig};
use gateway_testkit::serve::serve;
use gateway_testkit::signer::SignerFault;
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig, GatewayError, Lv2vRequest};

fn gateway(orchestrators: Vec<String>, signer: String, payment_interval: Duration) -> Gateway {
    let network = NetworkSettings { orchestrators, signer: Some(signer), ..Default::default() };
    let config = GatewayConfig {
        network,
        lv2v_payment_interval: payment_interval,
        byoc_payment_interval: payment_interval,
        ..Default::default()
    };
    Gateway::start(config).unwrap()
}

fn reason_of<'a>(rejections: &'a [OrchestratorRejection], orchestrator: &str) -> &'a RejectionReason {
    &rejections
        .iter()
        .find(|r| r.orchestrator == orchestrator)
        .unwrap_or_else(|| panic!("no rejection for {orchestrator} in {rejections:?}"))
        .reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_tries_every_candidate_and_types_each_refusal() {
    let net = LocalNetwork::start(NetworkConfig { orchestrators: 2, tls: false, ..Default::default() })
        .await
        .unwrap();
    let [wants_payment, healthy] = [&net.orchestrators[0].orchestrator, &net.orchestrators[1].orchestrator];
    let urls = net.orchestrator_urls();
    // An orchestrator whose info names a job port nothing listens on: selection keeps it, the
    // start's connection is refused.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved_url = format!("http://{}", listener.local_addr().unwrap());
    let moved = LocalOrchestrator::new(
        OrchestratorConfig::default(),
        refused,
        TrickleServer::new(TrickleConfig::default()),
    );
    let moved_server = serve(listener, moved.router(), None);

    let gw = gateway(
        vec![urls[0].clone(), moved_url.clone(), urls[1].clone()],
        net.signer_url(),
        Duration::from_secs(5),
    );
    wants_payment.set_fault(OrchestratorFault::RespondStatus {
        path: LIVE_VIDEO_TO_VIDEO_PATH.into(),
        status: 402,
        count: 100,
    });
    healthy.set_fault(OrchestratorFault::RespondStatus {
        path: LIVE_VIDEO_TO_VIDEO_PATH.into(),
        status: 500,
        count: 1,
    });
    let err = gw.start_lv2v(Lv2vRequest::default()).await.unwrap_err();
    let GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) = &err else { panic!("{err}") };
    assert_eq!(rejections.len(), 3, "{rejections:?}");
    assert!(
        matches!(reason_of(rejections, &urls[0]), RejectionReason::PaymentRequired { .. }),
        "{rejections:?}"
    );
    assert!(
        matches!(reason_of(rejections, &moved_url), RejectionReason::Transport { endpoint, .. } if endpoint == LIVE_VIDEO_TO_VIDEO_PATH),
        "{rejections:?}"
    );
    assert!(
        matches!(reason_of(rejections, &urls[1]), RejectionReason::Http { status: 500, .. }),
        "{rejections:?}"
    );
    // People read the same reasons as text.
    let text = err.to_string();
    assert!(text.contains("orchestrator requires payment (HTTP 402)"), "{text}");
    assert!(text.contains("orchestrator returned HTTP 500"), "{text}");

    // The healthy one answers last (a slow GetOrchestrator ranks it last): the start fails
    // over past the other two, paying each, and lands there.
    healthy.set_fault(OrchestratorFault::Delay {
        path: "/net.Orchestrator/GetOrchestrator".into(),
        delay_ms: 400,
        count: 1,
    });
    let payments_before = net.signer.stats().generate_live_payment_calls;
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    assert_eq!(job.orchestrator, urls[1]);
    assert!(
        net.signer.stats().generate_live_payment_calls - payments_before >= 3,
        "one start payment per candidate"
    );
    assert_eq!(wants_payment.stats().lv2v_sessions_started, 0);
    job.stop().await.unwrap();
    gw.shutdown();
    moved_server.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_recurring_payment_pays_once_after_it() {
    let net = LocalNetwork::start(NetworkConfig { tls: false, ..Default::default() }).await.unwrap();
    let gw = gateway(net.orchestrator_urls(), net.signer_url(), Duration::from_millis(200));
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    // Let the scheduler run a cycle or two, then hold its next signer call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = net.signer.stats().generate_live_payment_calls;
    net.signer.set_fault(SignerFault::Delay {
        endpoint: Some("/generate-live-payment".into()),
        delay_ms: 1500,
        count: 1,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while net.signer.stats().generate_live_payment_calls == before {
        assert!(tokio::time::Instant::now() < deadline, "no recurring payment started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight = net.signer.stats().generate_live_payment_calls;

    let started = tokio::time::Instant::now();
    job.stop().await.unwrap();
    // The last payment waited for the one in flight (the signer state is a chain) ...
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the stop did not wait: {:?}",
        started.elapsed()
    );
    // ... and was made exactly once, with nothing after it.
    assert_eq!(net.signer.stats().generate_live_payment_calls, in_flight + 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        net.signer.stats().generate_live_payment_calls,
        in_flight + 1,
        "payments went on after the stop"
    );
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    gw.shutdown();
    net.shutdown().await;
}
