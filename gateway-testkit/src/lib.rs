//! gateway-testkit: a local Livepeer network on real sockets, for tests, benchmarks and the demo.
//!
//! Published on crates.io as `livepeer-gateway-testkit` (`cargo add --dev
//! livepeer-gateway-testkit`, then `use livepeer_gateway_testkit::…`); inside the
//! livepeer-gateway-rs workspace it is imported as `gateway_testkit`.
//!
//! The shortest use: the whole network in one call, on ports of its own, in a test.
//!
//! ```
//! use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = LocalNetwork::start(NetworkConfig::default()).await?;
//! // Point the gateway under test at these (a `Gateway`'s `NetworkSettings::signer`).
//! println!("orchestrator {}, signer {}", net.orchestrator_urls()[0], net.signer_url());
//! net.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! It is built from the *server* side of the protocol (go-livepeer's orchestrator, trickle server
//! and remote signer) using `gateway-core`'s constants and types, and never `gateway-actors`: a
//! double that shared the client's code would share its bugs. It is not a production server.
//!
//! Its answers are go-livepeer's, quirks included; `CONFORMANCE.md` names go's function for each
//! and the test that holds the double to it. [`GoVersion`] picks the BYOC branch (#3869) or
//! master where they differ.
//!
//! Layout:
//! - [`network`]: starts orchestrators, signer and admin API together ([`network::LocalNetwork`]).
//! - [`orchestrator`]: gRPC `GetOrchestrator`, LV2V and BYOC routes, the recipient side of
//!   payments, and go's `encoding/json` texts for the BYOC routes.
//! - [`workers`]: the in-process runner and BYOC worker behind the orchestrator.
//! - [`runner_app`]: a sample live-runner app on its own port, behind the orchestrator's proxy.
//! - [`keys`]: secp256k1 keys, go-livepeer-style signatures, address recovery.
//! - [`trickle_server`]: the trickle pub/sub server (`/ai/trickle/`), with fault injection.
//! - [`signer`]: the remote signer (`/sign-orchestrator-info`, `/generate-live-payment`, ...).
//! - [`tickets`]: go-livepeer's pm ticket rules (hash, signature, recipientRand, EV) and the
//!   simulated block clock that signer and orchestrator share.
#![warn(missing_docs)]

pub mod faults;
pub mod keys;
pub mod network;
pub mod orchestrator;
pub mod python;
pub mod runner_app;
pub mod serve;
pub mod signer;
pub mod tickets;
pub mod tls;
pub mod trickle_server;
pub mod workers;

/// The go-livepeer version whose BYOC behaviour the doubles copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GoVersion {
    /// The BYOC remote-signer branch (go-livepeer PR #3869): jobs signed over the V1 encoding,
    /// a bad `Livepeer-Payment` answered 400 "Could not parse payment".
    #[default]
    Pr3869,
    /// go-livepeer master (v0.9.1): jobs signed over `request + parameters`, and a bad
    /// `Livepeer-Payment` on a priced route panics the handler (the connection drops).
    Master,
}
