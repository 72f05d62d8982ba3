//! The media path over real sockets: a stalled orchestrator fails only the segment in flight
//! within the stall timeout, the producer is never blocked longer than that, and the stream goes
//! on with the next sequence number; 404 is terminal; a 5xx before any body byte is retried
//! once; the stream supervisor drains, joins short segments and cuts over when idle; one reader
//! fans out to several consumers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::{Rational, TestPattern};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::trickle_server::{FaultMethod, TrickleFault};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::media::{StreamTiming, VideoPublisher, VideoPublisherConfig};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{
    PublisherConfig, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};

const STALL: Duration = Duration::from_millis(800);

async fn setup(channel: &str) -> (LocalNetwork, reqwest::Client, String) {
    let net = LocalNetwork::start(NetworkConfig { tls: false, ..Default::default() }).await.unwrap();
    assert!(net.orchestrator().trickle().create_channel(channel, MIME_MPEGTS));
    let url = channel_url(&net.orchestrator_urls()[0], channel);
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    (net, http, url)
}

fn config() -> PublisherConfig {
    PublisherConfig { stall_timeout: STALL, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_segment_fails_alone_and_the_stream_goes_on() {
    let (net, http, url) = setup("stall").await;
    let mut publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"segment zero")).await.unwrap(), 0);

    net.orchestrator().trickle().set_fault("stall", TrickleFault::StallAfterBytes(1000));
    let mut sink = publisher.next_segment().unwrap();
    assert_eq!(sink.seq(), 1);
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let mut longest_write = Duration::ZERO;
    let mut failure = None;
    // Socket buffers absorb some megabytes before the writer feels the stall; bounded loop.
    for _ in 0..2000 {
        let t0 = Instant::now();
        let r = sink.write(chunk.clone()).await;
        longest_write = longest_write.max(t0.elapsed());
        if let Err(e) = r {
            failure = Some(e);
            break;
        }
    }
    let failure = failure.expect("the stalled segment never failed");
    assert!(matches!(failure, TrickleError::Segment { seq: 1, .. }), "{failure:?}");
    assert!(!failure.is_terminal());
    assert!(longest_write < STALL + Duration::from_millis(700), "producer blocked for {longest_write:?}");
    // Later writes to the failed segment are refused at once and counted.
    let t0 = Instant::now();
    assert!(sink.write(chunk.clone()).await.is_err());
    assert!(t0.elapsed() < Duration::from_millis(100));
    assert!(sink.finish().await.is_err());

    // The orchestrator recovers; the next segment is seq 2 and readers get it.
    net.orchestrator().trickle().clear_faults("stall");
    let mut sub = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(2), ..Default::default() },
    );
    let reader =
        tokio::spawn(async move { sub.next_segment().await.unwrap().unwrap().read_all().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"segment two")).await.unwrap(), 2);
    assert_eq!(reader.await.unwrap().as_ref(), b"segment two");
    let stats = publisher.stats();
    assert_eq!(
        (stats.segments_completed, stats.segments_failed, stats.stall_timeouts),
        (2, 1, 1),
        "{stats:?}"
    );
    assert_eq!(stats.consecutive_failures, 0);
    assert!(publisher.terminal_error().is_none());
    publisher.close().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_is_terminal_and_a_5xx_before_any_byte_is_retried() {
    let (net, http, url) = setup("faulty").await;
    // One 500 on the preconnected POST: retried once, the segment still lands.
    net.orchestrator().trickle().set_fault(
        "faulty",
        TrickleFault::RespondStatus { method: FaultMethod::Post, status: 500, count: 1 },
    );
    let mut publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"a")).await.unwrap(), 0);
    assert_eq!(publisher.stats().post_retries, 1);

    // The channel disappears: 404, terminal, and later segments are refused.
    net.orchestrator().trickle().close_channel("faulty");
    // The POST preconnected before the close may still complete one segment (go's server has
    // the same window); every later one is refused.
    let mut accepted_after_close = 0;
    let err = loop {
        match publisher.write_segment(Bytes::from_static(b"b")).await {
            Err(e) if e.is_terminal() => break e,
            Err(_) => continue,
            Ok(seq) => {
                accepted_after_close += 1;
                assert!(accepted_after_close == 1, "segment {seq} accepted by a deleted channel");
            }
        }
    };
    assert!(matches!(err, TrickleError::ChannelNotFound { .. } | TrickleError::EndOfStream), "{err:?}");
    assert!(publisher.next_segment().unwrap_err().is_terminal());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_publisher_drains_a_stalled_segment_and_accounts_for_every_byte() {
    let (net, http, url) = setup("video").await;
    let publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    // Tiny socket buffers are not guaranteed, so stall after a few bytes and send enough video
    // (high bitrate noise-free pattern at 720p) to fill them.
    // One segment stalls; the ones after go through whenever they come (clearing the fault
    // after the first failure raced with the later segments on a loaded machine).
    net.orchestrator()
        .trickle()
        .set_fault("video", TrickleFault::StallSegments { after_bytes: 10_000, count: 1 });
    let mut cfg = VideoPublisherConfig::h264(1280, 720);
    cfg.bitrate_bps = 40_000_000;
    cfg.queue_frames = 1000;
    cfg.debt_skipping = false;
    // Frames arrive faster than real time here; without this the minimum wall-clock rule would
    // join every media segment into one trickle segment.
    cfg.timing.min_segment_wallclock = Duration::ZERO;
    let video = VideoPublisher::start(publisher, cfg).unwrap();
    let mut pattern = TestPattern::new(1280, 720, Rational::new(30, 1)).unwrap();
    for _ in 0..150 {
        video.write_frame(pattern.next_frame()).unwrap();
    }
    let stats = tokio::time::timeout(Duration::from_secs(60), video.finish()).await.unwrap().unwrap();
    assert_eq!(stats.frames_in, 150);
    assert_eq!((stats.frames_encoded, stats.frames_dropped), (150, 0), "{stats:?}");
    assert!(stats.segments_failed >= 1, "{stats:?}");
    assert!(stats.segments_published >= 1, "the stream went on after the stall: {stats:?}");
    assert!(stats.bytes_drained > 0, "{stats:?}");
    assert_eq!(
        stats.bytes_published + stats.bytes_drained,
        stats.bytes_encoded,
        "every byte accounted for: {stats:?}"
    );
    net.shutdown().await;
}

