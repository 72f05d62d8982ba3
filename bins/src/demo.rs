//! `livepeer-gateway demo`: the whole product in one run against the embedded local network.
//!
//! Starts the local network (orchestrators over TLS, a remote signer that also serves
//! discovery), finds orchestrators through the signer, runs a BYOC text-reversal job and a
//! short live video job (H.264 test pattern in MPEG-TS, through the orchestrator's passthrough
//! worker and back), and prints what happened.

use std::time::{Duration, Instant};

use clap::Args;
use gateway_actors::live::{LiveJobRequest, SwapConfig};
use gateway_actors::media::VideoPublisherConfig;
use gateway_actors::{ByocJobRequest, Gateway, GatewayConfig, Lv2vRequest};
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::SeqSpec;
use gateway_media::{Rational, TestPattern};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Number of local orchestrators.
    #[arg(long, default_value_t = 2)]
    pub orchestrators: usize,
    /// Seconds of test-pattern video to send through the live job.
    #[arg(long, default_value_t = 4)]
    pub seconds: u32,
    /// Text lines for the BYOC text-reversal job.
    #[arg(long, default_values_t = ["hello livepeer".to_string(), "bring your own container".to_string()])]
    pub text: Vec<String>,
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.orchestrators == 0 || args.seconds == 0 {
        anyhow::bail!("--orchestrators and --seconds must be at least 1");
    }
    let started = Instant::now();
    let net = LocalNetwork::start(NetworkConfig { orchestrators: args.orchestrators, ..Default::default() })
        .await?;
    println!(
        "local network: {} orchestrator(s) over TLS, signer at {}",
        args.orchestrators,
        net.signer_url()
    );

    // Only a signer: orchestrators are discovered through it, as with a hosted signer.
    let network = NetworkSettings { signer: Some(net.signer_url()), ..Default::default() };
    // Pay every second (the network's cadence is 5 s for LV2V, 50 s for BYOC) so a short demo
    // shows recurring payments, not just the one made before each start.
    let gw = Gateway::start(GatewayConfig {
        network,
        lv2v_payment_interval: Duration::from_secs(1),
        byoc_payment_interval: Duration::from_secs(1),
        ..Default::default()
    })?;
    let identity = gw.identity().await?.map(|i| i.address).unwrap_or_else(|| "offchain".into());
    println!("gateway identity (from the signer): {identity}");

    let selection = gw.select(&["byoc/text-reversal".parse()?], None).await?;
    for (i, c) in selection.candidates.iter().enumerate() {
        let price = c
            .info
            .price_info
            .as_ref()
            .map(|p| format!("{}/{} wei", p.price_per_unit, p.pixels_per_unit))
            .unwrap_or_default();
        println!("  candidate {i}: {} ({} ms, price {price})", c.address, c.latency.as_millis());
    }

    // BYOC text reversal.
    let mut req = ByocJobRequest::new("text-reversal");
    req.enable_data_output = true;
    let job = gw.start_byoc_job(req).await?;
    println!("BYOC job {} on {}", job.stream_id, job.orchestrator);
    let outcome = async {
        let control = job.control().await?;
        let mut data = job.data()?;
        for line in &args.text {
            let t0 = Instant::now();
            control.send(&serde_json::json!({ "text": line })).await?;
            let reply = tokio::time::timeout(Duration::from_secs(10), data.next())
                .await
                .map_err(|_| anyhow::anyhow!("no reply within 10 s"))??
                .ok_or_else(|| anyhow::anyhow!("data channel ended"))?;
            println!("  {:?} -> {} ({} ms)", line, reply["reversed"], t0.elapsed().as_millis());
        }
        control.close().await;
        anyhow::Ok(())
    }
    .await;
    let byoc_payments = job.payment_stats();
    job.stop().await?;
    outcome?;

    // Live video to video, as a live stream that would move to another orchestrator if its
    // own failed.
    let request = LiveJobRequest::Lv2v(Lv2vRequest { model_id: "noop".into(), ..Default::default() });
    let (w, h) = (640, 360);
    let fps = 30;
    let stream =
        gw.start_live_stream(request, Some(VideoPublisherConfig::h264(w, h)), SwapConfig::default()).await?;
    let status = stream.status();
    println!("LV2V job {} on {}", status.job_id, status.orchestrator);
    let output = crate::output::CountedOutput::start(stream.output(SeqSpec::At(0)));
    let video = stream.video().ok_or_else(|| anyhow::anyhow!("the stream takes no video"))?;
    let mut pattern = TestPattern::new(w, h, Rational::new(fps, 1))?;
    let t0 = Instant::now();
    for _ in 0..(args.seconds * fps) {
        video.write_frame(pattern.next_frame())?;
        // Pace like a camera so the encoder queue is exercised as in a live stream.
        tokio::time::sleep(Duration::from_millis(1000 / fps as u64)).await;
    }
    let media = stream.finish_video().await?;
    let sent_in = t0.elapsed();
    // The passthrough worker sends back what it got: wait for it (a fixed pause lost the last
    // segment on a busy machine) before stopping the job.
    let (out_segments, out_bytes) = output.settle(media.bytes_published).await;
    let stopped = stream.stop().await;
    let lv2v_payments = crate::swaps::total_payments(&stopped.status);

    println!("summary");
    println!("  video in: {} frames, {} encoded, {} dropped, {} segments / {} bytes published, {} failed, {} bytes drained, in {:.1} s",
        media.frames_in, media.frames_encoded, media.frames_dropped, media.segments_published, media.bytes_published,
        media.segments_failed, media.bytes_drained, sent_in.as_secs_f64());
    println!("  video out: {out_segments} segments / {out_bytes} bytes received back from the orchestrator");
    println!("  payments: BYOC {} sent + {} skipped, LV2V {} sent + {} skipped; signer minted {} tickets in {} payments",
        byoc_payments.payments_sent, byoc_payments.cycles_skipped, lv2v_payments.payments_sent, lv2v_payments.cycles_skipped,
        net.signer.stats().tickets_minted, net.signer.stats().payments_minted);
    for (i, swap) in stopped.status.swaps.iter().enumerate() {
        println!("  swap {}: {}", i + 1, crate::swaps::describe(swap));
    }
    println!("  total time {:.1} s", started.elapsed().as_secs_f64());
    gw.shutdown();
    net.shutdown().await;
    // A swap starts the output over on another orchestrator: the totals then differ by design.
    if stopped.status.swaps.is_empty() && out_bytes != media.bytes_published {
        anyhow::bail!("the output carried {out_bytes} bytes but {} were published", media.bytes_published);
    }
    Ok(())
}
