//! Signer faults and payments that stop.

use super::*;

// ---------------------------------------------------------------------------------------------
// 3. Signer faults
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_that_is_down_fails_the_start_before_any_orchestrator_is_touched() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let network = NetworkSettings { signer: Some(closed_port_url("http")), ..settings_for(&net) };
    let gw = gateway_with(network);
    let err = bounded("a start with the signer down", GENEROUS, gw.start_lv2v(Lv2vRequest::default()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, GatewayError::Signer(SignerError::Unreachable { .. })),
        "not a typed signer error: {err:?}"
    );
    assert!(err.to_string().contains("signer unreachable"), "{err}");
    let stats = net.orchestrator().stats();
    assert_eq!((stats.lv2v_sessions_started, stats.get_orchestrator_calls), (0, 0), "{stats:?}");
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_5xx_is_retried_with_backoff_then_succeeds() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    net.signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 503, count: 2 });
    let t0 = Instant::now();
    let job =
        bounded("a start through two 503s", GENEROUS, gw.start_lv2v(Lv2vRequest::default())).await.unwrap();
    assert_eq!(net.signer.stats().faults_injected, 2);
    // Two pauses (200 ms, then 400 ms) before the third attempt: a sleep never ends early.
    assert!(t0.elapsed() >= Duration::from_millis(600), "retried without backoff: {:?}", t0.elapsed());
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 1);
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

/// A local network, a gateway paying every 200 ms, and an LV2V job past its first payment cycle.
async fn paying_lv2v_job() -> (LocalNetwork, Gateway, Lv2vJob) {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    wait_until("a first payment cycle", GENEROUS, || {
        let s = job.payment_stats();
        s.payments_sent + s.cycles_skipped >= 1
    })
    .await;
    (net, gw, job)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_482_skips_cycles_and_481_stops_payments_with_the_reason() {
    let (net, gw, job) = paying_lv2v_job().await;

    // 482 three times: three skipped cycles, no failure, and payments continue afterwards.
    let before = job.payment_stats();
    let injected_before = net.signer.stats().faults_injected;
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 482,
        count: 3,
    });
    wait_until("the 482 answers are used up", GENEROUS, || {
        net.signer.stats().faults_injected == injected_before + 3
    })
    .await;
    wait_until("three skipped cycles", GENEROUS, || {
        job.payment_stats().cycles_skipped >= before.cycles_skipped + 3
    })
    .await;
    let calls = net.signer.stats().generate_live_payment_calls;
    wait_until("payments continue after the skips", GENEROUS, || {
        net.signer.stats().generate_live_payment_calls >= calls + 2
    })
    .await;
    let after = job.payment_stats();
    assert_eq!((after.failures, after.stopped.clone()), (before.failures, None), "{after:?}");

    // 481 (price above the limit): payments stop for good, with the reason.
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 481,
        count: 0,
    });
    let reason = bounded("payments stopping on 481", GENEROUS, job.payments_stopped()).await;
    assert!(matches!(&reason, PaymentStop::Refused(why) if why.contains("481")), "{reason:?}");
    assert_eq!(job.payment_stats().stopped, Some(reason));
    // Stopped means stopped: no further signer calls over several intervals.
    let calls = net.signer.stats().generate_live_payment_calls;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(net.signer.stats().generate_live_payment_calls, calls, "payments went on after 481");
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_down_mid_stream_stops_payments_with_a_clear_reason() {
    let (net, gw, job) = paying_lv2v_job().await;
    let mut publisher = job.publisher().await;

    net.signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 503, count: 0 });
    let stop = bounded("payments giving up on the signer", GENEROUS, job.payments_stopped()).await;
    match &stop {
        PaymentStop::TooManyFailures { failures, last_error } => {
            assert_eq!(*failures, MAX_FAILED_CYCLES);
            assert!(last_error.contains("503"), "{last_error}");
        }
        other => panic!("not a clear stop: {other:?}"),
    }
    // The stream itself goes on until the orchestrator decides otherwise.
    let seq = publisher.write_segment(Bytes::from_static(b"still streaming")).await.unwrap();
    assert!(seq <= 1, "{seq}");
    bounded("stopping the job", GENEROUS, job.stop()).await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Payments stop
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_stream_whose_payments_stop_is_ended_and_its_channels_close() {
    // Each 100 ms debit bills 30 s; one ticket (6000 wei) buys 60 s at 100 wei/s: the preload
    // lasts a few ticks, and the gateway's next top-up is an hour away.
    let config = NetworkConfig {
        orchestrator: OrchestratorConfig {
            byoc_debit_interval: Duration::from_millis(100),
            usage_time_scale: 300.0,
            ticket_ev_wei: 6_000,
            ticket_face_value_wei: 6_000_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = Gateway::start(GatewayConfig {
        network: settings_for(&net),
        byoc_payment_interval: Duration::from_secs(3600),
        ..Default::default()
    })
    .unwrap();
    let mut request = ByocJobRequest::new("text-reversal");
    request.enable_data_output = true;
    let job = gw.start_byoc_job(request).await.unwrap();
    let mut data = job.data().unwrap();
    let control = job.control().await.unwrap();

    // The data channel ends (end of stream or a terminal error), it does not hang.
    let end = bounded("the data channel ending", GENEROUS, async {
        loop {
            match data.next().await {
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        }
    })
    .await;
    assert!(end.as_ref().is_none_or(TrickleError::is_terminal), "{end:?}");
    assert_eq!(net.orchestrator().stats().stopped_for_payment, 1);
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    // The control channel is gone too: sending fails instead of blocking.
    let sent = bounded("a control message to a stopped stream", GENEROUS, async {
        loop {
            if let Err(e) = control.send(&serde_json::json!({"text": "anyone?"})).await {
                break e;
            }
        }
    })
    .await;
    assert!(sent.is_terminal(), "{sent:?}");
    control.close().await;
    // Stopping an already stopped stream answers (an error or not) within a bound.
    let _ = bounded("stopping a stream the orchestrator ended", GENEROUS, job.stop()).await;
    gw.shutdown();
    net.shutdown().await;
}
