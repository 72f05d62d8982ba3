//! `livepeer-gateway subscribe-events`: starts a live video-to-video job and prints its events
//! (status, errors, parameter acknowledgements), one JSON document per line.

use clap::Args;
use gateway_actors::live::LiveJobRequest;
use gateway_actors::Lv2vRequest;

use crate::cli::{self, Console};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};
use crate::swaps::{print_swaps, SwapArgs};

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
    pub swap: SwapArgs,
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
    let request = LiveJobRequest::Lv2v(Lv2vRequest { model_id: args.model.clone(), ..Default::default() });
    let stream = cli::interruptible(net.gateway.start_live_stream(request, None, args.swap.config())).await?;
    let status = stream.status();
    // Events are the data on stdout; everything else goes to stderr.
    let console = Console { data_on_stdout: true };
    console.line(format!("LV2V job {} on {}", status.job_id, status.orchestrator));
    let swaps = print_swaps(&stream, console);
    // The reader follows the stream to the next orchestrator after a swap.
    let mut events = stream.events();
    let outcome = cli::interruptible(async {
        let mut seen = 0u64;
        while args.count == 0 || seen < args.count {
            match events.next().await? {
                Some(event) => println!("{event}"),
                None => {
                    console.line("the events channel ended");
                    break;
                }
            }
            seen += 1;
        }
        anyhow::Ok(seen)
    })
    .await;
    events.close();
    let stopped = stream.stop().await;
    swaps.abort();
    let seen = outcome?;
    console.line(format!("{seen} event(s)"));
    let cause = crate::swaps::shortfall(&stopped.status);
    let shortfall = if args.count > 0 && seen < args.count {
        let cause = cause.map(|c| format!(": {c}")).unwrap_or_default();
        Some(format!("the events channel ended after {seen} of {} event(s){cause}", args.count))
    } else {
        cause
    };
    cli::verdict(shortfall, args.allow_partial)
}
