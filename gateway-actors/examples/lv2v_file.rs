//! A live video-to-video (LV2V) job fed from a Y4M file, its output read back.
//!
//! The frames of the file are encoded to H.264, cut into MPEG-TS segments and published to the
//! job's input channel; the pipeline's output (here `noop`, which sends the video back) is read
//! as access units. The stream moves to another orchestrator if its own fails (`SwapConfig`).
//! Make a Y4M file with `ffmpeg -i in.mp4 -pix_fmt yuv420p out.y4m`.
//!
//! `cargo run -p livepeer-gateway-actors --example lv2v_file -- [FILE.y4m]`: without a file it
//! writes two seconds of test pattern to a temporary one. With `LIVEPEER_TOKEN` set to a
//! gateway token it runs on that network; without, on the local network of
//! `livepeer-gateway-testkit`.

// In this workspace the sibling crates keep their short names; in your crate these are simply
// the dependencies `livepeer-gateway-core`, `-media` and `-testkit`.
extern crate gateway_core as livepeer_gateway_core;
extern crate gateway_media as livepeer_gateway_media;
extern crate gateway_testkit as livepeer_gateway_testkit;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livepeer_gateway_actors::live::{LiveJobRequest, SwapConfig};
use livepeer_gateway_actors::media::VideoPublisherConfig;
use livepeer_gateway_actors::{Gateway, GatewayConfig, Lv2vRequest};
use livepeer_gateway_core::token::NetworkSettings;
use livepeer_gateway_core::trickle::SeqSpec;
use livepeer_gateway_media::y4m::{self, Y4mHeader, Y4mReader};
use livepeer_gateway_media::{Rational, TestPattern};
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};

/// Two seconds of the 320x180 test pattern at 30 fps, as a Y4M file.
fn sample_file() -> std::io::Result<PathBuf> {
    let header = Y4mHeader { width: 320, height: 180, frame_rate: Rational::new(30, 1) };
    let mut pattern = TestPattern::new(header.width, header.height, header.frame_rate)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut bytes = Vec::new();
    y4m::write_header(&header, &mut bytes);
    for _ in 0..60 {
        y4m::write_frame(&pattern.next_frame(), &mut bytes);
    }
    let path = std::env::temp_dir().join(format!("lv2v-example-{}.y4m", std::process::id()));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (path, temporary) = match std::env::args_os().nth(1) {
        Some(path) => (PathBuf::from(path), false),
        None => (sample_file()?, true),
    };
    let mut input = Y4mReader::new(std::io::BufReader::new(std::fs::File::open(&path)?))?;
    if temporary {
        // Open files stay readable after their name is gone.
        std::fs::remove_file(&path)?;
    }
    let header = input.header();

    let (config, local) = match std::env::var("LIVEPEER_TOKEN") {
        Ok(token) => (GatewayConfig::default().with_token(&token)?, None),
        Err(_) => {
            let net = LocalNetwork::start(NetworkConfig::default()).await?;
            let network = NetworkSettings { signer: Some(net.signer_url()), ..Default::default() };
            (GatewayConfig { network, ..Default::default() }, Some(net))
        }
    };
    let gateway = Gateway::start(config)?;

    let request = LiveJobRequest::Lv2v(Lv2vRequest { model_id: "noop".into(), ..Default::default() });
    let video = VideoPublisherConfig {
        frame_rate: header.frame_rate,
        ..VideoPublisherConfig::h264(header.width, header.height)
    };
    let stream = gateway.start_live_stream(request, Some(video), SwapConfig::default()).await?;
    println!("LV2V job {} on {}", stream.status().job_id, stream.status().orchestrator);

    // The output channel is new: reading from its first segment misses nothing.
    let mut output = stream.output_video(SeqSpec::At(0));
    let received = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn({
        let received = received.clone();
        async move {
            while let Ok(Some(_unit)) = output.next_access_unit().await {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let publisher = stream.video().ok_or("the stream takes no video")?;
    // Reading a file is faster than real time: wait for room instead of dropping frames.
    while let Some(frame) = input.next_frame()? {
        publisher.write_frame_when_ready(frame).await?;
    }
    let sent = stream.finish_video().await?;
    println!("sent {} frames in {} segments", sent.frames_encoded, sent.segments_published);

    // The pipeline sends its output a little behind the input: wait (a while) for all of it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < sent.frames_encoded && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = stream.stop().await;
    reader.abort();
    println!("received {} frames back", received.load(Ordering::Relaxed));
    println!("swaps: {}, ended: {:?}", report.status.swaps.len(), report.status.ended);

    gateway.shutdown();
    if let Some(net) = local {
        net.shutdown().await;
    }
    Ok(())
}
