//! Live streams that survive their orchestrator (issue 15), on the local network over real
//! sockets: kill the orchestrator, stall its segments, close the stream, refuse payment; two
//! orchestrators dying in turn; a swap storm and an exhausted candidate list that must end
//! the stream; a swap while the caller is blocked in `write_frame_when_ready`; BYOC control
//! messages sent while the orchestrator is dead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::jobs::PAYMENT_PATH;
use gateway_core::rejection::RejectionReason;
use gateway_core::swap::SwapReason;
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::SeqSpec;
use gateway_media::{Rational, TestPattern};
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::OrchestratorConfig;
use gateway_testkit::orchestrator::PaymentRoute;
use gateway_testkit::trickle_server::TrickleFault;
use livepeer_gateway_actors::live::{LiveJobRequest, LiveStream, StreamEnd, SwapConfig};
use livepeer_gateway_actors::media::{MediaStats, VideoPublisherConfig};
use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig, Lv2vRequest};

const W: u32 = 160;
const H: u32 = 96;

async fn network(orchestrators: usize) -> LocalNetwork {
    network_with(orchestrators, OrchestratorConfig::default()).await
}

async fn network_with(orchestrators: usize, orchestrator: OrchestratorConfig) -> LocalNetwork {
    let config = NetworkConfig { orchestrators, tls: false, orchestrator, ..Default::default() };
    LocalNetwork::start(config).await.unwrap()
}

fn gateway(net: &LocalNetwork, payment_interval: Duration) -> Gateway {
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    Gateway::start(GatewayConfig {
        network,
        lv2v_payment_interval: payment_interval,
        byoc_payment_interval: payment_interval,
        ..Default::default()
    })
    .unwrap()
}

fn video() -> VideoPublisherConfig {
    VideoPublisherConfig { encoder_pool: None, ..VideoPublisherConfig::h264(W, H) }
}

/// The index of the orchestrator running the stream now.
fn current(net: &LocalNetwork, stream: &LiveStream) -> usize {
    let now = stream.status().orchestrator;
    net.orchestrator_urls().iter().position(|u| u.trim_end_matches('/') == now).expect("a known orchestrator")
}

/// Writes frames at 30 fps until told to stop or refused; answers how many it wrote, and why
/// it was refused if it was.
fn live_writer(
    stream: &Arc<LiveStream>,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<(u64, Option<String>)>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (s, flag) = (stream.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let mut pattern = TestPattern::new(W, H, Rational::new(30, 1)).unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        let mut n = 0;
        while !flag.load(Ordering::Relaxed) {
            tick.tick().await;
            if let Err(e) = s.video().unwrap().write_frame(pattern.next_frame()) {
                return (n, Some(e.to_string()));
            }
            n += 1;
        }
        (n, None)
    });
    (stop, task)
}

