//! Issue 19.1 over real sockets: a video stream loses a segment to a stall, and what readers
//! get (every segment the server kept, joined in order, as `--output` writes it) is one MPEG-TS
//! stream ffprobe and PyAV read whole: the segment after the loss carries the discontinuity
//! indicator, so the jump in continuity counters is not taken for corruption.

use std::process::Command;
use std::time::{Duration, Instant};

use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::ts_demux::TsDemuxer;
use gateway_media::{Rational, TestPattern};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::trickle_server::TrickleFault;
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{
    PublisherConfig, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};

const GENEROUS: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_joined_across_a_drained_one_read_whole_in_ffprobe_and_pyav() {
    let net = LocalNetwork::start(NetworkConfig { tls: false, ..Default::default() }).await.unwrap();
    let trickle = net.orchestrator().trickle();
    assert!(trickle.create_channel("lossy", MIME_MPEGTS));
    let url = channel_url(&net.orchestrator_urls()[0], "lossy");
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let config = PublisherConfig { stall_timeout: Duration::from_millis(800), ..Default::default() };
    let publisher = TricklePublisher::start(clients.orchestrator(&url).unwrap(), &url, config).await;

    // Every segment as it arrives, in order.
    let mut subscriber = TrickleSubscriber::new(
        clients.segment_reader(),
        &url,
        SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Ok(Some(segment)) = subscriber.next_segment().await {
            let seq = segment.seq();
            if let Ok(bytes) = segment.read_all().await {
                let _ = tx.send((seq, bytes));
            }
        }
    });

    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.queue_frames = 1000;
    cfg.debt_skipping = false;
    cfg.timing.min_segment_wallclock = Duration::ZERO;
    let video = VideoPublisher::start(publisher, cfg).unwrap();
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    let mut write = |n: usize| {
        for _ in 0..n {
            video.write_frame(pattern.next_frame()).unwrap();
        }
    };
    // The first media segment out (the second starts at the keyframe of frame 60), then the
    // next segment POST stalls before its first byte.
    write(75);
    let deadline = Instant::now() + GENEROUS;
    while trickle.channel_totals("lossy").segments_completed == 0 {
        assert!(Instant::now() < deadline, "the first segment never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    trickle.set_fault("lossy", TrickleFault::StallSegments { after_bytes: 0, count: 1 });
    write(105);
    let stats = tokio::time::timeout(GENEROUS, video.finish()).await.unwrap().unwrap();
    assert!(stats.segments_failed >= 1 && stats.segments_published >= 2, "{stats:?}");

    // Closing the channel ends the reader once it has every segment the server kept, the
    // failed one included (what reached the server before the stall, if anything).
    assert!(trickle.close_channel("lossy"));
    tokio::time::timeout(GENEROUS, reader).await.expect("the reader ends").unwrap();
    let mut joined = Vec::new();
    while let Ok((_, bytes)) = rx.try_recv() {
        joined.extend_from_slice(&bytes);
    }
    net.shutdown().await;

    let mut demuxer = TsDemuxer::new();
    let units = demuxer.push(&joined).len() + demuxer.finish().len();
    assert_eq!(demuxer.stats().continuity_gaps, 0, "{:?}", demuxer.stats());
    assert!(units > 0 && (units as u64) < stats.frames_encoded, "a segment's frames were lost: {units}");

    let path = std::env::temp_dir().join(format!("lpgw-discontinuity-{}.ts", std::process::id()));
    std::fs::write(&path, &joined).unwrap();
    let probe = Command::new("ffprobe")
        .args(["-v", "debug", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1"])
        .arg(&path)
        .output()
        .expect("ffprobe runs (scripts/setup.sh installs it)");
    let log = String::from_utf8_lossy(&probe.stderr);
    assert!(!log.contains("Continuity check failed"), "ffprobe: {log}");
    let read: usize =
        String::from_utf8_lossy(&probe.stdout).lines().next().unwrap_or_default().trim().parse().unwrap();
    assert_eq!(read, units, "ffprobe reads every access unit");

    let script = "import av,sys\nc=av.open(sys.argv[1])\nn=0\nfor f in c.decode(video=0): n+=1\nprint(n)";
    let py = Command::new(gateway_testkit::python::interpreter())
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("the venv's python runs");
    assert!(py.status.success(), "PyAV: {}", String::from_utf8_lossy(&py.stderr));
    let decoded: usize = String::from_utf8_lossy(&py.stdout).trim().parse().unwrap();
    assert_eq!(decoded, units, "PyAV decodes every frame");
    std::fs::remove_file(&path).unwrap();
}
