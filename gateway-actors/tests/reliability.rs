//! Reliability and security over real sockets (issue 8): the gateway keeps going under network
//! faults and hostile answers, loses no accepted data, never hangs on shutdown, and keeps its
//! secrets out of logs and errors.
//!
//! - A connection dropped mid-segment fails that segment only; the next goes through on the
//!   next sequence number, readers of the broken segment are released, and every byte written
//!   is counted as sent or failed.
//! - An orchestrator dying mid-job turns into publisher errors (not a hang), a new job fails
//!   over to the survivor, and no connection is left open once the jobs and gateway are gone.
//! - Signer faults: down at start is a typed error before any orchestrator is touched; 5xx is
//!   retried with backoff; 482 skips a payment cycle and payments go on; 481 stops payments
//!   with the reason.
//! - A BYOC stream whose payments stop is stopped by the orchestrator, and the client's
//!   channels end instead of hanging.
//! - Shutdown during a selection, during a running video job and while the server stalls
//!   finishes within a bound, and leaves no connection open.
//! - Huge bodies, wrong JSON types, invalid UTF-8 and non-HTTP/2 answers give typed errors.
//! - Signer credentials (an `Authorization` header, a `?key=` query) appear in no log line at
//!   TRACE level and in no error's `Display` or `Debug`.
//!
//! Every wait for something to happen is a poll with a generous deadline. The only fixed sleep
//! checks that something does *not* happen (no payment after a 481), which cannot flake.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_actors::http::{read_body_capped, HttpClients, MAX_RESPONSE_BYTES};
use gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use gateway_actors::payments::{PaymentStop, MAX_FAILED_CYCLES};
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{PublisherConfig, SubscriberConfig, TricklePublisher, TrickleSubscriber};
use gateway_actors::{ByocJobRequest, Gateway, GatewayConfig, GatewayError, Lv2vJob, Lv2vRequest};
use gateway_core::error::{JobError, SignerError, TrickleError};
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::{Rational, TestPattern};
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::OrchestratorConfig;
use gateway_testkit::signer::{SignerConfig, SignerFault};
use gateway_testkit::trickle_server::TrickleFault;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::read_head;

const STALL: Duration = Duration::from_millis(800);
const GENEROUS: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `done` until it holds; panics with `what` after `within`.
async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Awaits `fut`, panicking if it takes longer than `within` (a hang is the failure).
async fn bounded<T>(what: &str, within: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(within, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {within:?}"),
    }
}

/// A URL on which nothing listens (the port was just free).
fn closed_port_url(scheme: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("{scheme}://{}", l.local_addr().unwrap())
}

fn settings_for(net: &LocalNetwork) -> NetworkSettings {
    NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    }
}

