//! Embedding the gateway in a multi-threaded tokio service.
//!
//! The `Gateway` is `Send + Sync + Clone`: hand a clone to every task. It runs its actors on a
//! System of its own, so the service needs no actix setup. This example starts the local
//! network so it runs anywhere: `cargo run -p livepeer-gateway-actors --example tokio_service`.

// In this workspace the sibling crates keep their short names; in your crate these are simply
// the dependencies `livepeer-gateway-core` and `livepeer-gateway-testkit`.
extern crate gateway_core as livepeer_gateway_core;
extern crate gateway_testkit as livepeer_gateway_testkit;

use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig};
use livepeer_gateway_core::token::NetworkSettings;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let net = LocalNetwork::start(NetworkConfig::default()).await?;
    // On the real network: a signer URL and headers, or `GatewayConfig::default().with_token(..)`.
    let network = NetworkSettings { signer: Some(net.signer_url()), ..Default::default() };
    let gateway = Gateway::start(GatewayConfig { network, ..Default::default() })?;

    let mut tasks = Vec::new();
    for text in ["one", "two", "three"] {
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            let mut request = ByocJobRequest::new("text-reversal");
            request.enable_data_output = true;
            let job = gateway.start_byoc_job(request).await?;
            let control = job.control().await?;
            control.send(&serde_json::json!({ "text": text })).await?;
            let reply = job.data()?.next().await?;
            control.close().await;
            job.stop().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(reply)
        }));
    }
    for task in tasks {
        println!("{:?}", task.await?.map_err(|e| e.to_string())?);
    }
    gateway.shutdown();
    net.shutdown().await;
    Ok(())
}
