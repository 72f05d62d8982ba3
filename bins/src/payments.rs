//! `livepeer-gateway payments`: starts a live video-to-video job and lets its payment loop run
//! for `--duration` seconds, printing the payment counters every few seconds. On the embedded
//! network the loop pays every second so the run shows payments quickly.

use std::time::{Duration, Instant};

use clap::Args;
use gateway_actors::Lv2vRequest;

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `payments`.
#[derive(Debug, Args)]
pub struct PaymentsArgs {
    /// How long to keep the job (and its payments) running, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub duration: u64,
    /// Seconds between two printed reports.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub report_every: u64,
    /// Pipeline model to run.
    #[arg(long, default_value = "noop")]
    pub model: String,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: PaymentsArgs) -> anyhow::Result<()> {
    let tweaks = EmbeddedTweaks { lv2v_payment_interval: Some(Duration::from_secs(1)) };
    let net = Network::connect(&args.network, tweaks).await?;
    let result = run_job(&net, &args).await;
    net.shutdown().await;
    result
}

async fn run_job(net: &Network, args: &PaymentsArgs) -> anyhow::Result<()> {
    if net.gateway.config().network.signer.is_none() {
        eprintln!("note: no signer: the job runs offchain and nothing is paid");
    }
    let request = Lv2vRequest { model_id: args.model.clone(), ..Default::default() };
    let job = cli::interruptible(net.gateway.start_lv2v(request)).await?;
    println!(
        "LV2V job {} on {}, paying every {} s for {} s",
        job.session.manifest_id,
        job.orchestrator,
        net.gateway.config().lv2v_payment_interval.as_secs_f64(),
        args.duration
    );
    let started = Instant::now();
    let outcome = cli::interruptible(async {
        let end = started + Duration::from_secs(args.duration);
        let mut tick = tokio::time::interval(Duration::from_secs(args.report_every));
        tick.tick().await;
        while Instant::now() < end {
            let remaining = end.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep(remaining) => {}
            }
            let s = job.payment_stats();
            println!(
                "{:>4.0} s: {} sent, {} skipped, {} failed",
                started.elapsed().as_secs_f64(),
                s.payments_sent,
                s.cycles_skipped,
                s.failures
            );
            if let Some(reason) = s.stopped {
                anyhow::bail!("payments stopped: {reason}");
            }
        }
        anyhow::Ok(())
    })
    .await;
    let stats = job.payment_stats();
    cli::cleanup("stopping the job", job.stop()).await;
    outcome?;
    println!(
        "total: {} payment(s) sent, {} cycle(s) skipped, {} failure(s) in {:.1} s",
        stats.payments_sent,
        stats.cycles_skipped,
        stats.failures,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