/// Counts output access units and swaps seen by a reader that follows the stream.
fn output_counter(stream: &LiveStream) -> (Arc<AtomicU64>, Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let (units, discontinuities) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut reader = stream.output_video(SeqSpec::Current);
    let (u, d) = (units.clone(), discontinuities.clone());
    let task = tokio::spawn(async move {
        while let Ok(Some(unit)) = reader.next_access_unit().await {
            u.fetch_add(1, Ordering::Relaxed);
            if unit.discontinuity {
                d.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (units, discontinuities, task)
}

/// Waits until the stream is on generation `generation` (or fails the test).
async fn wait_generation(stream: &LiveStream, generation: u32, within: Duration) {
    let started = Instant::now();
    while stream.status().generation < generation {
        assert!(stream.status().ended.is_none(), "ended: {:?}", stream.status().ended);
        assert!(started.elapsed() < within, "no swap {generation} within {within:?}: {:?}", stream.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `f` holds, polling (or fails the test).
async fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_accounting(m: &MediaStats) {
    assert_eq!(m.frames_in, m.frames_encoded + m.frames_dropped, "{m:?}");
    assert_eq!(m.bytes_encoded, m.bytes_published + m.bytes_drained, "{m:?}");
}

async fn start_lv2v(gw: &Gateway, swap: SwapConfig) -> Arc<LiveStream> {
    let stream =
        gw.start_live_stream(LiveJobRequest::Lv2v(Lv2vRequest::default()), Some(video()), swap).await;
    Arc::new(stream.unwrap())
}

/// Stops a stream whose other handles are gone.
async fn stop(stream: Arc<LiveStream>) -> livepeer_gateway_actors::live::LiveStreamReport {
    let stream = Arc::try_unwrap(stream).expect("the test's only handle");
    stream.stop().await
}

/// Kills the orchestrator under a running LV2V stream: it moves to the other one, the output
/// reader goes on with a discontinuity, and every frame and byte is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestrator_is_left_and_the_output_goes_on_from_the_next() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig::default()).await;
    let (units, discontinuities, reader) = output_counter(&stream);
    let (stop_writing, writer) = live_writer(&stream);
    wait_for("output", Duration::from_secs(10), || units.load(Ordering::Relaxed) > 10).await;

    let first = current(&net, &stream);
    net.orchestrators[first].server.stop();
    wait_generation(&stream, 1, Duration::from_secs(15)).await;
    let before = units.load(Ordering::Relaxed);
    wait_for("output after the swap", Duration::from_secs(10), || {
        units.load(Ordering::Relaxed) > before + 10
    })
    .await;
    wait_for("the first segment's time", Duration::from_secs(5), || {
        stream.status().swaps[0].first_segment_after.is_some()
    })
    .await;

    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    let status = stream.status();
    let swap = &status.swaps[0];
    assert!(matches!(swap.reason, SwapReason::PublishConnection { .. }), "{:?}", swap.reason);
    assert_eq!(swap.from, net.orchestrator_urls()[first].trim_end_matches('/'));
    assert_eq!(status.orchestrator, net.orchestrator_urls()[1 - first].trim_end_matches('/'));
    assert_eq!(discontinuities.load(Ordering::Relaxed), 1);
    assert!(swap.first_output_after.is_some(), "{swap:?}");

    let report = stop(stream).await;
    reader.abort();
    let media = report.media.unwrap();
    assert_accounting(&media);
    assert!(media.segments_published > 0);
    // The cut segment's rest was lost before the swap was detected, and is in its record.
    let lost = report.status.swaps[0].bytes_drained;
    assert!(lost > 0 && lost <= media.bytes_drained, "{lost} of {}", media.bytes_drained);
    assert!(matches!(report.status.ended, Some(StreamEnd::Stopped)));
    // Nothing left running on the orchestrator that took over.
    let second = &net.orchestrators[1 - first].orchestrator;
    wait_for("the session to end", Duration::from_secs(5), || second.stats().active_sessions == 0).await;
    net.shutdown().await;
}

/// Every segment stalls: after `failed_segments` in a row the stream moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_stalling_every_segment_is_left() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig { failed_segments: 2, ..Default::default() }).await;
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let first = current(&net, &stream);
    let publish = stream.channels().publish.unwrap().rsplit('/').next().unwrap().to_owned();
    net.orchestrators[first]
        .orchestrator
        .trickle()
        .set_fault(&publish, TrickleFault::StallSegments { after_bytes: 1000, count: 1000 });
    wait_generation(&stream, 1, Duration::from_secs(40)).await;
    let status = stream.status();
    assert!(matches!(status.swaps[0].reason, SwapReason::SegmentsFailed { consecutive } if consecutive >= 2));
    wait_for("a segment on the new orchestrator", Duration::from_secs(10), || {
        stream.status().swaps[0].first_segment_after.is_some()
    })
    .await;
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    let report = stop(stream).await;
    assert_accounting(&report.media.unwrap());
    net.shutdown().await;
}

/// The orchestrator ends the session (closing its channels): the stream moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_orchestrator_closes_moves_on() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig::default()).await;
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = current(&net, &stream);
    net.orchestrators[first].orchestrator.stop_all_sessions();
    wait_generation(&stream, 1, Duration::from_secs(15)).await;
    assert_eq!(stream.status().swaps[0].reason, SwapReason::StreamClosed);
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    assert_accounting(&stop(stream).await.media.unwrap());
    net.shutdown().await;
}

/// The orchestrator refuses payment for good: the stream moves, and the old payment session
/// ends (its payments are kept apart from the new one's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_refusing_payment_is_left() {
    // One ticket just over the start payment's 60 s of 720p30 at 1 wei/pixel: the start leaves
    // little credit, so the first payment cycle pays and reaches the orchestrator.
    let orchestrator = OrchestratorConfig { ticket_ev_wei: 1_700_000_000, ..Default::default() };
    let net = network_with(2, orchestrator).await;
    let gw = gateway(&net, Duration::from_millis(500));
    let stream = start_lv2v(&gw, SwapConfig::default()).await;
    let first = current(&net, &stream);
    let refusing = &net.orchestrators[first].orchestrator;
    refusing.set_fault(OrchestratorFault::RespondStatus {
        path: PAYMENT_PATH.into(),
        status: 400,
        count: 1000,
    });
    let (stop_writing, writer) = live_writer(&stream);
    wait_generation(&stream, 1, Duration::from_secs(15)).await;
    assert!(matches!(stream.status().swaps[0].reason, SwapReason::PaymentRefused { .. }));
    let taking_over = &net.orchestrators[1 - first].orchestrator;
    wait_for("a payment to the new orchestrator", Duration::from_secs(10), || {
        taking_over.stats().payments_accepted >= 2 // the start's and a recurring one
    })
    .await;
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    let report = stop(stream).await;
    let payments = &report.status.payments;
    assert_eq!(payments.len(), 2, "{payments:?}");
    assert_eq!(payments[0].1.payments_sent, 0, "the refusing orchestrator got none: {payments:?}");
    assert!(payments[1].1.payments_sent > 0, "the new orchestrator is paid: {payments:?}");
    assert_accounting(&report.media.unwrap());
    net.shutdown().await;
}

/// Three orchestrators, two die in turn: the stream ends up on the third, two swaps recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orchestrators_dying_in_turn_leave_the_stream_on_the_third() {
    let net = network(3).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig::default()).await;
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = current(&net, &stream);
    net.orchestrators[first].server.stop();
    wait_generation(&stream, 1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = current(&net, &stream);
    assert_ne!(first, second);
    net.orchestrators[second].server.stop();
    wait_generation(&stream, 2, Duration::from_secs(15)).await;
    let third = current(&net, &stream);
    assert!(third != first && third != second);
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    let report = stop(stream).await;
    assert_eq!(report.status.swaps.len(), 2);
    assert_accounting(&report.media.unwrap());
    net.shutdown().await;
}

/// go's LV2V bound: a third swap within 3 minutes ends the stream, naming every failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_storm_ends_the_stream_naming_each_failure() {
    let net = network(4).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig::default()).await;
    let (stop_writing, writer) = live_writer(&stream);
    for generation in 1..=2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let i = current(&net, &stream);
        net.orchestrators[i].server.stop();
        wait_generation(&stream, generation, Duration::from_secs(15)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let i = current(&net, &stream);
    net.orchestrators[i].server.stop();
    let end = tokio::time::timeout(Duration::from_secs(15), stream.ended()).await.expect("the stream ends");
    let StreamEnd::TooManySwaps { failures, .. } = &end else { panic!("{end}") };
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures.iter().all(|f| matches!(f.reason, RejectionReason::FailedMidStream(_))));
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert!(refused.is_some(), "an ended stream takes no more frames");
    let report = stop(stream).await;
    assert_accounting(&report.media.unwrap());
    net.shutdown().await;
}

