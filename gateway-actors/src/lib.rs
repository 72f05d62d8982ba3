//! gateway-actors: what the gateway *does*.
//!
//! Orchestrator selection, signer calls, recurring payments, trickle publishing and
//! subscribing, frame encoding and stream supervision, each as its own actor or engine, behind
//! the user-facing job APIs. It is not a protocol definition (that is `gateway-core`) and does
//! no pixel work itself (that is `gateway-media`).
#![warn(missing_docs)]

pub mod discovery;
pub mod grpc;
pub mod http;
pub mod selector;
pub mod tls;
pub mod trickle;
