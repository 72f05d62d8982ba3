//! Reliability and security over real sockets (issue 8): the gateway keeps going under network
//! faults and hostile answers, loses no accepted data, never hangs on shutdown, and keeps its
//! secrets out of logs and errors.
//!
//! - A connection dropped mid-segment fails that segment only; the next goes through on the
//!   next sequence number, readers of the broken segment are released, and every byte written
//!   is counted as sent or failed.
//! - An orchestrator dying mid-job turns into publisher errors (not a hang), a new job fails
//!   over to the survivor, and no connection is left open once the jobs and gateway are gone.
//! - Signer faults: down at start is a typed error before any orchestrator is touched; 5xx is
//!   retried with backoff; 482 skips a payment cycle and payments go on; 481 stops payments
//!   with the reason.
//! - A BYOC stream whose payments stop is stopped by the orchestrator, and the client's
//!   channels end instead of hanging.
//! - Shutdown during a selection, during a running video job and while the server stalls
//!   finishes within a bound, and leaves no connection open.
//! - Huge bodies, wrong JSON types, invalid UTF-8 and non-HTTP/2 answers give typed errors.
//! - Signer credentials (an `Authorization` header, a `?key=` query) appear in no log line at
//!   TRACE level and in no error's `Display` or `Debug`.
//!
//! Every wait for something to happen is a poll with a generous deadline. The only fixed sleep
//! checks that something does *not* happen (no payment after a 481), which cannot flake.

#[path = "../common/mod.rs"]
mod common;
mod hostile;
mod secrets;
mod shutdown;
mod signer;
mod transport;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::error::{SignerError, TrickleError};
use gateway_core::rejection::JobError;
use gateway_core::token::NetworkSettings;
use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_media::{Rational, TestPattern};
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::OrchestratorConfig;
use gateway_testkit::signer::{SignerConfig, SignerFault};
use gateway_testkit::trickle_server::TrickleFault;
use livepeer_gateway_actors::http::{read_body_capped, HttpClients, MAX_RESPONSE_BYTES};
use livepeer_gateway_actors::media::{VideoPublisher, VideoPublisherConfig};
use livepeer_gateway_actors::payments::{PaymentStop, MAX_FAILED_CYCLES};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{
    PublisherConfig, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};
use livepeer_gateway_actors::{ByocJobRequest, Gateway, GatewayConfig, GatewayError, Lv2vJob, Lv2vRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::read_head;

const STALL: Duration = Duration::from_millis(800);
const GENEROUS: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Polls `done` until it holds; panics with `what` after `within`.
async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Awaits `fut`, panicking if it takes longer than `within` (a hang is the failure).
async fn bounded<T>(what: &str, within: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(within, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {within:?}"),
    }
}

/// A URL on which nothing listens (the port was just free).
fn closed_port_url(scheme: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("{scheme}://{}", l.local_addr().unwrap())
}

fn settings_for(net: &LocalNetwork) -> NetworkSettings {
    NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    }
}

fn gateway_with(network: NetworkSettings) -> Gateway {
    Gateway::start(GatewayConfig {
        network,
        lv2v_payment_interval: Duration::from_millis(200),
        byoc_payment_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .unwrap()
}

/// A plaintext network with one trickle channel and a client for it.
async fn plaintext_channel(channel: &str) -> (LocalNetwork, reqwest::Client, String) {
    let net = LocalNetwork::start(NetworkConfig { tls: false, ..Default::default() }).await.unwrap();
    assert!(net.orchestrator().trickle().create_channel(channel, MIME_MPEGTS));
    let url = channel_url(&net.orchestrator_urls()[0], channel);
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    (net, http, url)
}

fn small_video() -> VideoPublisherConfig {
    let mut cfg = VideoPublisherConfig::h264(320, 180);
    cfg.queue_frames = 1000;
    cfg.debt_skipping = false;
    cfg
}
