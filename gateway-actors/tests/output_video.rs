//! The LV2V output video demuxed and decoded, over real sockets: frames go out through the
//! `VideoPublisher`, the local network's passthrough worker sends them back, and
//! `Lv2vJob::output_video` hands them out as access units and as decoded pictures.

use std::time::Duration;

use gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use gateway_actors::output_video::{OutputAccessUnit, OutputFrame, VideoSubscriber};
use gateway_actors::{Gateway, GatewayConfig, Lv2vRequest};
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::SeqSpec;
use gateway_media::{Codec, H264EncoderPool, Rational, TestPattern};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

const FRAMES: usize = 90;
const WAIT: Duration = Duration::from_secs(30);

async fn collect_units(mut video: VideoSubscriber, n: usize) -> (Vec<OutputAccessUnit>, VideoSubscriber) {
    let mut units = Vec::new();
    while units.len() < n {
        match video.next_access_unit().await.unwrap() {
            Some(u) => units.push(u),
            None => break,
        }
    }
    (units, video)
}

async fn collect_frames(mut video: VideoSubscriber, n: usize) -> (Vec<OutputFrame>, VideoSubscriber) {
    let mut frames = Vec::new();
    while frames.len() < n {
        match video.next_frame().await.unwrap() {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    (frames, video)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lv2v_output_video_gives_back_every_frame_with_its_pts() {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();

    // Two readers of the output: access units, and decoded frames.
    let units = tokio::spawn(collect_units(job.output_video(SeqSpec::At(0)), FRAMES));
    let frames = tokio::spawn(collect_frames(job.output_video(SeqSpec::At(0)), FRAMES));

    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.queue_frames = 1000;
    cfg.debt_skipping = false;
    let video = VideoPublisher::start(job.publisher().await, cfg).unwrap();
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    let mut sent_pts = Vec::new();
    for _ in 0..FRAMES {
        let frame = pattern.next_frame();
        sent_pts.push(frame.pts_90k());
        video.write_frame_when_ready(frame).await.unwrap();
    }
    let stats = tokio::time::timeout(WAIT, video.finish()).await.unwrap().unwrap();
    assert_eq!(stats.frames_encoded, FRAMES as u64, "{stats:?}");

    let (units, reader) = tokio::time::timeout(WAIT, units).await.expect("all access units back").unwrap();
    assert_eq!(units.len(), FRAMES);
    let pts: Vec<i64> = units.iter().map(|u| u.pts.unwrap()).collect();
    assert_eq!(pts, sent_pts, "every frame back with its pts, in order");
    assert!(units[0].keyframe && units[0].stream.codec == Some(Codec::H264));
    assert_eq!(units.iter().filter(|u| u.keyframe).count(), 2, "a keyframe every 2 s");
    assert!(units.windows(2).all(|w| w[1].seq >= w[0].seq));
    let stats = reader.stats();
    assert_eq!(stats.demux.issues(), 0, "{stats:?}");
    assert_eq!(stats.access_units, FRAMES as u64);

    let (frames, reader) = tokio::time::timeout(WAIT, frames).await.expect("all frames back").unwrap();
    assert_eq!(frames.len(), FRAMES);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.frame.width(), f.frame.height()), (320, 180));
        assert_eq!(f.frame.pts(), sent_pts[i]);
        // The test pattern's burned-in counter survives encode, passthrough and decode.
        assert_eq!(TestPattern::read_counter(&f.frame), Some(i as u64));
    }
    assert_eq!(reader.stats().frames_decoded, FRAMES as u64);

    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

/// Jobs that come and go reuse one openh264 encoder (what keeps a long-running service's memory
/// flat), and each job's output still starts on a keyframe and decodes from its first frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_jobs_reuse_one_encoder_and_each_output_decodes_alone() {
    const PER_JOB: usize = 30;
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let pool = H264EncoderPool::new();
    for job_no in 0..3 {
        let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
        let frames = tokio::spawn(collect_frames(job.output_video(SeqSpec::At(0)), PER_JOB));
        let mut cfg = VideoPublisherConfig::h264(320, 180);
        cfg.queue_frames = 1000;
        cfg.debt_skipping = false;
        cfg.encoder_pool = Some(pool.clone());
        let video = VideoPublisher::start(job.publisher().await, cfg).unwrap();
        let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
        for _ in 0..PER_JOB {
            video.write_frame_when_ready(pattern.next_frame()).await.unwrap();
        }
        let stats = tokio::time::timeout(WAIT, video.finish()).await.unwrap().unwrap();
        assert_eq!(stats.frames_encoded, PER_JOB as u64, "job {job_no}: {stats:?}");
        // Finishing hands the encoder back before it returns.
        assert_eq!(pool.stats().idle, 1, "job {job_no}");

        let (frames, _) = tokio::time::timeout(WAIT, frames).await.expect("all frames back").unwrap();
        assert_eq!(frames.len(), PER_JOB, "job {job_no}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.frame.pts(), i as i64 * 3000, "job {job_no}: media time restarts");
            assert_eq!(TestPattern::read_counter(&f.frame), Some(i as u64), "job {job_no}");
        }
        job.stop().await.unwrap();
    }
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused, stats.dropped), (1, 2, 0), "{stats:?}");
    gw.shutdown();
    net.shutdown().await;
}