fn gateway_with(network: NetworkSettings) -> Gateway {
    Gateway::start(GatewayConfig {
        network,
        lv2v_payment_interval: Duration::from_millis(200),
        byoc_payment_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .unwrap()
}

/// A plaintext network with one trickle channel and a client for it.
async fn plaintext_channel(channel: &str) -> (LocalNetwork, reqwest::Client, String) {
    let net = LocalNetwork::start(NetworkConfig { tls: false, ..Default::default() }).await.unwrap();
    assert!(net.orchestrator().trickle().create_channel(channel, MIME_MPEGTS));
    let url = channel_url(&net.orchestrator_urls()[0], channel);
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    (net, http, url)
}

fn small_video() -> VideoPublisherConfig {
    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.queue_frames = 1000;
    cfg.debt_skipping = false;
    cfg
}

// ---------------------------------------------------------------------------------------------
// 1. Connection dropped mid-segment
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_one_segment_and_the_next_goes_through() {
    let (net, http, url) = plaintext_channel("drop").await;
    let mut publisher = TricklePublisher::start(
        http.clone(),
        &url,
        PublisherConfig { stall_timeout: STALL, ..Default::default() },
    )
    .await;
    let mut written = 0u64;
    let zero = Bytes::from_static(b"segment zero");
    written += zero.len() as u64;
    assert_eq!(publisher.write_segment(zero).await.unwrap(), 0);

    // A reader waiting on segment 1 must be released when it breaks, not left hanging.
    let mut reader = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(1), ..Default::default() },
    );
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(segment) = reader.next_segment().await.unwrap() {
            let seq = segment.seq();
            // A cut-short segment is an error for that segment only.
            let body = segment.read_all().await.map(|b| b.len()).ok();
            seen.push((seq, body));
            if seq >= 2 {
                break;
            }
        }
        seen
    });

    // The server aborts the connection after 10 kB of segment 1.
    net.orchestrator().trickle().set_fault("drop", TrickleFault::DropAfterBytes(10_000));
    let mut sink = publisher.next_segment().unwrap();
    assert_eq!(sink.seq(), 1);
    let chunk = Bytes::from(vec![5u8; 4096]);
    let mut write_error = None;
    for _ in 0..250 {
        written += chunk.len() as u64;
        if let Err(e) = bounded("a write to a dropped segment", STALL * 3, sink.write(chunk.clone())).await {
            write_error = Some(e);
            break;
        }
    }
    // Socket buffers may swallow every write; then the end of the segment reports it.
    let finish = bounded("finishing a dropped segment", STALL * 3, sink.finish()).await;
    let failure =
        write_error.or(finish.err()).expect("segment 1 was accepted although its connection dropped");
    assert!(matches!(failure, TrickleError::Segment { seq: 1, .. }), "{failure:?}");
    assert!(!failure.is_terminal(), "one dropped connection must not end the stream: {failure}");

    // The next segment goes through on the next sequence number.
    net.orchestrator().trickle().clear_faults("drop");
    let two = Bytes::from_static(b"segment two");
    written += two.len() as u64;
    assert_eq!(bounded("segment 2", GENEROUS, publisher.write_segment(two)).await.unwrap(), 2);
    let seen = bounded("the reader of the broken segment", GENEROUS, reader).await.unwrap();
    assert_eq!(seen.last(), Some(&(2, Some(11))), "the reader never got segment 2: {seen:?}");

    let stats = publisher.stats();
    assert_eq!(stats.bytes_sent + stats.bytes_failed, written, "every byte accounted for: {stats:?}");
    assert_eq!((stats.segments_completed, stats.segments_failed), (2, 1), "{stats:?}");
    assert!(publisher.terminal_error().is_none());
    publisher.close().await;
    net.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Orchestrator dies mid-job
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_dying_mid_job_ends_its_publisher_and_new_jobs_fail_over() {
    // 1e6 wei tickets (go's default is 8e9, which at the default price covers 80 hours of
    // 720p30): one covers ~36 s, so the fast signer clock below keeps making payments fall due.
    let orchestrator = OrchestratorConfig {
        ticket_ev_wei: 1_000_000,
        ticket_face_value_wei: 1_000_000_000,
        ..Default::default()
    };
    let config = NetworkConfig { orchestrators: 2, orchestrator, ..Default::default() };
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    let urls = net.orchestrator_urls();
    let dead = urls.iter().position(|u| *u == job.orchestrator).unwrap();
    let survivor = 1 - dead;
    let mut publisher = job.publisher().await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"before the crash")).await.unwrap(), 0);

    // The orchestrator process dies: its listener closes and its connections are cut, with no
    // goodbye (no channel close) to the client.
    net.orchestrators[dead].server.stop();
    // Stopping is asynchronous; write only once the crash is complete.
    wait_until("the dead server has cut every connection", GENEROUS, || {
        net.orchestrators[dead].server.open_connections() == 0
    })
    .await;

    // The publisher reports segment errors and gives up after a few in a row; it never hangs.
    let terminal = bounded("the publisher noticing the crash", GENEROUS, async {
        loop {
            match publisher.write_segment(Bytes::from_static(b"after the crash")).await {
                Err(e) if e.is_terminal() => break e,
                Err(e) => assert!(matches!(e, TrickleError::Segment { .. }), "{e:?}"),
                Ok(seq) => panic!("segment {seq} accepted by a dead orchestrator"),
            }
        }
    })
    .await;
    assert!(matches!(terminal, TrickleError::Terminal { .. }), "{terminal:?}");
    assert!(publisher.next_segment().unwrap_err().is_terminal());

    // Payments to the dead orchestrator fail a bounded number of times, then stop for good.
    let stop = bounded("payments giving up on the dead orchestrator", GENEROUS, async {
        let stopped = job.payments_stopped();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                stop = &mut stopped => break stop,
                // Time passes faster for the signer, so a payment falls due every cycle.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    net.signer.advance_clock(Duration::from_secs(2));
                }
            }
        }
    })
    .await;
    assert!(matches!(stop, PaymentStop::TooManyFailures { failures: MAX_FAILED_CYCLES, .. }), "{stop:?}");
    let stats = job.payment_stats();
    assert!(stats.failures >= u64::from(MAX_FAILED_CYCLES), "{stats:?}");

    // A new job fails over to the survivor.
    let job2 = bounded("a job start after the crash", GENEROUS, gw.start_lv2v(Lv2vRequest::default()))
        .await
        .unwrap();
    assert_eq!(job2.orchestrator, urls[survivor]);
    let mut p2 = job2.publisher().await;
    assert_eq!(p2.write_segment(Bytes::from_static(b"on the survivor")).await.unwrap(), 0);
    p2.close().await;

    bounded("stopping the job on the dead orchestrator", GENEROUS, job.stop()).await.unwrap();
    bounded("stopping the job on the survivor", GENEROUS, job2.stop()).await.unwrap();
    wait_until("the survivor has no session", GENEROUS, || {
        net.orchestrators[survivor].orchestrator.stats().active_sessions == 0
    })
    .await;
    assert_eq!(net.orchestrators[dead].server.open_connections(), 0, "a connection to a dead server");
    // No leak: once the jobs, publishers and gateway are gone, so are the connections (pooled
    // idle ones included).
    drop(publisher);
    gw.shutdown();
    drop(gw);
    wait_until("the survivor holds no connection", GENEROUS, || {
        net.orchestrators[survivor].server.open_connections() == 0
    })
    .await;
    net.shutdown().await;
}

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

