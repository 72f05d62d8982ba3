//! A video stream with an audio track (issue 16), over a real socket to the testkit's trickle
//! server: test-pattern video and a stereo tone go in through one `VideoPublisher`, come out
//! as MPEG-TS segments carrying H.264 and Opus interleaved, every audio frame is counted
//! (encoded, dropped for overflow, or refused), our demuxer finds every Opus packet the stream
//! says it made, and the tone decodes back at its pitch; audio of another rate and layout is
//! converted. Audio a stream cannot carry gets typed refusals. What the official Python SDK's
//! `MediaPublish` sends with an audio track reads back through our demuxer and decoder, and what
//! we send decodes through its `MediaOutput.frames()`.
//!
//! Every wait is bounded by a generous deadline; nothing asserts on how long something took.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::audio::{OpusDecoder, Tone};
use gateway_media::encoder::Codec;
use gateway_media::ts_demux::{MediaUnit, TsDemuxer};
use gateway_media::{Rational, TestPattern};
use gateway_testkit::serve::{serve, ServerHandle};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::media::{AudioTrackConfig, StreamTiming, VideoPublisher, VideoPublisherConfig};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{PublisherConfig, TricklePublisher};

const GENEROUS: Duration = Duration::from_secs(30);

struct Server {
    trickle: TrickleServer,
    _handle: ServerHandle,
    url: String,
}

impl Server {
    async fn start() -> Server {
        let trickle = TrickleServer::new(TrickleConfig::default());
        assert!(trickle.create_channel("av", MIME_MPEGTS));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = serve(listener, trickle.router(), None);
        let url = channel_url(&format!("http://{}", handle.addr), "av");
        Server { trickle, _handle: handle, url }
    }

    async fn publisher(&self) -> TricklePublisher {
        let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&self.url).unwrap();
        TricklePublisher::start(http, &self.url, PublisherConfig::default()).await
    }
}

fn config() -> VideoPublisherConfig {
    // Pushed faster than real time: keep media segments apart, as a live source would.
    let timing = StreamTiming { min_segment_wallclock: Duration::ZERO, ..StreamTiming::default() };
    VideoPublisherConfig {
        timing,
        audio: Some(AudioTrackConfig::opus(2)),
        ..VideoPublisherConfig::h264(320, 180)
    }
}

