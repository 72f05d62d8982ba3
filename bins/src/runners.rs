//! `livepeer-gateway runners`: lists the live runners the orchestrators serve
//! (`GET /discovery` on each), filtered by app and GPU name, with capacity and price; each
//! orchestrator that could not be asked is named on stderr. `--json` prints the list for
//! scripts. Exit 0 with an empty list when nothing matches; 1 when no orchestrator answered.

use clap::{ArgAction, Args};
use gateway_core::runners::RunnerFilter;

use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `runners`.
#[derive(Debug, Args)]
pub struct RunnersArgs {
    /// Only these apps (exact; repeat or comma-separate for any of them).
    #[arg(long, action = ArgAction::Append, value_delimiter = ',')]
    pub app: Vec<String>,
    /// Only these GPU names (exact, e.g. "NVIDIA H100"; repeatable).
    #[arg(long, action = ArgAction::Append)]
    pub gpu: Vec<String>,
    /// Print JSON: `[{orchestrator, runner}]`.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: RunnersArgs) -> anyhow::Result<()> {
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let filter = RunnerFilter { apps: args.app.clone(), gpus: args.gpu.clone() };
    let result = crate::cli::interruptible(net.gateway.discover_runners(&filter)).await;
    net.shutdown().await;
    let found = result?;
    for failure in &found.failures {
        eprintln!("{failure}");
    }
    if args.json {
        let list: Vec<serde_json::Value> = found
            .runners
            .iter()
            .map(|c| serde_json::json!({ "orchestrator": c.orchestrator, "runner": c.runner }))
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else if found.runners.is_empty() {
        eprintln!("no runner matches");
    } else {
        for c in &found.runners {
            let r = &c.runner;
            let gpu = r.gpu.as_ref().map(|g| g.name.as_str()).filter(|n| !n.is_empty()).unwrap_or("-");
            let price = r
                .price_info
                .as_ref()
                .map(|p| format!("{} {} per {}", p.price_text(), p.currency, p.unit))
                .unwrap_or_else(|| "free".into());
            println!(
                "{}  {}  gpu {gpu}  {}/{} free  {price}  {}",
                r.app, r.mode, r.capacity_available, r.capacity, r.url
            );
        }
    }
    if found.all_failed() {
        anyhow::bail!("no orchestrator answered discovery");
    }
    Ok(())
}