/// With nowhere left to go the stream ends, naming the orchestrator it left and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_candidate_list_ends_the_stream() {
    let net = network(1).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig::default()).await;
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    net.orchestrators[0].server.stop();
    let end = tokio::time::timeout(Duration::from_secs(15), stream.ended()).await.expect("the stream ends");
    let StreamEnd::Exhausted { failures } = &end else { panic!("{end}") };
    assert!(matches!(
        failures[0].reason,
        RejectionReason::FailedMidStream(SwapReason::PublishConnection { .. })
    ));
    // Refused once the driver has stopped, shortly after the end (see the test below).
    let (_, refused) =
        tokio::time::timeout(Duration::from_secs(15), writer).await.expect("a write is refused").unwrap();
    assert!(refused.is_some(), "an ended stream takes no more frames");
    drop(stop_writing);
    assert_accounting(&stop(stream).await.media.unwrap());
    net.shutdown().await;
}

/// `enabled: false` keeps the old behaviour: the first failure ends the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_swapping_off_the_first_failure_ends_the_stream() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let stream = start_lv2v(&gw, SwapConfig { enabled: false, ..Default::default() }).await;
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = current(&net, &stream);
    net.orchestrators[first].server.stop();
    let end = tokio::time::timeout(Duration::from_secs(15), stream.ended()).await.expect("the stream ends");
    assert!(matches!(end, StreamEnd::Failed { .. }), "{end}");
    assert_eq!(stream.status().generation, 0);
    // The stream's driver stops shortly after the end (its last DELETEs go first): from then
    // on the writer, still writing, is refused. Stopping it by its flag here would race that.
    let (_, refused) =
        tokio::time::timeout(Duration::from_secs(15), writer).await.expect("a write is refused").unwrap();
    assert!(refused.is_some(), "an ended stream takes no more frames");
    drop(stop_writing);
    let _ = stop(stream).await;
    net.shutdown().await;
}