/// Found by the soak: frames still queued when a stream ended for good (here a 404: the
/// channel is gone) were never encoded nor counted as dropped, so `frames_in` exceeded
/// `frames_encoded + frames_dropped`. They are now dropped with the reason `stream_ended`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_queued_when_the_stream_ends_for_good_are_counted_as_dropped() {
    let (net, http, url) = setup("gone").await;
    let publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    net.orchestrator().trickle().set_fault(
        "gone",
        TrickleFault::RespondStatus { method: FaultMethod::Post, status: 404, count: 100 },
    );
    let mut cfg = VideoPublisherConfig::h264(160, 96);
    cfg.queue_frames = 100;
    cfg.debt_skipping = false;
    let video = VideoPublisher::start(publisher, cfg).unwrap();
    let mut pattern = TestPattern::new(160, 96, Rational::new(30, 1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut written = 0;
    while video.stats().await.unwrap().terminal_error.is_none() {
        assert!(Instant::now() < deadline, "the 404 never ended the stream: {:?}", video.stats().await);
        video.write_frame(pattern.next_frame()).unwrap();
        written += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The stream is over; these frames can only wait in the queue.
    for _ in 0..20 {
        video.write_frame(pattern.next_frame()).unwrap();
        written += 1;
    }
    let stats = tokio::time::timeout(Duration::from_secs(30), video.finish()).await.unwrap().unwrap();
    assert!(stats.terminal_error.is_some(), "{stats:?}");
    assert_eq!(stats.frames_in, written);
    assert_eq!(stats.frames_in, stats.frames_encoded + stats.frames_dropped, "{stats:?}");
    assert_eq!(stats.frames_dropped, stats.drops.total(), "{stats:?}");
    assert!(stats.drops.stream_ended >= 20, "{stats:?}");
    assert_eq!(stats.bytes_encoded, stats.bytes_published + stats.bytes_drained, "{stats:?}");
    net.shutdown().await;
}

/// Frames pushed faster than real time make 2 s media segments in well under 1 s of wall
/// clock: they are joined into trickle segments of at least the minimum wall-clock length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_media_segments_are_joined_and_idle_streams_cut_over() {
    let (net, http, url) = setup("timing").await;
    let publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.queue_frames = 1000;
    cfg.debt_skipping = false;
    cfg.timing = StreamTiming {
        min_segment_wallclock: Duration::from_millis(400),
        idle_cutover: Duration::from_millis(300),
        ..StreamTiming::default()
    };
    let video = VideoPublisher::start(publisher, cfg).unwrap();
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    // 4 media segments of 2 s, pushed at once.
    for _ in 0..240 {
        video.write_frame(pattern.next_frame()).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Then silence longer than the idle cutover, then a little more video.
    tokio::time::sleep(Duration::from_millis(900)).await;
    for _ in 0..30 {
        video.write_frame(pattern.next_frame()).unwrap();
    }
    let stats = tokio::time::timeout(Duration::from_secs(30), video.finish()).await.unwrap().unwrap();
    assert!(stats.segments_joined >= 1, "{stats:?}");
    assert!(stats.idle_cutovers >= 1, "{stats:?}");
    assert_eq!(stats.segments_failed, 0, "{stats:?}");
    assert_eq!(stats.bytes_published, stats.bytes_encoded, "{stats:?}");
    assert_eq!(stats.frames_encoded, 270);
    net.shutdown().await;
}

/// Two consumers of one output channel get the same bytes from a single GET per segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reader_fans_out_to_several_consumers() {
    use livepeer_gateway_actors::reader::{OutputEvent, SegmentReader};
    let (net, http, url) = setup("fanout").await;
    let sub = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
    );
    let reader = SegmentReader::start(sub, 64);
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let mut rx = reader.subscribe();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    match rx.recv().await {
                        Ok(OutputEvent::Chunk(c)) => got.extend_from_slice(&c),
                        Ok(OutputEvent::SegmentEnd { seq: 1 }) => return got,
                        Ok(_) => {}
                        Err(e) => panic!("consumer lost events: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    let a = vec![1u8; 100_000];
    let b = vec![2u8; 50_000];
    publisher.write_segment(Bytes::from(a.clone())).await.unwrap();
    publisher.write_segment(Bytes::from(b.clone())).await.unwrap();
    let expected: Vec<u8> = a.into_iter().chain(b).collect();
    for c in consumers {
        assert_eq!(tokio::time::timeout(Duration::from_secs(10), c).await.unwrap().unwrap(), expected);
    }
    // The server sent each byte once: one GET per segment, whatever the number of consumers.
    assert_eq!(net.orchestrator().trickle().stats().bytes_out, expected.len() as u64);
    net.shutdown().await;
}

/// Subscriber rules: behind the window it jumps to the live edge; ahead of it, it waits for the
/// same index; a closed channel ends the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_jumps_when_behind_waits_when_ahead_and_ends_on_close() {
    use livepeer_gateway_actors::trickle::EndReason;
    let (net, http, url) = setup("follow").await;
    let mut publisher = TricklePublisher::start(http.clone(), &url, config()).await;
    for i in 0..8u8 {
        publisher.write_segment(Bytes::from(vec![i; 10])).await.unwrap();
    }
    // Segment 0 fell out of the 5-slot window: 470, jump to the live edge (8) and wait there.
    let mut behind = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
    );
    let behind_task = tokio::spawn(async move {
        let seg = behind.next_segment().await.unwrap().unwrap();
        (seg.seq(), seg.read_all().await.unwrap(), behind.stats())
    });
    // Ahead of the live edge: waits and asks for the same index again.
    let mut ahead = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(10), ..Default::default() },
    );
    let ahead_task = tokio::spawn(async move {
        let seg = ahead.next_segment().await.unwrap().unwrap();
        (seg.seq(), seg.read_all().await.unwrap(), ahead)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    for i in 8..11u8 {
        publisher.write_segment(Bytes::from(vec![i; 10])).await.unwrap();
    }
    let (seq, body, stats) =
        tokio::time::timeout(Duration::from_secs(10), behind_task).await.unwrap().unwrap();
    assert_eq!((seq, body.as_ref()), (8, [8u8; 10].as_ref()));
    assert_eq!(stats.jumps, 1, "{stats:?}");
    let (seq, body, mut ahead) =
        tokio::time::timeout(Duration::from_secs(10), ahead_task).await.unwrap().unwrap();
    assert_eq!((seq, body.as_ref()), (10, [10u8; 10].as_ref()));
    assert!(ahead.stats().waits_ahead >= 1, "{:?}", ahead.stats());
    // The channel closes: end of stream, not an error, and no empty segment before it (the
    // publisher deletes the channel before it drops its preconnected POST). A reader whose next
    // GET comes after the DELETE finds the channel gone instead.
    publisher.close().await;
    let after = tokio::time::timeout(Duration::from_secs(10), ahead.next_segment()).await.unwrap().unwrap();
    assert!(after.is_none(), "a segment after the channel closed: {after:?}");
    assert!(matches!(ahead.end_reason(), Some(EndReason::Closed | EndReason::NotFound)));
    net.shutdown().await;
}

/// Segment POSTs go through the `StreamingPost` seam, so another HTTP stack can carry them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_posts_go_through_the_streaming_post_trait() {
    use livepeer_gateway_actors::http::{BodyStream, PostAnswer, StreamingPost};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counting(reqwest::Client, Arc<AtomicUsize>);
    impl StreamingPost for Counting {
        fn post_stream(
            &self,
            url: &str,
            headers: &[(&str, &str)],
            body: BodyStream,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<PostAnswer, String>> + Send + 'static>>
        {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.post_stream(url, headers, body)
        }
    }

    let (net, http, url) = setup("seam").await;
    let posts = Arc::new(AtomicUsize::new(0));
    let transport = Arc::new(Counting(http.clone(), posts.clone()));
    let mut publisher = TricklePublisher::with_transport(http.clone(), transport, &url, config()).await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"one")).await.unwrap(), 0);
    assert_eq!(publisher.write_segment(Bytes::from_static(b"two")).await.unwrap(), 1);
    // Two segments plus the preconnected POST for the third (spawned; give it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    while posts.load(Ordering::SeqCst) < 3 {
        assert!(
            Instant::now() < deadline,
            "only {} POSTs went through the trait",
            posts.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(posts.load(Ordering::SeqCst), 3);
    publisher.close().await;
    net.shutdown().await;
}
