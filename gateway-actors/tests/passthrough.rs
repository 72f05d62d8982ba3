//! A video stream that takes MPEG-TS already encoded (issue 16, TS passthrough), over real
//! sockets: Debian ffmpeg's H.264 + AAC is cut on its keyframes by `TsCutter` and handed to a
//! `VideoPublisher` started with `VideoPublisherConfig::passthrough_ts`. Mid-stream it moves to a
//! second trickle server: the segment open on the first is drained, the second's first segment
//! starts at the input's next keyframe with the PAT and PMT, every access unit is accounted for,
//! and the servers confirm what the stream says it published.
//!
//! Every wait is bounded by a generous deadline; nothing asserts on how long something took.

use std::process::Command;
use std::time::Duration;

use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::ts::cutter::{TsCutter, TsCutterConfig};
use gateway_media::ts_demux::TsDemuxer;
use gateway_media::{Rational, TestPattern};
use gateway_testkit::serve::{serve, ServerHandle};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::media::{StreamTiming, VideoPublisher, VideoPublisherConfig};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{PublisherConfig, TricklePublisher};

const GENEROUS: Duration = Duration::from_secs(30);
/// 90 kHz ticks per second.
const SECOND: i64 = 90_000;

/// 5 s of 320x180 H.264 at 30 fps with a keyframe every 30 frames, plus AAC, as MPEG-TS.
fn source() -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-c:v", "libx264", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-bf", "0"])
        .args(["-c:a", "aac", "-t", "5", "-f", "mpegts", "pipe:1"])
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// A trickle server with channel `name`.
struct Server {
    trickle: TrickleServer,
    _handle: ServerHandle,
    name: String,
    url: String,
}

impl Server {
    async fn start(name: &str) -> Server {
        let trickle = TrickleServer::new(TrickleConfig::default());
        assert!(trickle.create_channel(name, MIME_MPEGTS));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve(listener, trickle.router(), None);
        let url = channel_url(&format!("http://{}", handle.addr), name);
        Server { trickle, _handle: handle, name: name.to_owned(), url }
    }

    async fn publisher(&self) -> TricklePublisher {
        let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&self.url).unwrap();
        TricklePublisher::start(http, &self.url, PublisherConfig::default()).await
    }
}

/// Pushes `input` through `cutter` into `video` until the cutter's clock is `until` (90 kHz)
/// past the first timestamp it saw, or to the end; answers the bytes consumed.
async fn push(video: &VideoPublisher, cutter: &mut TsCutter, input: &[u8], until: Option<i64>) -> usize {
    let mut used = 0;
    let mut first = None;
    for piece in input.chunks(4096) {
        let units = cutter.stats().access_units;
        let events = cutter.push(piece).unwrap();
        video.write_cut(events, cutter.stats().access_units - units).await.unwrap();
        used += piece.len();
        if let (Some(until), Some(now)) = (until, cutter.clock()) {
            if now - *first.get_or_insert(now) >= until {
                break;
            }
        }
    }
    used
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ts_stream_passes_through_and_moves_to_a_new_channel_at_its_next_keyframe() {
    let input = source();
    let (a, b) = (Server::start("a").await, Server::start("b").await);
    let mut b_reader = b.trickle.local_subscriber(&b.name, SeqSpec::At(0)).unwrap();
    let b_first =
        tokio::spawn(
            async move { b_reader.next_segment().await.expect("b gets a segment").read_all().await },
        );

    // Pushed faster than real time, media segments would be joined into one by the 1 s
    // wall-clock minimum of a trickle segment: keep them apart, as a live source would.
    let timing = StreamTiming { min_segment_wallclock: Duration::ZERO, ..StreamTiming::default() };
    let config = VideoPublisherConfig { timing, ..VideoPublisherConfig::passthrough_ts() };
    let video = VideoPublisher::start(a.publisher().await, config).unwrap();
    let frame = TestPattern::new(64, 64, Rational::new(30, 1)).unwrap().next_frame();
    assert!(video.write_frame(frame).is_err(), "a passthrough stream takes no frames");
    let mut health = video.channel_health();
    let mut cutter = TsCutter::new(TsCutterConfig::default());
    // Two seconds and a bit: segments 0 and 1 complete, segment 2 (from 2 s) open.
    let used = push(&video, &mut cutter, &input, Some(2 * SECOND)).await;
    tokio::time::timeout(GENEROUS, health.wait_for(|h| h.segments_accepted >= 2))
        .await
        .expect("a confirms two segments")
        .unwrap();
    video.replace_channel(b.publisher().await).await.unwrap();
    push(&video, &mut cutter, &input[used..], None).await;
    let units = cutter.stats().access_units;
    let last = cutter.finish().unwrap();
    video.write_cut(last, cutter.stats().access_units - units).await.unwrap();
    let stats = tokio::time::timeout(GENEROUS, video.finish()).await.expect("finished").unwrap();

    // Every access unit and byte is accounted for.
    assert_eq!(cutter.stats().access_units, 150);
    assert_eq!((stats.frames_in, stats.frames_encoded, stats.frames_dropped), (150, 150, 0), "{stats:?}");
    assert_eq!(stats.bytes_encoded, cutter.stats().bytes_out, "{stats:?}");
    assert_eq!(stats.bytes_encoded, stats.bytes_published + stats.bytes_drained, "{stats:?}");
    assert!(stats.bytes_drained > 0 && stats.channel_swaps == 1, "the open segment was drained: {stats:?}");
    let completed =
        a.trickle.channel_totals(&a.name).bytes_completed + b.trickle.channel_totals(&b.name).bytes_completed;
    assert_eq!(stats.bytes_published, completed, "{stats:?}");
    // Seconds 0-2 on a, second 2 (open at the move) drained, seconds 3-5 on b.
    let segments = |s: &Server| s.trickle.channel_totals(&s.name).segments_completed;
    assert_eq!((segments(&a), segments(&b)), (2, 2), "{stats:?}");

    // B.s first segment starts with the PAT and at a keyframe of the input, 3 s in.
    let first = tokio::time::timeout(GENEROUS, b_first).await.expect("b's first segment").unwrap();
    assert!(first.len() >= 188 && first[0] == 0x47 && first[1] & 0x1F == 0 && first[2] == 0, "no PAT first");
    let mut demux = TsDemuxer::new();
    let mut aus = demux.push(&first);
    let video_pid = demux.video_stream().expect("a video stream").pid;
    aus.extend(demux.finish());
    let head = aus.first().expect("access units in b's first segment");
    assert!(head.keyframe, "b's first segment starts with a delta frame");
    assert_eq!(aus.len(), 30, "one GOP");
    // Its first video packet carries the discontinuity mark, so readers joining a's and b's
    // segments take the jump in continuity counters as intended.
    let pid = |p: &[u8]| (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]);
    let packet = first.chunks_exact(188).find(|p| pid(p) == video_pid).expect("a video packet");
    assert!(
        packet[3] & 0x20 != 0 && packet[4] > 0 && packet[5] & 0x80 != 0,
        "not marked: {:02x?}",
        &packet[..6]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_encodes_frames_refuses_cut_media() {
    let a = Server::start("a").await;
    let video = VideoPublisher::start(a.publisher().await, VideoPublisherConfig::h264(64, 64)).unwrap();
    assert!(video.write_cut(Vec::new(), 0).await.is_err());
    video.finish().await.unwrap();
}
