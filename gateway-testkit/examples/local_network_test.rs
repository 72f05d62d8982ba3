//! The local network in your own test: what a service built on `livepeer-gateway-actors`
//! writes to check its Livepeer side with no real network, here failover to a second
//! orchestrator when the first one dies.
//!
//! In your crate this is a `#[tokio::test]` in `tests/`, with `livepeer-gateway-testkit` as a
//! dev-dependency; as an example it is a `main` so that it runs on its own:
//! `cargo run -p livepeer-gateway-testkit --example local_network_test`. Every part of the
//! network listens on a free port of 127.0.0.1, so tests can run in parallel.

// In this workspace the sibling crates keep their short names; in your crate these are simply
// the dependencies `livepeer-gateway-actors` and `livepeer-gateway-core`.
extern crate gateway_actors as livepeer_gateway_actors;
extern crate gateway_core as livepeer_gateway_core;

use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig};
use livepeer_gateway_core::token::NetworkSettings;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};

/// Runs one BYOC text-reversal exchange and answers the orchestrator that ran it.
async fn reverse(
    gateway: &Gateway,
    text: &str,
) -> Result<(String, serde_json::Value), Box<dyn std::error::Error>> {
    let mut request = ByocJobRequest::new("text-reversal");
    request.enable_data_output = true;
    let job = gateway.start_byoc_job(request).await?;
    let control = job.control().await?;
    control.send(&serde_json::json!({ "text": text })).await?;
    let reply = job.data()?.next().await?.ok_or("no reply")?;
    control.close().await;
    let orchestrator = job.orchestrator.clone();
    job.stop().await?;
    Ok((orchestrator, reply))
}

// #[tokio::test(flavor = "multi_thread")]
// async fn a_job_moves_on_when_its_orchestrator_dies() {
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut net = LocalNetwork::start(NetworkConfig { orchestrators: 2, ..NetworkConfig::default() }).await?;
    // The signer also serves discovery: the gateway finds both orchestrators through it.
    let network = NetworkSettings { signer: Some(net.signer_url()), ..Default::default() };
    let gateway = Gateway::start(GatewayConfig { network, ..Default::default() })?;

    let (first, reply) = reverse(&gateway, "abc").await?;
    println!("{first} answered {reply}");
    assert_eq!(reply["reversed"], "cba", "{reply}");

    // Kill the orchestrator that answered, as a process dies: its port closes.
    let urls = net.orchestrator_urls();
    let dead = urls.iter().position(|u| *u == first).ok_or("an orchestrator of the network")?;
    net.kill(dead).await?;
    let (second, reply) = reverse(&gateway, "xyz").await?;
    println!("after killing {first}: {second} answered {reply}");
    assert_ne!(second, first);
    assert_eq!(reply["reversed"], "zyx", "{reply}");

    gateway.shutdown();
    net.shutdown().await;
    Ok(())
}