// ---------------------------------------------------------------------------------------------
// 5b. Interim `100 Continue` keepalives
// ---------------------------------------------------------------------------------------------

/// A trickle server reduced to what go-livepeer does to an idle preconnected POST: every
/// `every` until the first body byte, an unsolicited `HTTP/1.1 100 Continue`. `/next` is a 404
/// (the publisher starts at 0). Each POST's de-chunked body is sent to the returned channel.
async fn continue_keepalive_server(
    every: Duration,
) -> (String, tokio::sync::mpsc::Receiver<(String, Vec<u8>, u32)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                let Some(head) = read_head(&mut socket, &mut data).await else { return };
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                if !head.starts_with("POST") {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let mut body = data;
                let mut keepalives = 0;
                while !body.ends_with(b"0\r\n\r\n") {
                    if body.is_empty() {
                        // Idle: no body byte yet. Keep the request alive as go-livepeer does.
                        match tokio::time::timeout(every, socket.read(&mut buf)).await {
                            Err(_) => {
                                if socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                                    return;
                                }
                                keepalives += 1;
                            }
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(n)) => body.extend_from_slice(&buf[..n]),
                        }
                    } else {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => body.extend_from_slice(&buf[..n]),
                        }
                    }
                }
                let seq = path.rsplit('/').next().unwrap_or_default().to_owned();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: {seq}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = tx.send((path, dechunk_partial(&body), keepalives)).await;
            });
        }
    });
    (format!("http://{addr}/ai/trickle/keepalive"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_100_continue_keepalives_on_an_idle_preconnect_are_ignored() {
    let (url, mut received) = continue_keepalive_server(Duration::from_millis(100)).await;
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    // The preconnected POST for segment 0 idles through several keepalives.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let seq = bounded(
        "a segment after the keepalives",
        GENEROUS,
        publisher.write_segment(Bytes::from_static(b"after the keepalives")),
    )
    .await
    .unwrap();
    assert_eq!(seq, 0);
    let (path, body, keepalives) = bounded("the server's view", GENEROUS, received.recv()).await.unwrap();
    assert_eq!((path.as_str(), body.as_slice()), ("/ai/trickle/keepalive/0", &b"after the keepalives"[..]));
    assert!(keepalives >= 3, "only {keepalives} keepalives were sent while idle");
    // The next segment's preconnect went through the same keepalives and still lands.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"second")).await.unwrap(), 1);
    let (path, body, _) = bounded("the second segment", GENEROUS, received.recv()).await.unwrap();
    assert_eq!((path.as_str(), body.as_slice()), ("/ai/trickle/keepalive/1", &b"second"[..]));
}

// ---------------------------------------------------------------------------------------------
// 5c. A 5xx answered early, on a connection kept open
// ---------------------------------------------------------------------------------------------

/// A trickle server whose first POST is answered `503` at once, before any body byte, on a
/// connection it keeps open and goes on reading (as a server that answers early and drains the
/// body does); later POSTs are read to the end and answered `200`. Sends `(attempt, bytes the
/// server got, whether the body ended within 3 s)` for every POST of segment 0: for the first,
/// what arrived after its answer.
async fn early_503_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<(usize, usize, bool)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (tx, posts) = (tx.clone(), posts.clone());
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                // Requests one after another on the connection (keep-alive).
                loop {
                    let Some(head) = read_head(&mut socket, &mut data).await else { return };
                    if !head.starts_with("POST") {
                        let not_found =
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(not_found).await;
                        return;
                    }
                    if !head.split_whitespace().nth(1).is_some_and(|p| p.ends_with("/0")) {
                        // The next segment's preconnect: held, unanswered, until the client goes.
                        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                        return;
                    }
                    let attempt = posts.fetch_add(1, Ordering::SeqCst);
                    if attempt == 0 {
                        let early = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(early).await.is_err() {
                            return;
                        }
                    }
                    let body_end = loop {
                        if let Some(i) = data.windows(5).position(|w| w == b"0\r\n\r\n") {
                            break Some(i + 5);
                        }
                        match tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
                            _ => break None,
                        }
                    };
                    let body: Vec<u8> = data.drain(..body_end.unwrap_or(data.len())).collect();
                    let _ = tx.send((attempt, dechunk_partial(&body).len(), body_end.is_some()));
                    if body_end.is_none() {
                        return;
                    }
                    if attempt > 0 {
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(ok).await;
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/ai/trickle/early"), rx)
}

/// The payload of the complete chunks of a chunked body (stops at the first incomplete one).
fn dechunk_partial(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16) else {
            break;
        };
        if size == 0 || body.len() < line_end + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
    out
}

