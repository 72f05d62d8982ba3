//! gateway-core: what the Livepeer gateway protocol *is*.
//!
//! Published on crates.io as `livepeer-gateway-core` (`cargo add livepeer-gateway-core`, then
//! `use livepeer_gateway_core::…`); inside the livepeer-gateway-rs workspace it is imported as
//! `gateway_core`.
//!
//! Wire types, protocol constants, parsers and builders for talking to orchestrators, remote
//! signers and trickle servers. It has no sockets, no timers and no runtime: everything here can
//! be checked by a unit test without a network. The actors that use it live in `gateway-actors`;
//! the local network double that serves it lives in `gateway-testkit`.
//!
//! Modules:
//! - [`capabilities`]: capability ids, `pipeline/model` queries, the protobuf `Capabilities`.
//! - [`token`]: the base64 gateway token and how it merges with explicit settings.
//! - [`lp_rpc`]: go-livepeer's protobuf messages and the `Orchestrator` gRPC service.
//! - [`signer`]: the remote signer's HTTP API.
//! - [`trickle`]: the trickle pub/sub protocol.
//! - [`jobs`]: LV2V and BYOC job endpoints and headers.
//! - [`gateway_api`]: a gateway node's own HTTP API, as go's BYOC gateway serves it.
//! - [`training`]: BYOC training jobs: submit, status, cancel, payment refresh.
//! - [`runners`]: live runners: heartbeat registration and discovery.
//! - [`sse`]: server-sent events, as live-runner apps stream their answers.
//! - [`vetting`]: whether an orchestrator's `OrchestratorInfo` can take a job, and why not.
//! - [`go_json`]: decoding go-shaped JSON with go's tolerance (missing and null are zero).
//! - [`eth`]: keccak-256, checksummed addresses, the signature digest.
//! - [`error`]: one error type per concern; none prints a secret.
//! - [`rejection`]: why an orchestrator was not used for a job, typed.
//! - [`swap`]: when a live stream moves to another orchestrator, and when it gives up.
//!
//! The shortest use: which capabilities a job needs, as the protobuf an orchestrator reads.
//!
//! ```
//! use livepeer_gateway_core::capabilities::{build_capabilities, parse_capability_queries, Capability};
//!
//! let queries = parse_capability_queries(["byoc/text-reversal,live-video-to-video/noop"]).unwrap();
//! let caps = build_capabilities(&queries);
//! assert_eq!(caps.capacities[&Capability::Byoc.id()], 1);
//! ```
#![warn(missing_docs)]

pub mod capabilities;
pub mod error;
pub mod eth;
pub mod gateway_api;
pub mod go_json;
pub mod jobs;
pub mod lp_rpc;
pub mod rejection;
pub mod runners;
pub mod signer;
pub mod sse;
pub mod swap;
pub mod token;
pub mod training;
pub mod trickle;
pub mod vetting;
