//! `livepeer-gateway`: the command line of livepeer-gateway-rs.
//!
//! Argument parsing, output formatting and progress only; the protocol lives in the library
//! crates. Exit codes: 0 success, 1 the job failed, 2 bad arguments (clap's own).

mod demo;
mod local_network;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "livepeer-gateway", version, about = "Send live video and AI jobs to the Livepeer network")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a BYOC text-reversal job and a live video job against the embedded local network.
    Demo(demo::DemoArgs),
    /// Run the local Livepeer network (orchestrators, signer, trickle) until Ctrl-C.
    LocalNetwork(local_network::LocalNetworkArgs),
    /// Parse pipeline/model capability queries and print what GetOrchestrator would ask for.
    Capabilities {
        /// Queries like byoc/text-reversal; comma-delimited and/or repeated.
        #[arg(required = true)]
        queries: Vec<String>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::LocalNetwork(args) => local_network::run(args).await,
        Command::Capabilities { queries } => print_capabilities(&queries),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn print_capabilities(queries: &[String]) -> anyhow::Result<()> {
    let parsed = gateway_core::capabilities::parse_capability_queries(queries)?;
    let caps = gateway_core::capabilities::build_capabilities(&parsed);
    for q in &parsed {
        println!("{q}\t{} \tmodel {}", q.capability, q.model);
    }
    println!("capacities: {:?}", caps.capacities);
    Ok(())
}
