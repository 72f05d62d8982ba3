//! `livepeer-gateway subscribe-events`: starts a live video-to-video job and prints its events
//! (status, errors, parameter acknowledgements), one JSON document per line.

use clap::Args;
use gateway_actors::Lv2vRequest;

use crate::cli;
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `subscribe-events`.
#[derive(Debug, Args)]
pub struct SubscribeEventsArgs {
    /// Stop after this many events (0: until the stream ends or Ctrl-C).
    #[arg(long, default_value_t = 5)]
    pub count: u64,
    /// Pipeline model to run.
    #[arg(long, default_value = "noop")]
    pub model: String,
    /// Exit 0 even when the events channel ended before --count events.
    #[arg(long)]
    pub allow_partial: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: SubscribeEventsArgs) -> anyhow::Result<()> {
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = run_job(&net, &args).await;
    net.shutdown().await;
    result
}

async fn run_job(net: &Network, args: &SubscribeEventsArgs) -> anyhow::Result<()> {
    let request = Lv2vRequest { model_id: args.model.clone(), ..Default::default() };
    let job = cli::interruptible(net.gateway.start_lv2v(request)).await?;
    eprintln!("LV2V job {} on {}", job.session.manifest_id, job.orchestrator);
    let mut events = job.events();
    let outcome = cli::interruptible(async {
        let mut seen = 0u64;
        while args.count == 0 || seen < args.count {
            match events.next().await? {
                Some(event) => println!("{event}"),
                None => {
                    eprintln!("the events channel ended");
                    break;
                }
            }
            seen += 1;
        }
        anyhow::Ok(seen)
    })
    .await;
    events.close();
    cli::cleanup("stopping the job", job.stop()).await;
    let seen = outcome?;
    eprintln!("{seen} event(s)");
    let shortfall = (args.count > 0 && seen < args.count)
        .then(|| format!("the events channel ended after {seen} of {} event(s)", args.count));
    cli::verdict(shortfall, args.allow_partial)
}
