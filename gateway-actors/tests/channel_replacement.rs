//! Issue 15 over real sockets: a live stream survives its channel. Two testkit trickle servers
//! stand in for two orchestrators; a task keeps writing H.264 frames with
//! `write_frame_when_ready` throughout.
//!
//! - The first channel is deleted: `channel_health()` reports the loss (typed: the channel is
//!   gone), the stream told to wait keeps taking frames, `replace_channel` moves it to the
//!   second server, whose first segment starts with an IDR (and the discontinuity mark), asked
//!   for at the swap rather than at the next scheduled keyframe; every frame and byte is
//!   accounted for once finished, and the servers confirm what the stream says it published.
//! - A server that is shut down (connection refused) is reported as `SegmentFailure::Connect`.
//!
//! Every wait is bounded by a generous deadline; nothing asserts on how long something took.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::error::TrickleError;
use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::ts_demux::TsDemuxer;
use gateway_media::{Rational, TestPattern};
use gateway_testkit::serve::{serve, ServerHandle};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::media::{
    ChannelHealth, ChannelLoss, MediaError, MediaStats, SegmentFailure, VideoPublisher, VideoPublisherConfig,
};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{PublisherConfig, TricklePublisher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const GENEROUS: Duration = Duration::from_secs(30);
const STALL: Duration = Duration::from_millis(800);
/// 90 kHz ticks per frame at 30 fps.
const TICKS_PER_FRAME: i64 = 3000;

/// One orchestrator's trickle server with channel `name`.
struct Orchestrator {
    server: TrickleServer,
    handle: ServerHandle,
    name: String,
    url: String,
    http: reqwest::Client,
}

impl Orchestrator {
    async fn start(name: &str) -> Orchestrator {
        let server = TrickleServer::new(TrickleConfig::default());
        assert!(server.create_channel(name, MIME_MPEGTS));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve(listener, server.router(), None);
        let url = channel_url(&format!("http://{}", handle.addr), name);
        let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
        Orchestrator { server, handle, name: name.to_owned(), url, http }
    }

    async fn publisher(&self) -> TricklePublisher {
        let config = PublisherConfig { stall_timeout: STALL, ..Default::default() };
        TricklePublisher::start(self.http.clone(), &self.url, config).await
    }
}

/// A producer writing frames as fast as the stream takes them, until told to stop.
struct Producer {
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<(), MediaError>>,
}

impl Producer {
    fn start(video: Arc<VideoPublisher>) -> Producer {
        let (written, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (count, halt) = (written.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
            while !halt.load(Ordering::SeqCst) {
                video.write_frame_when_ready(pattern.next_frame()).await?;
                count.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        });
        Producer { written, stop, task }
    }

    fn written(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// Waits until `n` more frames went in: the producer is not blocked nor refused.
    async fn wait_for_more(&self, n: u64) {
        let target = self.written() + n;
        tokio::time::timeout(GENEROUS, async {
            while self.written() < target {
                assert!(!self.task.is_finished(), "the producer stopped");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the producer kept writing");
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let result = tokio::time::timeout(GENEROUS, self.task).await.expect("the producer stops").unwrap();
        result.expect("write_frame_when_ready never failed");
    }
}

fn video_config() -> VideoPublisherConfig {
    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.on_channel_loss = ChannelLoss::AwaitReplacement;
    // Every frame is encoded (the producer waits for room), so a frame's pts is its index.
    cfg.debt_skipping = false;
    cfg
}

async fn wait_for_health(
    health: &mut watch::Receiver<ChannelHealth>,
    what: &str,
    ready: impl FnMut(&ChannelHealth) -> bool,
) -> ChannelHealth {
    let seen = match tokio::time::timeout(GENEROUS, health.wait_for(ready)).await {
        Ok(Ok(h)) => Some(h.clone()),
        Ok(Err(_)) => panic!("the stream driver ended while waiting for {what}"),
        Err(_) => None,
    };
    seen.unwrap_or_else(|| panic!("no {what} within {GENEROUS:?}: {:?}", *health.borrow()))
}

async fn finish(video: Arc<VideoPublisher>) -> MediaStats {
    let video = Arc::into_inner(video).expect("the producer let go of the stream");
    tokio::time::timeout(GENEROUS, video.finish()).await.expect("finish returns").unwrap()
}

fn assert_accounted(s: &MediaStats) {
    assert_eq!(s.frames_in, s.frames_encoded + s.frames_dropped, "{s:?}");
    assert_eq!(s.frames_dropped, s.drops.total(), "{s:?}");
    assert_eq!(s.bytes_encoded, s.bytes_published + s.bytes_drained, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_losing_its_channel_moves_to_a_new_one_that_starts_with_a_keyframe() {
    let (a, b) = (Orchestrator::start("a").await, Orchestrator::start("b").await);
    let video = Arc::new(VideoPublisher::start(a.publisher().await, video_config()).unwrap());
    let mut health = video.channel_health();
    let mut b_reader = b.server.local_subscriber(&b.name, SeqSpec::At(0)).unwrap();
    let b_first = tokio::spawn(async move {
        let segment = b_reader.next_segment().await.expect("b gets a segment");
        segment.read_all().await
    });
    let producer = Producer::start(video.clone());

    wait_for_health(&mut health, "a confirmed segment on a", |h| h.segments_accepted >= 1).await;
    assert!(a.server.close_channel(&a.name));
    let lost = wait_for_health(&mut health, "the loss of a", |h| h.lost.is_some()).await;
    assert!(
        matches!(lost.lost, Some(TrickleError::ChannelNotFound { .. } | TrickleError::EndOfStream)),
        "{lost:?}"
    );
    assert_eq!(lost.last_failure, Some(SegmentFailure::ChannelGone), "{lost:?}");
    assert!(lost.consecutive_failed >= 1 && lost.generation == 0, "{lost:?}");
    // Waiting for a replacement: frames are still taken (and drained), nobody is refused.
    producer.wait_for_more(60).await;
    assert_eq!(video.stats().await.unwrap().terminal_error, None);

    video.replace_channel(b.publisher().await).await.unwrap();
    let at_swap = producer.written();
    let moved =
        wait_for_health(&mut health, "a confirmed segment on b", |h| h.first_accepted.is_some()).await;
    assert_eq!((moved.generation, moved.lost.clone()), (1, None), "{moved:?}");
    producer.wait_for_more(60).await;
    producer.stop().await;
    let stats = finish(video).await;

    assert_accounted(&stats);
    assert_eq!((stats.channel_swaps, stats.terminal_error.clone()), (1, None), "{stats:?}");
    assert!(stats.bytes_drained > 0 && stats.segments_failed >= 1, "{stats:?}");
    // What the stream counts as published is what the two servers completed.
    let completed =
        a.server.channel_totals(&a.name).bytes_completed + b.server.channel_totals(&b.name).bytes_completed;
    assert_eq!(stats.bytes_published, completed, "{stats:?}");
    let last = health.borrow().clone();
    assert!(last.generation == 1 && last.segments_accepted >= 1 && last.lost.is_none(), "{last:?}");

    // B's first segment: PAT first, marked as a discontinuity; its first access unit an IDR
    // from about the swap, not from the next scheduled keyframe (up to 60 frames later).
    let first = tokio::time::timeout(GENEROUS, b_first).await.expect("b's first segment is read").unwrap();
    assert!(first.len() >= 188 && first[0] == 0x47, "not MPEG-TS: {} bytes", first.len());
    let (adaptation, flags) = ((first[3] >> 4) & 0b10 != 0, first[5]);
    assert!(adaptation && first[4] > 0 && flags & 0x80 != 0, "no discontinuity mark: {:02x?}", &first[..8]);
    let mut demuxer = TsDemuxer::new();
    let mut units = demuxer.push(&first);
    units.extend(demuxer.finish());
    let head = units.first().expect("b's first segment has access units");
    assert!(head.keyframe, "b's first segment starts with a delta frame");
    let index = head.pts.expect("a pts") / TICKS_PER_FRAME;
    assert!(
        index as u64 <= at_swap + 2,
        "the first keyframe on b is frame {index}, the swap came at {at_swap}"
    );

    a.handle.shutdown().await;
    b.handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_gone_is_reported_as_a_connect_failure() {
    let a = Orchestrator::start("killed").await;
    let video = Arc::new(VideoPublisher::start(a.publisher().await, video_config()).unwrap());
    let mut health = video.channel_health();
    let producer = Producer::start(video.clone());

    wait_for_health(&mut health, "a confirmed segment", |h| h.segments_accepted >= 1).await;
    // The orchestrator dies: open connections are closed, new ones refused.
    a.handle.shutdown().await;
    let failed = wait_for_health(&mut health, "a connect failure", |h| {
        h.last_failure == Some(SegmentFailure::Connect)
    })
    .await;
    assert!(failed.consecutive_failed >= 1, "{failed:?}");
    // Enough failures in a row and the publisher gives up: the channel is lost for good, and
    // the stream, told to wait, still takes frames.
    let lost = wait_for_health(&mut health, "the loss", |h| h.lost.is_some()).await;
    assert!(matches!(lost.lost, Some(TrickleError::Terminal { .. })), "{lost:?}");
    producer.wait_for_more(30).await;
    producer.stop().await;
    let stats = finish(video).await;
    assert_accounted(&stats);
    assert_eq!((stats.channel_swaps, stats.terminal_error.clone()), (0, None), "{stats:?}");
}
