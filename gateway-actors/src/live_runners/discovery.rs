//! Finding live runners: `GET {orchestrator}/discovery` on every orchestrator the gateway
//! knows (configured, or listed by its discovery endpoint or signer) at once, filtered by app and GPU as the Python SDK filters (exact matches, any of each list).
//! Unlike the SDK, which keeps the first orchestrator that lists a match, every orchestrator's
//! runners are kept, those with free capacity first, and each orchestrator that could not be
//! asked is reported with why.

use std::time::Duration;

use futures_util::StreamExt;
use gateway_core::rejection::{OrchestratorRejection, RejectionReason};
use gateway_core::runners::{DiscoveredRunner, DiscoveryEntry, RunnerFilter, DISCOVERY_PATH};

use gateway_core::rejection::JobError;

use crate::discovery::{discover, DiscoveryError};
use crate::gateway::{Gateway, GatewayError};
use crate::grpc::OrchestratorTarget;
use crate::http::{describe, read_body_capped};

/// Time allowed for one orchestrator's discovery answer (the Python SDK's).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery answer read, bytes.
const MAX_DISCOVERY_BYTES: usize = 4 * 1024 * 1024;
/// Orchestrators asked at once.
const CONCURRENT_QUERIES: usize = 8;

/// A runner and the orchestrator that serves it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerCandidate {
    /// The orchestrator asked (its origin).
    pub orchestrator: String,
    /// The runner as listed; `runner.url` is the orchestrator's URL for it.
    pub runner: DiscoveredRunner,
}

/// What discovery found.
#[derive(Debug, Clone, Default)]
pub struct RunnerDiscovery {
    /// Matching runners, those with free capacity first, then in the order of the configured
    /// orchestrators.
    pub runners: Vec<RunnerCandidate>,
    /// Orchestrators asked.
    pub asked: usize,
    /// Orchestrators that could not be asked (or the discovery that would have named them),
    /// and why.
    pub failures: Vec<OrchestratorRejection>,
}

impl RunnerDiscovery {
    /// Whether nothing could be asked at all: every orchestrator failed, or finding them did.
    pub fn all_failed(&self) -> bool {
        !self.failures.is_empty() && self.failures.len() >= self.asked
    }
}

impl Gateway {
    /// Lists the live runners that pass `filter`, asking the configured orchestrators, or those
    /// the discovery endpoint or the signer lists (without a capability filter).
    pub async fn discover_runners(&self, filter: &RunnerFilter) -> Result<RunnerDiscovery, GatewayError> {
        let mut found = RunnerDiscovery::default();
        let orchestrators = match discover(self.http(), &self.config().network, &[]).await {
            Ok(list) => list,
            Err(DiscoveryError::NotConfigured) => {
                return Err(JobError::InvalidRequest(
                    "no orchestrators, discovery endpoint or signer to find runners through".into(),
                )
                .into())
            }
            Err(e) => {
                let reason = RejectionReason::Transport {
                    endpoint: "orchestrator discovery".into(),
                    message: e.to_string(),
                };
                found.failures.push(OrchestratorRejection::new("discovery", reason));
                return Ok(found);
            }
        };
        found.asked = orchestrators.len();
        let asked = futures_util::stream::iter(orchestrators.into_iter().enumerate())
            .map(|(i, address)| async move { (i, address.clone(), self.ask_for_runners(&address).await) })
            .buffer_unordered(CONCURRENT_QUERIES)
            .collect::<Vec<_>>();
        let mut answers = self.until_shutdown(async { Ok(asked.await) }).await?;
        answers.sort_by_key(|(i, ..)| *i);
        for (_, address, answer) in answers {
            match answer {
                Ok((origin, entries)) => found.runners.extend(
                    entries
                        .into_iter()
                        .flat_map(|e| e.runners)
                        .filter(|r| filter.matches(r))
                        .map(|runner| RunnerCandidate { orchestrator: origin.clone(), runner }),
                ),
                Err(reason) => found.failures.push(OrchestratorRejection::new(address, reason)),
            }
        }
        // Stable: free capacity first, the orchestrators' order kept within each group.
        found.runners.sort_by_key(|c| c.runner.capacity_available <= 0);
        Ok(found)
    }

    async fn ask_for_runners(&self, address: &str) -> Result<(String, Vec<DiscoveryEntry>), RejectionReason> {
        let origin = OrchestratorTarget::parse(address).map_err(RejectionReason::ClientBuild)?.origin();
        let (http, _) =
            self.orchestrator_clients(&origin).map_err(|e| RejectionReason::ClientBuild(e.to_string()))?;
        let endpoint = DISCOVERY_PATH.to_owned();
        let resp = http
            .get(format!("{origin}{DISCOVERY_PATH}"))
            .header("accept", "application/json")
            .timeout(DISCOVERY_TIMEOUT)
            .send()
            .await
            .map_err(|e| RejectionReason::Transport { endpoint: endpoint.clone(), message: describe(&e) })?;
        let status = resp.status().as_u16();
        let body = read_body_capped(resp, MAX_DISCOVERY_BYTES)
            .await
            .map_err(|e| RejectionReason::Transport { endpoint: endpoint.clone(), message: e.to_string() })?;
        if status != 200 {
            return Err(RejectionReason::Http {
                status,
                endpoint,
                excerpt: gateway_core::error::body_excerpt(&body, 200),
                hint: None,
            });
        }
        let entries = serde_json::from_slice(&body).map_err(|e| RejectionReason::InvalidAnswer {
            endpoint,
            reason: format!("not a runner list: {e}"),
        })?;
        Ok((origin, entries))
    }
}