/// A producer faster than the encoder, blocked in `write_frame_when_ready` when the
/// orchestrator dies: it is released, every frame it offered is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_releases_a_caller_blocked_in_write_frame_when_ready() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    // 640x360 unpaced: the encoder is the bottleneck, so the producer waits for room nearly
    // all the time, the swap included.
    let (w, h) = (640, 360);
    let config = VideoPublisherConfig { encoder_pool: None, ..VideoPublisherConfig::h264(w, h) };
    let request = LiveJobRequest::Lv2v(Lv2vRequest::default());
    let stream = Arc::new(gw.start_live_stream(request, Some(config), SwapConfig::default()).await.unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let (s, n, flag) = (stream.clone(), written.clone(), stop_writing.clone());
    let writer = tokio::spawn(async move {
        let mut pattern = TestPattern::new(w, h, Rational::new(30, 1)).unwrap();
        while !flag.load(Ordering::Relaxed) {
            s.video().unwrap().write_frame_when_ready(pattern.next_frame()).await?;
            n.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<_, livepeer_gateway_actors::media::MediaError>(())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = current(&net, &stream);
    net.orchestrators[first].server.stop();
    wait_generation(&stream, 1, Duration::from_secs(15)).await;
    let at_swap = written.load(Ordering::Relaxed);
    wait_for("frames taken after the swap", Duration::from_secs(10), || {
        written.load(Ordering::Relaxed) > at_swap + 30
    })
    .await;
    wait_for("a segment on the new orchestrator", Duration::from_secs(10), || {
        stream.status().swaps[0].first_segment_after.is_some()
    })
    .await;
    stop_writing.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the writer finishes")
        .unwrap()
        .unwrap();
    let media = stop(stream).await.media.unwrap();
    assert_eq!(media.frames_in, written.load(Ordering::Relaxed));
    assert_accounting(&media);
    net.shutdown().await;
}

/// BYOC: a control message sent while the orchestrator is dead is delivered by the next one,
/// whose answer arrives on the same data reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_control_message_sent_during_a_swap_is_answered_by_the_next_orchestrator() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let mut request = ByocJobRequest::new(gateway_testkit::workers::TEXT_REVERSAL);
    request.enable_video_ingress = true;
    request.enable_video_egress = true;
    request.enable_data_output = true;
    let stream = gw
        .start_live_stream(LiveJobRequest::Byoc(request), Some(video()), SwapConfig::default())
        .await
        .unwrap();
    let stream = Arc::new(stream);
    let mut data = stream.data();
    let control = stream.control();
    control.send(&serde_json::json!({"text": "abc"})).await.unwrap();
    let first_answer = tokio::time::timeout(Duration::from_secs(10), data.next()).await.unwrap().unwrap();
    assert_eq!(first_answer.unwrap()["reversed"], "cba");

    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = current(&net, &stream);
    net.orchestrators[first].server.stop();
    // Sent before the swap is even detected: it waits for the next orchestrator.
    control.send(&serde_json::json!({"text": "swap"})).await.unwrap();
    assert_eq!(stream.status().generation, 1);
    let answer = tokio::time::timeout(Duration::from_secs(10), data.next()).await.unwrap().unwrap();
    assert_eq!(answer.unwrap()["reversed"], "paws");
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    drop(data);
    drop(control);
    let report = stop(stream).await;
    assert_eq!(report.status.swaps.len(), 1);
    assert_accounting(&report.media.unwrap());
    net.shutdown().await;
}

/// BYOC: an orchestrator stalling every segment is told to stop, with the reason in the stop's
/// body as go's gateway sends it (`sendStopStreamToOrch`), and the stream goes on elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_orchestrator_left_is_stopped_with_the_reason() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let mut request = ByocJobRequest::new(gateway_testkit::workers::TEXT_REVERSAL);
    request.enable_video_ingress = true;
    request.enable_video_egress = true;
    let swap = SwapConfig { failed_segments: 2, ..Default::default() };
    let stream = gw.start_live_stream(LiveJobRequest::Byoc(request), Some(video()), swap).await.unwrap();
    let stream = Arc::new(stream);
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = current(&net, &stream);
    let publish = stream.channels().publish.unwrap().rsplit('/').next().unwrap().to_owned();
    net.orchestrators[first]
        .orchestrator
        .trickle()
        .set_fault(&publish, TrickleFault::StallSegments { after_bytes: 1000, count: 1000 });
    wait_generation(&stream, 1, Duration::from_secs(40)).await;
    let reason = stream.status().swaps[0].reason.to_string();
    let old = &net.orchestrators[first].orchestrator;
    wait_for("the stop with the reason", Duration::from_secs(10), || {
        old.stop_reasons().iter().any(|(_, body)| *body == reason)
    })
    .await;
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    let report = stop(stream).await;
    assert_accounting(&report.media.unwrap());
    // Neither orchestrator runs the stream afterwards.
    for node in &net.orchestrators {
        let o = &node.orchestrator;
        wait_for("no session left", Duration::from_secs(5), || o.stats().active_sessions == 0).await;
    }
    // What the stream says it paid each orchestrator, stops' last payments included, is what
    // each one's books received.
    let stop_payments: u64 = report.status.payments.iter().map(|(_, p)| p.final_payments).sum();
    assert!(stop_payments > 0, "the stops carried no last payment: {:?}", report.status.payments);
    for (i, node) in net.orchestrators.iter().enumerate() {
        let url = net.orchestrator_urls()[i].trim_end_matches('/').to_owned();
        let paid: Vec<_> = report.status.payments.iter().filter(|(o, _)| *o == url).map(|(_, p)| p).collect();
        let ledger = node.orchestrator.ledger();
        let recurring = ledger.payments(|r| r == PaymentRoute::ByocPayment);
        let stops = ledger.payments(|r| r == PaymentRoute::ByocStop);
        assert_eq!(paid.iter().map(|p| p.payments_sent).sum::<u64>(), recurring, "{url}");
        assert_eq!(paid.iter().map(|p| p.final_payments).sum::<u64>(), stops, "{url}");
    }
    net.shutdown().await;
}

/// go's output watchdog: the orchestrator takes input but its output stops; after the output
/// timeout (with input sent within half of it) the stream moves, and the reader goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_whose_output_stops_is_left_by_the_watchdog() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let swap = SwapConfig { output_timeout: Some(Duration::from_secs(2)), ..Default::default() };
    let stream = start_lv2v(&gw, swap).await;
    let (units, discontinuities, reader) = output_counter(&stream);
    let (stop_writing, writer) = live_writer(&stream);
    wait_for("output", Duration::from_secs(10), || units.load(Ordering::Relaxed) > 10).await;

    let first = current(&net, &stream);
    let output = stream.channels().output.unwrap().rsplit('/').next().unwrap().to_owned();
    net.orchestrators[first]
        .orchestrator
        .trickle()
        .set_fault(&output, TrickleFault::DelayFirstByte(Duration::from_secs(3600)));
    wait_generation(&stream, 1, Duration::from_secs(15)).await;
    let swap = stream.status().swaps[0].clone();
    let SwapReason::NoOutput { silent_for } = swap.reason else { panic!("{:?}", swap.reason) };
    assert!(silent_for >= Duration::from_secs(2), "{silent_for:?}");
    let before = units.load(Ordering::Relaxed);
    wait_for("output from the next orchestrator", Duration::from_secs(10), || {
        units.load(Ordering::Relaxed) > before + 10
    })
    .await;
    assert_eq!(discontinuities.load(Ordering::Relaxed), 1);
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    let report = stop(stream).await;
    reader.abort();
    assert_accounting(&report.media.unwrap());
    net.shutdown().await;
}

/// Without an output reader the watchdog is not armed: a silent output is no failure when
/// nobody reads it (the orchestrator cannot be blamed for output no one asked for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_output_reader_the_watchdog_stays_quiet() {
    let net = network(2).await;
    let gw = gateway(&net, Duration::from_secs(2));
    let swap = SwapConfig { output_timeout: Some(Duration::from_secs(1)), ..Default::default() };
    let stream = start_lv2v(&gw, swap).await;
    let (stop_writing, writer) = live_writer(&stream);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stream.status().generation, 0, "{:?}", stream.status().swaps);
    stop_writing.store(true, Ordering::Relaxed);
    let (_, refused) = writer.await.unwrap();
    assert_eq!(refused, None);
    assert_accounting(&stop(stream).await.media.unwrap());
    net.shutdown().await;
}
