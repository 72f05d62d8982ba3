//! A gateway token read and checked without a network: what it points at, merged with
//! settings given explicitly, and the capabilities a job would ask orchestrators for.
//!
//! `cargo run -p livepeer-gateway-core --example gateway_token -- [TOKEN]`: without a token it
//! makes one. `Debug` never prints header values or URL credentials, so the output is safe
//! to log.

use std::collections::BTreeMap;

use livepeer_gateway_core::capabilities::{build_capabilities, parse_capability_queries};
use livepeer_gateway_core::token::{GatewayToken, NetworkSettings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let token = match std::env::args().nth(1) {
        Some(token) => token,
        None => GatewayToken {
            signer: Some("https://signer.example".into()),
            signer_headers: Some(BTreeMap::from([("Authorization".into(), "Bearer secret".into())])),
            ..Default::default()
        }
        .encode(),
    };
    let parsed = GatewayToken::parse(&token)?;
    println!("token: {parsed:?}");

    // Token fields win; explicit settings fill what the token leaves out.
    let explicit =
        NetworkSettings { discovery: Some("https://discovery.example".into()), ..Default::default() };
    let network = GatewayToken::resolve(Some(&parsed), &explicit);
    println!("network: {network:?}");
    println!("orchestrators from: {:?}", network.orchestrator_source());

    let queries = parse_capability_queries(["byoc/text-reversal,live-video-to-video/noop"])?;
    let capabilities = build_capabilities(&queries);
    println!("asking for capabilities {:?}", capabilities.capacities.keys().collect::<Vec<_>>());
    Ok(())
}
