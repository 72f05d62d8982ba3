//! gateway-actors: what the gateway *does*.
//!
//! Published on crates.io as `livepeer-gateway-actors` (`cargo add livepeer-gateway-actors
//! livepeer-gateway-core`, then `use livepeer_gateway_actors::…`); inside the
//! livepeer-gateway-rs workspace it is imported as `gateway_actors`, and its dependencies as
//! `gateway_core` and `gateway_media`.
//!
//! Orchestrator selection, signer calls, recurring payments, trickle publishing and
//! subscribing, frame encoding and stream supervision, each as its own actor or engine, behind
//! the user-facing job APIs. It is not a protocol definition (that is `gateway-core`) and does
//! no pixel work itself (that is `gateway-media`).
//!
//! The shortest use: a BYOC text job through a remote signer. The crate's examples run the
//! same against the local network of `livepeer-gateway-testkit`
//! (`cargo run -p livepeer-gateway-actors --example byoc_text`).
//!
//! ```no_run
//! # extern crate gateway_core as livepeer_gateway_core;
//! use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig};
//! use livepeer_gateway_core::token::NetworkSettings;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let network = NetworkSettings { signer: Some("https://signer.example".into()), ..Default::default() };
//! // Send + Sync + Clone: share it across tasks of any tokio runtime.
//! let gateway = Gateway::start(GatewayConfig { network, ..Default::default() })?;
//! let mut request = ByocJobRequest::new("text-reversal");
//! request.enable_data_output = true;
//! let job = gateway.start_byoc_job(request).await?;
//! job.control().await?.send(&serde_json::json!({"text": "hello"})).await?;
//! println!("{:?}", job.data()?.next().await?);
//! job.stop().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub use gateway::{Gateway, GatewayConfig, GatewayError};
pub use jobs::byoc::{ByocJob, ByocJobRequest, StreamUpdated};
pub use jobs::byoc_request::{ByocRequest, ByocResponse};
pub use jobs::lv2v::{Lv2vJob, Lv2vRequest};
pub use jobs::training::{TrainingJob, TrainingRequest, WaitOptions};

pub mod channels;
pub mod discovery;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod job_tokens;
pub mod jobs;
pub mod live;
pub mod live_runners;
pub mod media;
pub mod output_video;
pub mod payments;
pub mod reader;
pub mod selector;
pub(crate) mod signer_client;
pub(crate) mod stream;
pub mod tls;
pub mod trickle;
pub(crate) mod writer;
