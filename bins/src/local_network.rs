//! `livepeer-gateway local-network`: runs the local Livepeer network until Ctrl-C (exit code 130).

use std::net::SocketAddr;

use clap::Args;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

/// Options of `local-network`.
#[derive(Debug, Args)]
pub struct LocalNetworkArgs {
    /// Address of the first orchestrator (HTTP, gRPC and trickle on one port).
    #[arg(long, default_value = "127.0.0.1:8935")]
    pub listen: SocketAddr,
    /// Address of the remote signer (also serves discovery and the admin API).
    #[arg(long, default_value = "127.0.0.1:8936")]
    pub signer_listen: SocketAddr,
    /// Number of orchestrators (the others take free ports).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub orchestrators: usize,
    /// Serve plain HTTP instead of TLS with a self-signed certificate.
    #[arg(long)]
    pub plaintext: bool,
    /// Let a POST to a missing trickle channel create it.
    #[arg(long)]
    pub trickle_autocreate: bool,
    /// Print one JSON line with the base URLs once ready (machine-readable).
    #[arg(long)]
    pub json: bool,
    /// Run the orchestrators offchain, as go-livepeer's `-network offchain`: no prices, no ticket
    /// parameters, no payment required, job signatures not checked. Clients without a signer
    /// (the official Python SDK offchain, curl) can then run jobs.
    #[arg(long)]
    pub offchain: bool,
}

/// Starts the network and serves until Ctrl-C.
pub async fn run(args: LocalNetworkArgs) -> anyhow::Result<()> {
    let mut config = NetworkConfig {
        orchestrators: args.orchestrators,
        tls: !args.plaintext,
        listen: args.listen,
        signer_listen: args.signer_listen,
        ..Default::default()
    };
    config.trickle.autocreate = args.trickle_autocreate;
    config.orchestrator.offchain = args.offchain;
    let net = LocalNetwork::start(config).await?;
    let urls = net.orchestrator_urls();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "orchestrator": urls[0],
                "orchestrators": urls,
                "signer": net.signer_url(),
                "discovery": net.discovery_url(),
                "trickle": net.trickle_url(),
                "admin": net.admin_url(),
            })
        );
    } else {
        println!("local Livepeer network is up (Ctrl-C to stop)");
        for u in &urls {
            println!("  orchestrator  {u}");
        }
        println!("  signer        {}", net.signer_url());
        println!("  discovery     {}", net.discovery_url());
        println!("  trickle       {}", net.trickle_url());
        println!("  admin         {}", net.admin_url());
    }
    // Serving until Ctrl-C is the normal life of this command; it still exits with 130 like
    // every interrupted command.
    crate::cli::interrupted().await;
    net.shutdown().await;
    Err(crate::cli::Interrupted.into())
}
