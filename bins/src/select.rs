//! `livepeer-gateway select-orchestrator`: runs the gateway's orchestrator selection and prints
//! the ranked candidates (fastest first) and every rejection with its reason; exit code 1 when
//! no orchestrator can take the job.

use clap::{ArgAction, Args};
use gateway_actors::GatewayError;
use gateway_core::capabilities::CapabilityQuery;
use gateway_core::error::redact_url;
use gateway_core::rejection::{JobError, OrchestratorRejection};

use crate::cli::{self, parse_capability};
use crate::network::{EmbeddedTweaks, Network, NetworkArgs};

/// Options of `select-orchestrator`.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// What the job needs, as PIPELINE/MODEL (e.g. live-video-to-video/noop); comma-delimited
    /// and/or repeated. Without any, every orchestrator that answers qualifies.
    #[arg(long, value_name = "PIPELINE/MODEL", action = ArgAction::Append, num_args = 1, value_delimiter = ',', value_parser = parse_capability)]
    pub caps: Vec<CapabilityQuery>,
    /// Highest acceptable price, in wei per unit (pricePerUnit / pixelsPerUnit).
    #[arg(long, value_name = "WEI")]
    pub max_price: Option<f64>,
    #[command(flatten)]
    pub network: NetworkArgs,
}

/// Runs the command.
pub async fn run(args: SelectArgs) -> anyhow::Result<()> {
    if args.max_price.is_some_and(|p| !p.is_finite() || p < 0.0) {
        return Err(cli::UsageError("--max-price must be a non-negative number".into()).into());
    }
    let net = Network::connect(&args.network, EmbeddedTweaks::default()).await?;
    let result = cli::interruptible(net.gateway.select(&args.caps, args.max_price)).await;
    net.shutdown().await;
    match result {
        Ok(selection) => {
            println!("{} candidate(s), fastest first:", selection.candidates.len());
            for (i, c) in selection.candidates.iter().enumerate() {
                let price = c
                    .info
                    .price_info
                    .as_ref()
                    .map(|p| format!("{} wei per {} units", p.price_per_unit, p.pixels_per_unit))
                    .unwrap_or_else(|| "no price".into());
                println!(
                    "  {}. {} -> {} ({} ms, {price})",
                    i + 1,
                    redact_url(&c.address),
                    redact_url(&c.info.transcoder),
                    c.latency.as_millis()
                );
            }
            print_rejections(&selection.rejections);
            Ok(())
        }
        Err(e) => match e.downcast::<GatewayError>() {
            Ok(GatewayError::Job(JobError::NoOrchestratorAvailable { rejections })) => {
                println!("no orchestrator can take the job");
                if rejections.is_empty() {
                    println!("  discovery returned no orchestrator for these capabilities");
                }
                print_rejections(&rejections);
                anyhow::bail!("no orchestrator available ({} rejected)", rejections.len())
            }
            Ok(other) => Err(other.into()),
            Err(other) => Err(other),
        },
    }
}

fn print_rejections(rejections: &[OrchestratorRejection]) {
    if rejections.is_empty() {
        return;
    }
    println!("{} rejected:", rejections.len());
    for r in rejections {
        println!("  {}: {}", redact_url(&r.orchestrator), r.reason);
    }
}