/// The retry after an early `503` must carry the whole segment: the first request, answered
/// but still open, must not take chunks meant for the retry. Otherwise the server completes a
/// short segment while the client counts every byte as delivered (found by the 10-minute
/// soak: one segment confirmed at 32 KiB, stored at 16 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_an_early_5xx_carries_the_whole_segment() {
    const CHUNKS: usize = 8;
    const CHUNK: usize = 4096;
    let (url, mut posts) = early_503_server().await;
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    // Let the preconnected POST get its early answer before the first chunk exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sink = publisher.next_segment().unwrap();
    let mut written = 0;
    for i in 0..CHUNKS {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if sink.write(Bytes::from(vec![i as u8; CHUNK])).await.is_err() {
            break;
        }
        written += CHUNK;
    }
    let finished = bounded("the segment's answer", GENEROUS, sink.finish()).await;
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        match bounded("the server's view", GENEROUS, posts.recv()).await {
            Some((attempt, got, ended)) => seen.insert(attempt, (got, ended)),
            None => break,
        };
    }
    assert_eq!(publisher.stats().post_retries, 1, "the early 503 was retried");
    match finished {
        Ok(()) => {
            assert_eq!(written, CHUNKS * CHUNK);
            // The answered request took no chunk, and its body ended at once, so its connection
            // is not left hanging.
            assert_eq!(seen.get(&0), Some(&(0, true)), "{seen:?}");
            assert_eq!(seen.get(&1), Some(&(written, true)), "the retry carried the whole segment: {seen:?}");
        }
        Err(e) => panic!("a retry before any body byte must succeed here: {e}; server saw {seen:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input and hostile answers
// ---------------------------------------------------------------------------------------------

/// A server that answers every request with `head` and then `body`, and closes.
async fn hostile_server(head: &str, body: Bytes) -> String {
    let head = head.to_owned();
    scripted_server(move |_| (head.clone(), body.clone())).await
}

/// A server that answers its `n`th request (from 0) with `answer(n)`: a head, then a body.
async fn scripted_server(answer: impl Fn(usize) -> (String, Bytes) + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (answer, requests) = (answer.clone(), requests.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 1 << 20 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (head, body) = answer(requests.fetch_add(1, Ordering::SeqCst));
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // A client that stops reading ends this with a write error.
                for piece in body.chunks(64 * 1024) {
                    if socket.write_all(piece).await.is_err() {
                        return;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sequence_numbers_from_a_trickle_server_give_typed_errors() {
    let http =
        HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator("http://127.0.0.1:1").unwrap();
    let head = |status: &str, headers: &str| {
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
    };
    let subscribe = |origin: String| {
        let config = SubscriberConfig { start: SeqSpec::At(0), max_retries: 2, ..Default::default() };
        TrickleSubscriber::new(http.clone(), &format!("{origin}/ai/trickle/absurd"), config)
    };

    // A segment claiming a request-only index, or numbers that are no i64: typed header errors.
    for seq in ["-2", "-1", "99999999999999999999", "12abc", "-9223372036854775808"] {
        let origin =
            hostile_server(&head("200 OK", &format!("Lp-Trickle-Seq: {seq}\r\n")), Bytes::new()).await;
        let err = bounded("a segment with an absurd seq", GENEROUS, subscribe(origin).next_segment()).await;
        assert!(matches!(err, Err(TrickleError::InvalidHeader { .. })), "Lp-Trickle-Seq {seq}: {err:?}");
    }

    // The largest index is a valid segment; the next index saturates instead of overflowing.
    let origin =
        hostile_server(&head("200 OK", &format!("Lp-Trickle-Seq: {}\r\n", i64::MAX)), Bytes::new()).await;
    let mut sub = subscribe(origin);
    let seg = bounded("a segment at i64::MAX", GENEROUS, sub.next_segment()).await.unwrap().unwrap();
    assert_eq!(seg.seq(), i64::MAX);

    // A live edge that runs away on every 470: bounded jumps, then a typed error.
    let origin = scripted_server(move |n| {
        let latest = 1000 * (n as i64 + 1);
        (head("470 Segment Not Available", &format!("Lp-Trickle-Latest: {latest}\r\n")), Bytes::new())
    })
    .await;
    let err = bounded("a runaway live edge", GENEROUS, subscribe(origin).next_segment()).await;
    assert!(matches!(err, Err(TrickleError::SequenceNotAvailable { .. })), "{err:?}");
}

fn json_head(status: &str, length: usize) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
}

/// `body` in chunked transfer encoding (no length announced up front).
fn chunked(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 1024);
    for piece in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Bytes::from(out)
}

const CHUNKED_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

async fn identity_error(signer: String) -> SignerError {
    let gw = Gateway::start(GatewayConfig {
        network: NetworkSettings { signer: Some(signer), ..Default::default() },
        ..Default::default()
    })
    .unwrap();
    let err = bounded("an identity call to a hostile signer", GENEROUS, gw.identity()).await.unwrap_err();
    gw.shutdown();
    match err {
        GatewayError::Signer(e) => e,
        other => panic!("not a signer error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signer_answers_give_typed_errors() {
    let ten_mb = vec![b'['; 10 * 1024 * 1024];
    // 10 MB announced: refused from the header.
    let url = hostile_server(&json_head("200 OK", ten_mb.len()), Bytes::from(ten_mb.clone())).await;
    let e = identity_error(url).await;
    assert!(
        matches!(&e, SignerError::InvalidResponse { reason, .. } if reason.contains("larger than")),
        "{e:?}"
    );
    // 10 MB without a length: refused while streaming, at the cap.
    let url = hostile_server(CHUNKED_HEAD, chunked(&ten_mb)).await;
    let e = identity_error(url).await;
    assert!(
        matches!(&e, SignerError::InvalidResponse { reason, .. } if reason.contains("larger than")),
        "{e:?}"
    );
    // Wrong JSON type.
    let url = hostile_server(&json_head("200 OK", 2), Bytes::from_static(b"[]")).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::InvalidResponse { .. }), "{e:?}");
    // Fields of the wrong type inside the right shape.
    let body = br#"{"address": 7, "signature": ["x"]}"#;
    let url = hostile_server(&json_head("200 OK", body.len()), Bytes::from_static(body)).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::InvalidResponse { .. }), "{e:?}");
    // Invalid UTF-8, as a success and as an error body.
    let garbage = Bytes::from_static(b"\xff\xfe\xfd{\"\xc3\x28");
    let url = hostile_server(&json_head("200 OK", garbage.len()), garbage.clone()).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::InvalidResponse { .. }), "{e:?}");
    let url = hostile_server(&json_head("500 Internal Server Error", garbage.len()), garbage).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::Http { status: 500, .. }), "{e:?}");
    let _ = e.to_string(); // printable without panicking
}

