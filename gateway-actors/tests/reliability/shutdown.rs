//! Shutdown in every state: bounded, typed, nothing left running.

use super::*;

// ---------------------------------------------------------------------------------------------
// 5. Shutdown in every state
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_slow_selection_answers_stopped_promptly() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    gw.identity().await.unwrap();
    net.orchestrator().set_fault(OrchestratorFault::Delay {
        path: "/net.Orchestrator/".into(),
        delay_ms: 30_000,
        count: 10,
    });
    let selecting = tokio::spawn({
        let gw = gw.clone();
        async move { gw.select(&["live-video-to-video/noop".parse().unwrap()], None).await }
    });
    wait_until("the selection reaches the orchestrator", GENEROUS, || {
        net.orchestrators[0].server.open_connections() > 0
    })
    .await;
    let t0 = Instant::now();
    gw.shutdown();
    assert!(t0.elapsed() < Duration::from_secs(2), "shutdown blocked for {:?}", t0.elapsed());
    let result = bounded("a selection cut by shutdown", Duration::from_secs(5), selecting).await.unwrap();
    assert!(matches!(result, Err(GatewayError::Stopped)), "{result:?}");
    let after = bounded("a call after shutdown", Duration::from_secs(5), gw.identity()).await;
    assert!(matches!(after, Err(GatewayError::Stopped)), "{after:?}");
    drop(gw);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_job_start_answers_stopped_and_leaves_nothing_running() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    net.orchestrator().set_fault(OrchestratorFault::Delay {
        path: gateway_core::jobs::LIVE_VIDEO_TO_VIDEO_PATH.into(),
        delay_ms: 30_000,
        count: 10,
    });
    let starting = tokio::spawn({
        let gw = gw.clone();
        async move { gw.start_lv2v(Lv2vRequest::default()).await.map(|_| ()) }
    });
    // Selected, and the start request is held by the orchestrator.
    wait_until("the selection", GENEROUS, || net.orchestrator().stats().get_orchestrator_calls >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!starting.is_finished(), "the start was not held");
    let t0 = Instant::now();
    gw.shutdown();
    assert!(t0.elapsed() < Duration::from_secs(2), "shutdown blocked for {:?}", t0.elapsed());
    let result = bounded("a start cut by shutdown", Duration::from_secs(5), starting).await.unwrap();
    assert!(matches!(result, Err(GatewayError::Stopped)), "{result:?}");
    // Nothing keeps running: no session, no payments, and no connection once the client is gone.
    let payments = net.signer.stats().generate_live_payment_calls;
    drop(gw);
    wait_until("the held start's connection is released", GENEROUS, || {
        net.orchestrators[0].server.open_connections() == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(net.signer.stats().generate_live_payment_calls, payments, "payments after shutdown");
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_running_video_job_loses_nothing_and_leaks_nothing() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    let video = VideoPublisher::start(job.publisher().await, small_video()).unwrap();
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    for _ in 0..60 {
        video.write_frame(pattern.next_frame()).unwrap();
    }
    // The gateway goes away mid-stream: payments stop, the media path keeps going.
    gw.shutdown();
    for _ in 0..60 {
        video.write_frame(pattern.next_frame()).unwrap();
    }
    let stats = bounded("finishing the video", Duration::from_secs(40), video.finish()).await.unwrap();
    assert_eq!((stats.frames_encoded, stats.frames_dropped), (120, 0), "{stats:?}");
    assert!(stats.segments_published >= 1, "{stats:?}");
    assert_eq!(stats.bytes_published + stats.bytes_drained, stats.bytes_encoded, "{stats:?}");
    assert_eq!(stats.segments_failed, 0, "{stats:?}");
    bounded("stopping the job after shutdown", GENEROUS, job.stop()).await.unwrap();
    wait_until("the session ends", GENEROUS, || net.orchestrator().stats().active_sessions == 0).await;
    drop(gw);
    wait_until("no connection left open", GENEROUS, || net.orchestrators[0].server.open_connections() == 0)
        .await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_a_video_while_the_server_stalls_is_bounded_and_releases_the_server() {
    let (net, http, url) = plaintext_channel("stalled").await;
    let publisher = TricklePublisher::start(
        http.clone(),
        &url,
        PublisherConfig { stall_timeout: STALL, ..Default::default() },
    )
    .await;
    // The server stops reading after 1 kB and never recovers.
    net.orchestrator().trickle().set_fault("stalled", TrickleFault::StallAfterBytes(1000));
    let video = VideoPublisher::start(publisher, small_video()).unwrap();
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    for _ in 0..45 {
        video.write_frame(pattern.next_frame()).unwrap();
    }
    // Encode everything first, so the timed part below is the finish itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while video.stats().await.unwrap().frames_encoded < 45 {
        assert!(Instant::now() < deadline, "frames not encoded: {:?}", video.stats().await);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let t0 = Instant::now();
    let stats =
        bounded("finish against a stalled server", Duration::from_secs(30), video.finish()).await.unwrap();
    // One stalled segment costs one stall timeout; the margin covers the flush and encoding.
    assert!(t0.elapsed() < STALL * 2 + Duration::from_secs(3), "finish took {:?}", t0.elapsed());
    assert!(stats.segments_failed >= 1, "{stats:?}");
    assert_eq!(stats.segments_published, 0, "{stats:?}");
    assert_eq!(stats.bytes_published + stats.bytes_drained, stats.bytes_encoded, "{stats:?}");
    // The abandoned POST is deleted, which releases the server's stalled handler: once the
    // client is gone, no connection remains.
    drop(http);
    wait_until("the stalled connection is released", GENEROUS, || {
        net.orchestrators[0].server.open_connections() == 0
    })
    .await;
    net.shutdown().await;
}
