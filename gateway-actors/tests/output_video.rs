//! The LV2V output video demuxed and decoded, over real sockets: frames go out through the
//! `VideoPublisher`, the local network's passthrough worker sends them back, and
//! `Lv2vJob::output_video` hands them out as access units and as decoded pictures.

use std::time::Duration;

use gateway_core::token::NetworkSettings;
use gateway_core::trickle::SeqSpec;
use gateway_media::{Codec, H264EncoderPool, Rational, TestPattern};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use livepeer_gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use livepeer_gateway_actors::output_video::{OutputAccessUnit, OutputFrame, VideoSubscriber};
use livepeer_gateway_actors::{Gateway, GatewayConfig, Lv2vRequest};

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

/// The local network and a gateway pointed at it.
async fn start_network() -> (LocalNetwork, Gateway) {
    let net = LocalNetwork::start(NetworkConfig::default()).await.unwrap();
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    (net, gw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lv2v_output_video_gives_back_every_frame_with_its_pts() {
    let (net, gw) = start_network().await;
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
    let (net, gw) = start_network().await;
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

/// With an audio track, `output_media` hands out decoded pictures and samples in arrival
/// order: every frame back with its pts, and the tone back at its pitch with every sample the
/// publisher encoded (after the encoder's pre-skip), stamped on the video's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lv2v_output_media_gives_back_pictures_and_the_tone() {
    use gateway_media::audio::Tone;
    use livepeer_gateway_actors::media::AudioTrackConfig;
    use livepeer_gateway_actors::output_video::OutputMedia;

    let (net, gw) = start_network().await;
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    let mut output = job.output_media(SeqSpec::At(0));
    let read = tokio::spawn(async move {
        let (mut pictures, mut audio) = (Vec::new(), Vec::new());
        while pictures.len() < FRAMES {
            match output.next_media().await.unwrap() {
                Some(OutputMedia::Video(f)) => pictures.push(f),
                Some(OutputMedia::Audio(a)) => audio.push(a),
                None => break,
            }
        }
        (pictures, audio, output)
    });

    // A short frame queue: waiting for room in it keeps the audio FIFO from overflowing.
    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.debt_skipping = false;
    cfg.audio = Some(AudioTrackConfig::opus(2));
    let video = VideoPublisher::start(job.publisher().await, cfg).unwrap();
    let mut pattern = TestPattern::new(320, 180, Rational::new(30, 1)).unwrap();
    let mut tone = Tone::new(2, 48_000, 960).unwrap();
    let mut audio_samples = 0u64;
    for i in 0..FRAMES as u64 {
        while audio_samples * 30 <= i * 48_000 {
            video.write_audio(tone.next_frame()).unwrap();
            audio_samples += 960;
        }
        video.write_frame_when_ready(pattern.next_frame()).await.unwrap();
    }
    let stats = tokio::time::timeout(WAIT, video.finish()).await.unwrap().unwrap();
    assert_eq!(stats.frames_encoded, FRAMES as u64, "{stats:?}");
    assert_eq!(stats.audio.frames_encoded, stats.audio.frames_in, "{stats:?}");

    let (pictures, audio, mut output) =
        tokio::time::timeout(WAIT, read).await.expect("the frames back").unwrap();
    assert_eq!(pictures.len(), FRAMES);
    for (i, f) in pictures.iter().enumerate() {
        assert_eq!(f.frame.pts(), i as i64 * 3000);
        assert_eq!(TestPattern::read_counter(&f.frame), Some(i as u64));
    }
    // Audio after the last picture (the stream's tail) comes on the next calls.
    let mut audio = audio;
    while output.stats().audio_units < stats.audio.packets_encoded {
        match tokio::time::timeout(WAIT, output.next_media()).await.expect("the audio's tail").unwrap() {
            Some(OutputMedia::Audio(a)) => audio.push(a),
            Some(OutputMedia::Video(f)) => panic!("a picture after the last one: {}", f.frame.pts()),
            None => break,
        }
    }
    let stats_out = output.stats();
    assert_eq!(stats_out.audio_units, stats.audio.packets_encoded, "{stats_out:?}");
    assert_eq!(stats_out.frames_decoded, FRAMES as u64);
    let decoded: u64 = audio.iter().map(|a| a.frame.len() as u64).sum();
    assert_eq!(decoded, stats_out.audio_samples_decoded);
    // Whole 20 ms frames make whole packets (no flush); the encoder's lookahead is trimmed.
    let pre_skip =
        gateway_media::audio::OpusEncoder::new(gateway_media::audio::OpusConfig::new(2)).unwrap().pre_skip();
    assert_eq!(decoded, audio_samples - u64::from(pre_skip), "{stats_out:?}");
    assert!(audio.iter().all(|a| a.frame.channels() == 2 && a.frame.rate() == 48_000));
    assert_eq!(audio[0].frame.pts(), 0, "audio starts with the video");
    let pcm: Vec<f32> = audio.iter().flat_map(|a| a.frame.samples().iter().copied()).collect();
    let left: Vec<f32> = pcm.iter().step_by(2).skip(4_800).take(48_000).copied().collect();
    let hz = left.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count() as f32;
    assert!((hz - Tone::pitch(0)).abs() < 3.0, "{hz} Hz");

    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}