/// Feeds `frames` frames of the 320x180 test pattern (30 fps media time) through `video`,
/// each preceded by the tone frames that play before it ends, as a capture hands them over;
/// waits for room rather than dropping. Returns the audio samples sent.
async fn feed(video: &VideoPublisher, mut tone: Tone, rate: u64, frame_len: u64, frames: u64) -> u64 {
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    let mut samples = 0u64;
    for i in 0..frames {
        while samples * 30 <= i * rate {
            video.write_audio(tone.next_frame()).unwrap();
            samples += frame_len;
        }
        tokio::time::timeout(GENEROUS, video.write_frame_when_ready(pattern.next_frame()))
            .await
            .expect("room in the queue")
            .unwrap();
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_and_audio_go_out_interleaved_and_every_audio_frame_is_counted() {
    let server = Server::start().await;
    let mut reader = server.trickle.local_subscriber("av", SeqSpec::At(0)).unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let collected = tokio::spawn({
        let read = read.clone();
        async move {
            let mut segments = Vec::new();
            while let Some(seg) = reader.next_segment().await {
                segments.push(seg.read_all().await);
                read.store(segments.len(), Ordering::SeqCst);
            }
            segments
        }
    });
    let video = VideoPublisher::start(server.publisher().await, config()).unwrap();
    // 20 ms frames: 1.5 per video frame.
    let audio_frames = feed(&video, Tone::new(2, 48_000, 960).unwrap(), 48_000, 960, 90).await / 960;
    let stats = tokio::time::timeout(GENEROUS, video.finish()).await.expect("finished").unwrap();

    let a = stats.audio;
    assert_eq!(a.frames_in, audio_frames, "{stats:?}");
    assert_eq!(a.frames_encoded + a.frames_dropped_overflow + a.frames_refused, a.frames_in, "{stats:?}");
    assert_eq!(a.frames_refused, 0, "{stats:?}");
    // 960-sample frames make one packet each; the flush adds none (nothing is left over).
    assert_eq!(a.packets_encoded, a.frames_encoded, "{stats:?}");
    assert_eq!(a.packets_dropped, 0, "{stats:?}");
    assert_eq!((stats.frames_in, stats.frames_encoded + stats.frames_dropped), (90, 90), "{stats:?}");
    assert_eq!(stats.bytes_encoded, stats.bytes_published, "{stats:?}");

    // What the server holds: every packet, in segments that start with the PAT.
    let completed = server.trickle.channel_totals("av").segments_completed as usize;
    tokio::time::timeout(GENEROUS, async {
        while read.load(Ordering::SeqCst) < completed {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the reader gets every segment");
    server.trickle.close_channel("av");
    let segments = tokio::time::timeout(GENEROUS, collected).await.expect("the reader ends").unwrap();
    assert_eq!(segments.len(), completed);
    let mut demux = TsDemuxer::with_audio();
    let (mut video_units, mut pcm, mut decoder) = (0u64, Vec::new(), OpusDecoder::new(2).unwrap());
    let mut audio_units = 0u64;
    let mut units = Vec::new();
    for seg in &segments {
        assert_eq!((seg[0], seg[1] & 0x1F, seg[2]), (0x47, 0, 0), "a segment starts with the PAT");
        units.extend(demux.push_media(seg));
    }
    assert_eq!(demux.stats().issues(), 0, "{:?}", demux.last_issue());
    units.extend(demux.finish_media());
    for unit in units {
        match unit {
            MediaUnit::Video(_) => video_units += 1,
            MediaUnit::Audio(u) => {
                assert_eq!(u.stream.codec, Some(Codec::Opus));
                audio_units += 1;
                decoder.trim_start(u.trim.start);
                pcm.extend(decoder.decode(&u.data).unwrap());
            }
        }
    }
    assert_eq!(video_units, stats.frames_encoded);
    assert_eq!(audio_units, a.packets_encoded, "every packet made reached the server");
    let left: Vec<f32> = pcm.iter().step_by(2).skip(4_800).take(48_000).copied().collect();
    let hz = left.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count() as f32;
    assert!((hz - Tone::pitch(0)).abs() < 3.0, "{hz} Hz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_without_a_track_or_on_a_track_that_cannot_carry_it_is_refused() {
    let server = Server::start().await;
    // No audio track: write_audio is an error.
    let plain = VideoPublisher::start(server.publisher().await, VideoPublisherConfig::h264(64, 64)).unwrap();
    let frame = Tone::new(2, 48_000, 960).unwrap().next_frame();
    assert!(plain.write_audio(frame).is_err());
    plain.finish().await.unwrap();
    // An audio track with AV1 or passthrough cannot start.
    let av1 = VideoPublisherConfig { codec: Codec::Av1, ..config() };
    assert!(VideoPublisher::start(server.publisher().await, av1).is_err());
    let pass = VideoPublisherConfig {
        audio: Some(AudioTrackConfig::opus(2)),
        ..VideoPublisherConfig::passthrough_ts()
    };
    assert!(VideoPublisher::start(server.publisher().await, pass).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_of_another_rate_and_layout_is_converted() {
    let server = Server::start().await;
    let mut reader = server.trickle.local_subscriber("av", SeqSpec::At(0)).unwrap();
    let first = tokio::spawn(async move { reader.next_segment().await.expect("a segment").read_all().await });
    // 44.1 kHz mono on a 48 kHz stereo track, 2 s, in 1024-sample frames.
    let video = VideoPublisher::start(server.publisher().await, config()).unwrap();
    let sent = feed(&video, Tone::new(1, 44_100, 1024).unwrap(), 44_100, 1024, 60).await;
    let stats = tokio::time::timeout(GENEROUS, video.finish()).await.expect("finished").unwrap();
    let a = stats.audio;
    assert_eq!((a.frames_refused, a.frames_dropped_overflow), (0, 0), "{stats:?}");
    assert_eq!(a.frames_encoded, a.frames_in, "{stats:?}");
    // Its length at 48 kHz in 20 ms packets, the last padded.
    let expected = (sent * 48_000 / 44_100).div_ceil(960);
    assert_eq!(a.packets_encoded, expected, "{stats:?}");

    let seg = tokio::time::timeout(GENEROUS, first).await.expect("the first segment").unwrap();
    let mut demux = TsDemuxer::with_audio();
    let mut units = demux.push_media(&seg);
    units.extend(demux.finish_media());
    let mut decoder = OpusDecoder::new(2).unwrap();
    let mut pcm = Vec::new();
    for unit in units {
        if let MediaUnit::Audio(u) = unit {
            assert_eq!(u.stream.channels, Some(2));
            decoder.trim_start(u.trim.start);
            pcm.extend(decoder.decode(&u.data).unwrap());
        }
    }
    // Both sides carry the mono tone at its pitch.
    for side in 0..2 {
        let ch: Vec<f32> = pcm.iter().skip(side).step_by(2).skip(4_800).take(48_000).copied().collect();
        let hz = ch.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count() as f32;
        assert!((hz - Tone::pitch(0)).abs() < 3.0, "side {side}: {hz} Hz");
    }
}

/// The official Python SDK's `MediaPublish` with a video and an audio track (libx264 and
/// libopus through PyAV), 2 s at real-time pace, to the channel at argv[1].
const PY_MEDIA_PUBLISH: &str = r#"
import asyncio, json, math, sys
from array import array
from fractions import Fraction
import av
from livepeer_gateway.media_publish import MediaPublish, MediaPublishConfig, VideoOutputConfig, AudioOutputConfig

async def main(url):
    mp = MediaPublish(url, config=MediaPublishConfig(tracks=[VideoOutputConfig(fps=30), AudioOutputConfig()]))
    samples = 0
    for i in range(60):
        while samples * 30 <= i * 48000:
            pcm = array("f")
            for n in range(samples, samples + 1024):
                t = n / 48000.0
                pcm.append(0.4 * math.sin(2 * math.pi * 440.0 * t))
                pcm.append(0.4 * math.sin(2 * math.pi * 660.0 * t))
            a = av.AudioFrame(format="flt", layout="stereo", samples=1024)
            a.planes[0].update(pcm.tobytes())
            a.sample_rate, a.pts, a.time_base = 48000, samples, Fraction(1, 48000)
            await mp.write_frame(a)
            samples += 1024
        v = av.VideoFrame(160, 96, "yuv420p")
        for plane in v.planes:
            plane.update(bytes([(i * 4) % 256]) * plane.buffer_size)
        v.pts, v.time_base = i, Fraction(1, 30)
        await mp.write_frame(v)
        await asyncio.sleep(1 / 30)
    await asyncio.wait_for(mp.close(), 60)
    print(json.dumps({"audio_samples": samples}))

asyncio.run(main(sys.argv[1]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_python_sdks_media_publish_sends_with_audio_reads_back_here() {
    let server = Server::start().await;
    let mut reader = server.trickle.local_subscriber("av", SeqSpec::At(0)).unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let collected = tokio::spawn({
        let read = read.clone();
        async move {
            let mut bytes = Vec::new();
            while let Some(seg) = reader.next_segment().await {
                bytes.extend_from_slice(&seg.read_all().await);
                read.fetch_add(1, Ordering::SeqCst);
            }
            bytes
        }
    });
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(gateway_testkit::python::interpreter())
            .arg("-c")
            .arg(PY_MEDIA_PUBLISH)
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    // The SDK deletes nothing at close: end the reader once it has every segment. At close the
    // SDK cancels a segment still being written (on a loaded machine, often the last one), so
    // the server counts that POST failed even though its bytes are in: count segments ended
    // either way, and wait for a count that holds still.
    let ended = || {
        let t = server.trickle.channel_totals("av");
        (t.segments_completed + t.posts_failed) as usize
    };
    tokio::time::timeout(GENEROUS, async {
        let mut last = 0;
        loop {
            let now = ended();
            if now > 0 && now == last && read.load(Ordering::SeqCst) >= now {
                return;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the reader gets every segment: {:?}", server.trickle.channel_totals("av")));
    server.trickle.close_channel("av");
    let ts = tokio::time::timeout(GENEROUS, collected).await.expect("the reader ends").unwrap();

    let mut demux = TsDemuxer::with_audio();
    let mut units = demux.push_media(&ts);
    units.extend(demux.finish_media());
    assert_eq!(demux.stats().issues(), 0, "{:?}", demux.last_issue());
    let (mut video, mut pts, mut pcm) = (0, Vec::new(), Vec::new());
    let mut decoder = OpusDecoder::new(2).unwrap();
    for unit in units {
        match unit {
            MediaUnit::Video(_) => video += 1,
            MediaUnit::Audio(u) => {
                assert_eq!((u.stream.codec, u.stream.channels), (Some(Codec::Opus), Some(2)));
                decoder.trim_start(u.trim.start);
                pcm.extend(decoder.decode(&u.data).unwrap());
                pts.push(u.pts.unwrap());
            }
        }
    }
    assert!(video >= 55, "{video} video frames of 60");
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "audio in order");
    // About 2 s of both tones (PyAV may keep back its last partial packet).
    assert!(pcm.len() / 2 >= 90_000, "{} samples", pcm.len() / 2);
    for (side, pitch) in [(0, 440.0), (1, 660.0)] {
        let ch: Vec<f32> = pcm.iter().skip(side).step_by(2).skip(4_800).take(48_000).copied().collect();
        let hz = ch.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count() as f32;
        assert!((hz - pitch).abs() < 3.0, "side {side}: {hz} Hz");
    }
}

/// The official Python SDK's `MediaOutput(url, start_seq=0).frames()` on the channel at
/// argv[1]: collects decoded frames until it holds argv[2] video frames, then prints what it
/// saw (sizes and pts of the video; rate, layout, samples and the pitch of channel 0 of the
/// audio). It stops on its own count, so the channel need not end.
const PY_MEDIA_OUTPUT: &str = r#"
import asyncio, json, sys
from array import array
from livepeer_gateway.media_output import MediaOutput

def channel0(frame):
    """Channel 0 of a decoded audio frame as floats (planar: plane 0; packed: every n-th)."""
    samples = array("f", bytes(frame.planes[0]))
    if frame.format.is_planar:
        return samples[:frame.samples]
    return samples[::len(frame.layout.channels)][:frame.samples]

async def main(url, want):
    video, audio = [], []
    out = MediaOutput(url, start_seq=0)
    async for item in out.frames():
        if item.kind == "video":
            video.append((item.width, item.height, item.pts))
        elif item.kind == "audio":
            audio.append(item)
        if len(video) >= want:
            break
    await out.close()
    pcm = array("f")
    for a in audio:
        pcm.extend(channel0(a.frame))
    second = pcm[4800:52800]
    crossings = sum(1 for x, y in zip(second, second[1:]) if x < 0 <= y)
    print(json.dumps({
        "video": video,
        "audio_rate": audio[0].sample_rate if audio else 0,
        "audio_layout": str(audio[0].layout) if audio else "",
        "audio_samples": int(sum(a.samples for a in audio)),
        "pitch": crossings * 48000 / max(len(second), 1),
    }))

asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2])), 60))
"#;

/// What we publish with an audio track, the official Python SDK's `MediaOutput.frames()`
/// decodes: every video frame of the first three seconds at our size and pts, and the stereo
/// 48 kHz tone at its pitch. Four seconds go out, so the frames counted are followed by more
/// (a decoder holds a stream's last frame until it ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_media_output_decodes_our_audio_and_video() {
    let server = Server::start().await;
    let video = VideoPublisher::start(server.publisher().await, config()).unwrap();
    feed(&video, Tone::new(2, 48_000, 960).unwrap(), 48_000, 960, 120).await;
    let stats = tokio::time::timeout(GENEROUS, video.finish()).await.expect("finished").unwrap();
    // A loaded machine may drop a frame for debt (counted); what was encoded must all decode.
    assert_eq!(stats.frames_encoded + stats.frames_dropped, 120, "{stats:?}");
    assert!(stats.frames_encoded >= 100 && stats.audio.frames_refused == 0, "{stats:?}");

    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(gateway_testkit::python::interpreter())
            .arg("-c")
            .arg(PY_MEDIA_OUTPUT)
            .arg(url)
            .arg("90")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = seen["video"].as_array().unwrap();
    assert_eq!(frames.len(), 90, "{seen}");
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f[0].as_u64(), f[1].as_u64()), (Some(320), Some(180)), "frame {i}: {f}");
    }
    // 90 kHz pts in order, on our 1/30 s grid, with gaps only where we dropped a frame.
    let pts: Vec<i64> = frames.iter().map(|f| f[2].as_i64().unwrap()).collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0] && (w[1] - w[0]) % 3000 == 0), "{pts:?}");
    let missing = (pts[89] - pts[0]) / 3000 + 1 - 90;
    assert!(missing as u64 <= stats.frames_dropped, "{missing} frames missing: {pts:?}");
    assert_eq!((seen["audio_rate"].as_u64(), seen["audio_layout"].as_str()), (Some(48_000), Some("stereo")));
    // At least the 3 s the counted video spans, less the encoder's pre-skip and a packet.
    let samples = seen["audio_samples"].as_u64().unwrap();
    assert!(samples + 312 + 960 >= 3 * 48_000, "{samples} samples");
    let pitch = seen["pitch"].as_f64().unwrap();
    assert!((pitch - f64::from(Tone::pitch(0))).abs() < 3.0, "{pitch} Hz");
}
