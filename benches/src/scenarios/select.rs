//! Scenario 4: orchestrator selection over 100 orchestrators of which 20 are bad: 10 answer
//! `GetOrchestrator` only after 3 s (beyond the 1 s per-call timeout) and 10 are closed ports.
//! The 90 live ones are the testkit's `LocalNetwork` (plaintext) in this process. Reported:
//! time until `select_orchestrators` returns its ranked choice, cold (new RPC client, so every
//! channel is connected afresh) and warm (channels cached), for 10 and 100 calls in flight.

use std::time::{Duration, Instant};

use gateway_actors::grpc::OrchestratorRpc;
use gateway_actors::http::HttpClients;
use gateway_actors::selector::{select_orchestrators, Select, SelectorConfig};
use gateway_actors::tls::OrchestratorTrust;
use gateway_core::token::NetworkSettings;
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use serde::{Deserialize, Serialize};

/// Per-call timeout of the runs (the slow orchestrators answer after 3x this).
pub const PER_CALL: Duration = Duration::from_secs(1);

/// One selection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SelectResult {
    /// Orchestrators asked.
    pub orchestrators: usize,
    /// Of which slow.
    pub slow: usize,
    /// Of which dead.
    pub dead: usize,
    /// Calls in flight.
    pub batch_size: usize,
    /// `cold` or `warm`.
    pub pass: String,
    /// Milliseconds until the choice.
    pub ms: f64,
    /// `GetOrchestrator` round trip of the chosen (fastest) candidate, ms.
    pub chosen_rpc_ms: Option<f64>,
    /// Usable candidates returned.
    pub candidates: usize,
    /// Rejections returned.
    pub rejections: usize,
}

/// Runs the selections; `total` orchestrators of which a tenth are slow and a tenth dead.
pub async fn run_selection(total: usize) -> anyhow::Result<Vec<SelectResult>> {
    let bad = (total / 10).max(1);
    let live = total - bad;
    let net =
        LocalNetwork::start(NetworkConfig { orchestrators: live, tls: false, ..Default::default() }).await?;
    let mut addresses = net.orchestrator_urls();
    for node in net.orchestrators.iter().take(bad) {
        node.orchestrator.set_fault(OrchestratorFault::Delay {
            path: "/net.Orchestrator/".into(),
            delay_ms: 3 * PER_CALL.as_millis() as u64,
            count: 1_000,
        });
    }
    for _ in 0..bad {
        // Bound then released: nothing listens there, so connecting is refused at once.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        addresses.push(format!("http://{}", l.local_addr()?));
    }
    let settings = NetworkSettings { orchestrators: addresses.clone(), ..Default::default() };
    let http = HttpClients::new(OrchestratorTrust::Insecure)?;
    let mut results = Vec::new();
    for batch_size in [10, 100] {
        let config =
            SelectorConfig { batch_size, per_call_timeout: PER_CALL, deadline: Duration::from_secs(20) };
        let rpc = OrchestratorRpc::new(OrchestratorTrust::Insecure);
        for pass in ["cold", "warm"] {
            let started = Instant::now();
            let outcome = select_orchestrators(&rpc, &http, &settings, &config, &Select::default()).await;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            let (candidates, rejections) = match &outcome {
                Ok(s) => (s.candidates.len(), s.rejections.len()),
                Err(_) => (0, addresses.len()),
            };
            let chosen_rpc_ms =
                outcome.as_ref().ok().and_then(|s| s.chosen()).map(|c| c.latency.as_secs_f64() * 1e3);
            results.push(SelectResult {
                orchestrators: addresses.len(),
                slow: bad,
                dead: bad,
                batch_size,
                pass: pass.into(),
                ms,
                chosen_rpc_ms,
                candidates,
                rejections,
            });
        }
    }
    net.shutdown().await;
    Ok(results)
}
