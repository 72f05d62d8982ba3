//! The job APIs end to end against the local network, from a plain multi-threaded tokio
//! runtime (the `Gateway` hides its actix System).

use std::time::Duration;

use bytes::Bytes;
use gateway_core::rejection::JobError;
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::SeqSpec;
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::signer::SignerFault;
use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig, GatewayError, Lv2vRequest};

fn gateway_for(net: &LocalNetwork) -> Gateway {
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let config = GatewayConfig {
        network,
        lv2v_payment_interval: Duration::from_millis(200),
        byoc_payment_interval: Duration::from_millis(200),
        ..Default::default()
    };
    Gateway::start(config).unwrap()
}

fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lv2v_round_trip_with_payments_from_a_plain_tokio_runtime() {
    assert_send_sync_clone::<Gateway>();
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_for(&net);
    // The handle moves between tasks of a multi-threaded runtime.
    let job = tokio::spawn({
        let gw = gw.clone();
        async move { gw.start_lv2v(Lv2vRequest { model_id: "noop".into(), ..Default::default() }).await }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(job.orchestrator, net.orchestrator_urls()[0]);

    // From segment 0: `Next` raced the echo on a loaded machine (the reader's first GET came
    // after the worker had opened segment 0, so it waited for segment 1).
    let mut output = job.output(SeqSpec::At(0));
    let reader =
        tokio::spawn(async move { output.next_segment().await.unwrap().unwrap().read_all().await.unwrap() });
    let mut publisher = job.publisher().await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut sink = publisher.next_segment().unwrap();
    for chunk in data.chunks(10_000) {
        sink.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    sink.finish().await.unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
    assert_eq!(echoed.as_ref(), data.as_slice());

    let mut events = job.events();
    let ev = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(ev["type"], "status");

    // Recurring payments run on their timer, independent of media.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while job.payment_stats().payments_sent + job.payment_stats().cycles_skipped < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no payment cycles: {:?}", job.payment_stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = net.signer.stats().generate_live_payment_calls;
    job.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(net.signer.stats().generate_live_payment_calls, before, "payments continued after stop");
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byoc_text_reversal_round_trip_and_stop() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_for(&net);
    let mut req = ByocJobRequest::new("text-reversal");
    req.enable_data_output = true;
    let job = gw.start_byoc_job(req).await.unwrap();
    let mut data = job.data().unwrap();
    let control = job.control().await.unwrap();
    control.send(&serde_json::json!({"text": "livepeer"})).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), data.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply["reversed"], "reepevil");
    control.close().await;
    job.stop().await.unwrap();
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    // A single-shot request too.
    let (status, body) =
        gw.byoc_request("text-reversal", "reverse", Bytes::from_static(br#"{"text":"ab"}"#)).await.unwrap();
    assert_eq!((status, body.as_ref()), (200, br#"{"reversed":"ba"}"#.as_ref()));
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byoc_start_pays_again_after_402() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_for(&net);
    net.orchestrator().set_fault(OrchestratorFault::RespondStatus {
        path: "/ai/stream/start".into(),
        status: 402,
        count: 1,
    });
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    assert_eq!(net.orchestrator().stats().byoc_streams_started, 1);
    job.stop().await.unwrap();

    // 402 every time: a typed PaymentRequired error once the retries are spent.
    net.orchestrator().set_fault(OrchestratorFault::RespondStatus {
        path: "/ai/stream/start".into(),
        status: 402,
        count: 10,
    });
    let err = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::PaymentRequired { .. })), "{err}");
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_480_refreshes_orchestrator_info_and_retries() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_for(&net);
    let calls_before = net.orchestrator().stats().get_orchestrator_calls;
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 480,
        count: 1,
    });
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    // One GetOrchestrator for selection, one for the refresh.
    assert_eq!(net.orchestrator().stats().get_orchestrator_calls - calls_before, 2);
    job.stop().await.unwrap();

    // A signer that keeps answering 480 gives up after a bounded number of refreshes.
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 480,
        count: 50,
    });
    let err = gw.start_lv2v(Lv2vRequest::default()).await.unwrap_err();
    assert!(err.to_string().contains("480"), "{err}");
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_orchestrator_is_skipped_during_selection() {
    let net = LocalNetwork::start(NetworkConfig { orchestrators: 2, ..Default::default() }).await.unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}", l.local_addr().unwrap())
    };
    let mut orchestrators = vec![dead.clone()];
    orchestrators.extend(net.orchestrator_urls());
    let network = NetworkSettings { orchestrators, signer: Some(net.signer_url()), ..Default::default() };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let selection = gw.select(&["live-video-to-video/noop".parse().unwrap()], None).await.unwrap();
    assert_eq!(selection.candidates.len(), 2);
    assert!(selection.rejections.iter().any(|r| r.orchestrator == dead), "{:?}", selection.rejections);
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    assert_ne!(job.orchestrator, dead);
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_orchestrator_lists_every_reason() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_for(&net);
    let err = gw.start_byoc_job(ByocJobRequest::new("no-such-capability")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("no orchestrator available"), "{text}");
    assert!(text.contains("no-such-capability"), "{text}");
    gw.shutdown();
    net.shutdown().await;
}
