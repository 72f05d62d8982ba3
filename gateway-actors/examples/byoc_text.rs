//! A BYOC text job: a stream of JSON messages to a worker's capability, its replies read back.
//!
//! The job opens a control channel (gateway → worker) and a data channel (worker → gateway);
//! the `text-reversal` worker answers each `{"text": …}` with the text reversed. The gateway
//! pays for the job every few seconds while it runs and stops paying when it is stopped.
//!
//! With `LIVEPEER_TOKEN` set to a gateway token it runs on that network; without, it starts
//! the local network of `livepeer-gateway-testkit`, so it runs anywhere:
//! `cargo run -p livepeer-gateway-actors --example byoc_text`.

// In this workspace the sibling crates keep their short names; in your crate these are simply
// the dependencies `livepeer-gateway-core` and `livepeer-gateway-testkit`.
extern crate gateway_core as livepeer_gateway_core;
extern crate gateway_testkit as livepeer_gateway_testkit;

use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig};
use livepeer_gateway_core::token::NetworkSettings;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (config, local) = match std::env::var("LIVEPEER_TOKEN") {
        Ok(token) => (GatewayConfig::default().with_token(&token)?, None),
        Err(_) => {
            let net = LocalNetwork::start(NetworkConfig::default()).await?;
            let network = NetworkSettings { signer: Some(net.signer_url()), ..Default::default() };
            (GatewayConfig { network, ..Default::default() }, Some(net))
        }
    };
    let gateway = Gateway::start(config)?;

    let mut request = ByocJobRequest::new("text-reversal");
    request.enable_data_output = true;
    let job = gateway.start_byoc_job(request).await?;
    println!("BYOC job on {}", job.orchestrator);
    let control = job.control().await?;
    let mut data = job.data()?;
    for text in ["hello", "livepeer"] {
        control.send(&serde_json::json!({ "text": text })).await?;
        // One reply per message; `None` would mean the worker closed the channel.
        let reply = data.next().await?.ok_or("the data channel ended")?;
        println!("{text} -> {reply}");
    }
    control.close().await;
    // A reader left open would hold its request to the orchestrator until the network ends.
    data.close();
    job.stop().await?;

    gateway.shutdown();
    if let Some(net) = local {
        net.shutdown().await;
    }
    Ok(())
}