async fn select(network: NetworkSettings) -> Result<gateway_actors::selector::Selection, GatewayError> {
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let query = ["live-video-to-video/noop".parse().unwrap()];
    let r = bounded("a selection against a hostile peer", GENEROUS, gw.select(&query, None)).await;
    gw.shutdown();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_discovery_and_orchestrator_answers_give_typed_errors() {
    // Discovery answering 10 MB of list.
    let url = hostile_server(CHUNKED_HEAD, chunked(&vec![b'['; 10 * 1024 * 1024])).await;
    let err = select(NetworkSettings { discovery: Some(url), ..Default::default() }).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::NoOrchestratorAvailable { .. })), "{err:?}");
    assert!(err.to_string().contains("larger than"), "{err}");
    // Discovery answering the wrong JSON type.
    let body = br#"{"orchestrators": 5}"#;
    let url = hostile_server(&json_head("200 OK", body.len()), Bytes::from_static(body)).await;
    let err = select(NetworkSettings { discovery: Some(url), ..Default::default() }).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::NoOrchestratorAvailable { .. })), "{err:?}");
    // An "orchestrator" that answers gRPC with HTTP/1.1 garbage is rejected with a reason.
    let url = hostile_server(&json_head("200 OK", 3), Bytes::from_static(b"\xff\x00\xfe")).await;
    let err =
        select(NetworkSettings { orchestrators: vec![url.clone()], ..Default::default() }).await.unwrap_err();
    match err {
        GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) => {
            assert_eq!(rejections.len(), 1, "{rejections:?}");
            assert!(!rejections[0].reason.to_string().is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_body_capped_stops_at_the_limit() {
    let _ = gateway_actors::tls::provider(); // reqwest needs a process-wide rustls provider
    let http = reqwest::Client::new();
    let exactly = vec![b'a'; MAX_RESPONSE_BYTES];
    // At the limit: accepted, whether announced or streamed.
    let url = hostile_server(&json_head("200 OK", exactly.len()), Bytes::from(exactly.clone())).await;
    let body = read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.unwrap();
    assert_eq!(body.len(), MAX_RESPONSE_BYTES);
    let url = hostile_server(CHUNKED_HEAD, chunked(&exactly)).await;
    let body = read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.unwrap();
    assert_eq!(body.len(), MAX_RESPONSE_BYTES);
    // One byte over: refused, announced or streamed.
    let over = vec![b'a'; MAX_RESPONSE_BYTES + 1];
    let url = hostile_server(&json_head("200 OK", over.len()), Bytes::from(over.clone())).await;
    let t0 = Instant::now();
    assert!(read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.is_err());
    let url = hostile_server(CHUNKED_HEAD, chunked(&over)).await;
    assert!(read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.is_err());
    assert!(t0.elapsed() < GENEROUS);
}

// ---------------------------------------------------------------------------------------------
// 7. Secrets
// ---------------------------------------------------------------------------------------------

const HEADER_SECRET: &str = "SECRET-bearer-5b1e9c77";
const QUERY_SECRET: &str = "SECRET-query-07d4aa31";

/// Whether the global capture layer records events right now.
static CAPTURING: AtomicBool = AtomicBool::new(false);

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Installs (once) a global TRACE-level subscriber writing into a buffer while [`CAPTURING`]
/// is set. Global, not `with_default`: the gateway logs from its own actor thread and from
/// tokio worker threads, which a thread-local default would not see. `log` records (reqwest)
/// are forwarded too.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(Capture(buffer.clone()))
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::filter_fn(|_| CAPTURING.load(Ordering::SeqCst)));
            tracing_subscriber::registry().with(layer).try_init().expect("no other global subscriber");
            buffer
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_credentials_appear_in_no_log_line_and_no_error() {
    let logs = captured_logs();
    let config = NetworkConfig {
        signer: SignerConfig { bearer_token: Some(HEADER_SECRET.into()), ..Default::default() },
        ..Default::default()
    };
    let net = LocalNetwork::start(config).await.unwrap();
    let headers: BTreeMap<String, String> =
        [("Authorization".to_owned(), format!("Bearer {HEADER_SECRET}"))].into();
    let dead_orchestrator = closed_port_url("https");
    let mut orchestrators = vec![dead_orchestrator];
    orchestrators.extend(net.orchestrator_urls());
    let network = NetworkSettings {
        orchestrators,
        signer: Some(format!("{}/?key={QUERY_SECRET}", net.signer_url())),
        signer_headers: headers.clone(),
        ..Default::default()
    };
    CAPTURING.store(true, Ordering::SeqCst);
    let gw = gateway_with(network.clone());
    let mut shown = vec![format!("{gw:?}"), format!("{:?}", gw.config())];

    // A working job: the signer refuses calls without the bearer token, so this proves the
    // credentials are in use.
    let job = bounded("a job with signer credentials", GENEROUS, gw.start_lv2v(Lv2vRequest::default()))
        .await
        .unwrap();
    wait_until("a payment cycle", GENEROUS, || {
        let s = job.payment_stats();
        s.payments_sent + s.cycles_skipped >= 1
    })
    .await;
    assert_eq!(net.signer.stats().unauthorized, 0);

    // The signer fails with 500: the running job's payments fail (logged), new jobs fail.
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 500,
        count: 0,
    });
    wait_until("a failed payment cycle", GENEROUS, || job.payment_stats().failures >= 1).await;
    let err = gw.start_lv2v(Lv2vRequest::default()).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/sign-byoc-job".into()),
        status: 500,
        count: 0,
    });
    let err = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);
    net.signer.clear_faults();
    job.stop().await.unwrap();
    gw.shutdown();

    // The same credentials against a signer that is down.
    let unreachable = NetworkSettings {
        signer: Some(format!("{}/api/?key={QUERY_SECRET}", closed_port_url("http"))),
        ..network
    };
    let gw = gateway_with(unreachable);
    let err = gw.identity().await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}"), format!("{gw:?}")]);
    gw.shutdown();
    CAPTURING.store(false, Ordering::SeqCst);

    for text in &shown {
        assert!(!text.contains("SECRET-"), "a secret in an error or debug output: {text}");
    }
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    // The capture saw the gateway's own threads (the signer retry is logged on the actor thread).
    assert!(logs.contains("signer call failed; retrying"), "capture saw nothing:\n{logs}");
    assert!(logs.contains("payment failed; retrying next cycle"), "capture saw nothing:\n{logs}");
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains("SECRET-")).collect();
    assert!(leaks.is_empty(), "secrets in {} log lines:\n{}", leaks.len(), leaks.join("\n"));
    net.shutdown().await;
}

/// Signers are checked against the system roots; a private CA can be added explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_tls_needs_a_trusted_root_and_accepts_an_added_ca() {
    use base64::Engine;
    let tls = gateway_testkit::tls::SelfSignedTls::generate(&[]).unwrap();
    let signer = gateway_testkit::signer::LocalSigner::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = gateway_testkit::serve::serve(listener, signer.router(), Some(tls.server_config.clone()));
    let network =
        NetworkSettings { signer: Some(format!("https://localhost:{}", addr.port())), ..Default::default() };

    let untrusted = Gateway::start(GatewayConfig { network: network.clone(), ..Default::default() }).unwrap();
    assert!(untrusted.identity().await.is_err(), "an unknown certificate must be refused");
    untrusted.shutdown();

    let b64 = base64::engine::general_purpose::STANDARD.encode(&tls.certificate_der);
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    let trusted = Gateway::start(GatewayConfig {
        network,
        signer_ca_pem: vec![pem.into_bytes()],
        ..Default::default()
    })
    .unwrap();
    let id = trusted.identity().await.unwrap().unwrap();
    assert_eq!(id.address_bytes, signer.address());
    trusted.shutdown();
    server.shutdown().await;
}
