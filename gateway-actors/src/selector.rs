//! Orchestrator selection: discover candidates, ask each for its info (`GetOrchestrator`),
//! keep those that can take the job, rank them by how fast they answered.
//!
//! Read top to bottom as *state* ([`OrchestratorSelector`], [`SelectorConfig`]), *message*
//! ([`Select`] → [`Selection`]) and *handler*. The work itself is the plain async
//! [`select_orchestrators`], so command-line tools can select without an actix system; the
//! actor only owns the clients and settings and runs selections as futures, never blocking.
//!
//! BYOC jobs (`byoc/NAME`) are selected the way go's BYOC gateway does it: BYOC never shows in
//! an orchestrator's capability bit string, so each orchestrator is asked for a job token
//! (`GET /process/token`, see [`crate::job_tokens`]) and kept when it has free capacity.
//!
//! Rules, after go-livepeer's selector (the Python SDK only keeps whoever answers first):
//! an orchestrator is rejected, with the reason recorded, when its RPC fails or times out,
//! its info lacks a `transcoder` URL or an auth token, its capabilities do not satisfy the
//! request, its price is above the caller's maximum, or, when paying (a signer identity is
//! given) an orchestrator that charges, it sent no ticket parameters. Survivors are ranked by `GetOrchestrator` round-trip
//! latency, fastest first; the first is the choice and the rest are failovers.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use futures_util::stream::{self, StreamExt};
use gateway_core::capabilities::{build_capabilities, Capability, CapabilityQuery};
use gateway_core::error::{redact_url, VettingError};
use gateway_core::jobs::JobToken;
use gateway_core::lp_rpc::{Capabilities, OrchestratorInfo, OrchestratorRequest};
use gateway_core::rejection::JobError;
use gateway_core::rejection::{OrchestratorRejection, RejectionReason};
use gateway_core::signer::SignerIdentity;
use gateway_core::token::NetworkSettings;
use gateway_core::vetting::{job_token_info, vet_job_token, vet_orchestrator_info, JobRequirements};

use crate::discovery::{discover_with_timeout, DiscoveryError};
use crate::grpc::{orchestrator_request, OrchestratorRpc, OrchestratorTarget, GRPC_CALL_TIMEOUT};
use crate::http::HttpClients;
use crate::job_tokens::fetch_job_token_confirmed;
use crate::payments::{InfoSource, RefreshOrchestratorInfo};

/// Default number of orchestrators asked at the same time.
pub const DEFAULT_BATCH_SIZE: usize = 10;
/// Default bound on a whole selection (discovery and every `GetOrchestrator`).
pub const DEFAULT_SELECTION_DEADLINE: Duration = Duration::from_secs(20);

/// How a selection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorConfig {
    /// How many orchestrators are asked at the same time. A new call starts as soon as one
    /// finishes, so a slow orchestrator holds up one slot, not a whole batch.
    pub batch_size: usize,
    /// Bound on one discovery call and on one `GetOrchestrator` (connecting included).
    pub per_call_timeout: Duration,
    /// Bound on the whole selection; candidates not answered by then are rejected.
    pub deadline: Duration,
}

impl Default for SelectorConfig {
    fn default() -> Self {
        SelectorConfig {
            batch_size: DEFAULT_BATCH_SIZE,
            per_call_timeout: GRPC_CALL_TIMEOUT,
            deadline: DEFAULT_SELECTION_DEADLINE,
        }
    }
}

/// One orchestrator that can take the job.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The address as discovered (what `GetOrchestrator` was called on).
    pub address: String,
    /// Its answer: transcoder URL, auth token, price, ticket parameters. Forward it to the
    /// signer as is. For BYOC it is made from [`Candidate::token`].
    pub info: OrchestratorInfo,
    /// `GetOrchestrator` (or, for BYOC, `/process/token`) round trip, connecting included when
    /// no connection was open.
    pub latency: Duration,
    /// BYOC: the orchestrator's `/process/token` answer (`info` is made from it).
    pub token: Option<JobToken>,
}

/// The result of a selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Usable orchestrators, fastest first: the first is the choice, the rest are failovers.
    /// Never empty.
    pub candidates: Vec<Candidate>,
    /// Every orchestrator that was not usable, with the reason.
    pub rejections: Vec<OrchestratorRejection>,
}

impl Selection {
    /// The chosen orchestrator (always `Some` for a selection [`select_orchestrators`]
    /// returned).
    pub fn chosen(&self) -> Option<&Candidate> {
        self.candidates.first()
    }

    /// Keeps only the candidates whose transcoder URL contains `wanted` (go's LV2V
    /// `orchestrator` query key: "user requested a specific orchestrator, so ignore all the
    /// others"); the rest become `Excluded` rejections. None left is
    /// [`JobError::NoOrchestratorAvailable`].
    pub fn only_matching(mut self, wanted: &str) -> Result<Selection, JobError> {
        let (kept, skipped): (Vec<Candidate>, Vec<Candidate>) =
            self.candidates.into_iter().partition(|c| c.info.transcoder.contains(wanted));
        for candidate in skipped {
            self.rejections.push(OrchestratorRejection::new(&candidate.address, RejectionReason::Excluded));
        }
        self.candidates = kept;
        if self.candidates.is_empty() {
            return Err(JobError::NoOrchestratorAvailable { rejections: self.rejections });
        }
        Ok(self)
    }
}

/// Select orchestrators for a job.
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// What the job needs (`pipeline/model`); empty asks for nothing in particular.
    pub queries: Vec<CapabilityQuery>,
    /// The gateway's signer identity when paying; `None` offchain (no address or signature is
    /// sent and ticket parameters are not required).
    pub identity: Option<SignerIdentity>,
    /// Highest acceptable price in wei per unit (`pricePerUnit / pixelsPerUnit`).
    pub max_price_wei_per_unit: Option<f64>,
    /// Orchestrators not to use (for example ones that just failed a job), as any address
    /// form naming the same host and port.
    pub exclude: Vec<String>,
}

impl Message for Select {
    type Result = Result<Selection, JobError>;
}

/// The selector actor: owns the RPC and HTTP clients and the network settings. It also answers
/// payment sessions' `RefreshOrchestratorInfo` with the same clients.
#[derive(Debug)]
pub struct OrchestratorSelector {
    rpc: OrchestratorRpc,
    http: HttpClients,
    settings: NetworkSettings,
    config: SelectorConfig,
}

impl OrchestratorSelector {
    /// A selector over `settings` (orchestrator list, discovery URL or signer).
    pub fn new(
        rpc: OrchestratorRpc,
        http: HttpClients,
        settings: NetworkSettings,
        config: SelectorConfig,
    ) -> OrchestratorSelector {
        OrchestratorSelector { rpc, http, settings, config }
    }
}

impl Actor for OrchestratorSelector {
    type Context = Context<Self>;
}

impl Handler<Select> for OrchestratorSelector {
    type Result = ResponseFuture<Result<Selection, JobError>>;

    fn handle(&mut self, msg: Select, _ctx: &mut Self::Context) -> Self::Result {
        // Selections share nothing mutable, so several may run at once.
        let (rpc, http, settings, config) =
            (self.rpc.clone(), self.http.clone(), self.settings.clone(), self.config);
        Box::pin(async move { select_orchestrators(&rpc, &http, &settings, &config, &msg).await })
    }
}

impl Handler<RefreshOrchestratorInfo> for OrchestratorSelector {
    type Result = ResponseFuture<Result<OrchestratorInfo, String>>;

    /// Fresh info for a payment session, from the same clients selection uses.
    fn handle(&mut self, msg: RefreshOrchestratorInfo, _ctx: &mut Self::Context) -> Self::Result {
        let (rpc, http) = (self.rpc.clone(), self.http.clone());
        Box::pin(async move {
            let RefreshOrchestratorInfo { address, identity, source } = msg;
            match source {
                InfoSource::GetOrchestrator(capabilities) => {
                    let req = orchestrator_request(identity.as_ref(), Some(capabilities));
                    rpc.get_orchestrator(&address, req).await.map_err(|e| e.to_string())
                }
                InfoSource::JobToken(capability) => {
                    let token = fetch_job_token_confirmed(
                        &http,
                        &rpc,
                        &address,
                        &capability,
                        identity.as_ref(),
                        crate::http::JSON_CALL_TIMEOUT,
                    )
                    .await?;
                    Ok(job_token_info(&token, unix_now()))
                }
                InfoSource::RunnerSession { refresh_url, manifest_id } => {
                    let client = http.orchestrator(&refresh_url).map_err(|e| e.to_string())?;
                    crate::live_runners::refresh_payment_params(
                        &client,
                        &refresh_url,
                        identity.as_ref(),
                        &manifest_id,
                    )
                    .await
                }
            }
        })
    }
}

/// Runs one selection without an actor (see the module docs for the rules).
///
/// Errors: [`JobError::InvalidRequest`] when no orchestrator source is configured;
/// [`JobError::NoOrchestratorAvailable`] listing every rejection (or the discovery failure)
/// when nothing usable is left.
pub async fn select_orchestrators(
    rpc: &OrchestratorRpc,
    http: &HttpClients,
    settings: &NetworkSettings,
    config: &SelectorConfig,
    request: &Select,
) -> Result<Selection, JobError> {
    let deadline = tokio::time::Instant::now() + config.deadline;
    let discovery_timeout = config.per_call_timeout.min(config.deadline);
    let byoc = byoc_capability(&request.queries)?;
    // go's discovery never lists BYOC capabilities (`byoc/NAME` filters match nothing), so a
    // BYOC selection discovers every orchestrator and asks each for a token.
    let discovery_queries: &[CapabilityQuery] = if byoc.is_some() { &[] } else { &request.queries };
    let addresses = match discover_with_timeout(http, settings, discovery_queries, discovery_timeout).await {
        Ok(a) => a,
        Err(DiscoveryError::NotConfigured) => {
            return Err(JobError::InvalidRequest(DiscoveryError::NotConfigured.to_string()))
        }
        Err(e) => {
            return Err(JobError::NoOrchestratorAvailable {
                rejections: vec![reject("discovery", RejectionReason::DiscoveryFailed(e.to_string()))],
            })
        }
    };
    if addresses.is_empty() {
        let wanted: Vec<String> = request.queries.iter().map(ToString::to_string).collect();
        return Err(JobError::NoOrchestratorAvailable {
            rejections: vec![reject("discovery", RejectionReason::NothingDiscovered { wanted })],
        });
    }

    let mut rejections = Vec::new();
    let excluded: HashSet<String> = request.exclude.iter().map(|a| same_orchestrator_key(a)).collect();
    let mut to_ask = Vec::new();
    for address in addresses {
        if excluded.contains(&same_orchestrator_key(&address)) {
            rejections.push(reject(&address, RejectionReason::Excluded));
        } else {
            to_ask.push(address);
        }
    }

    let requested = (!request.queries.is_empty()).then(|| build_capabilities(&request.queries));
    let rpc_request = orchestrator_request(request.identity.as_ref(), requested.clone());

    let per_call = config.per_call_timeout;
    let mut pending: Vec<String> = to_ask.clone();
    let mut answers = stream::iter(to_ask)
        .map(|address| {
            let (req, byoc) = (rpc_request.clone(), byoc.clone());
            let requested = requested.as_ref();
            async move {
                let started = Instant::now();
                let asked = match &byoc {
                    // BYOC is never in the bit string: go's gateways ask for a job token.
                    Some(capability) => {
                        ask_for_token(rpc, http, &address, capability, request, per_call).await
                    }
                    None => ask_for_info(rpc, &address, req, requested, request, per_call).await,
                };
                let candidate = asked.map(|(info, token)| Candidate {
                    address: address.clone(),
                    info,
                    token,
                    latency: started.elapsed(),
                });
                (address, candidate)
            }
        })
        .buffer_unordered(config.batch_size.max(1));

    let mut candidates = Vec::new();
    loop {
        let next = match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(Some(next)) => next,
            Ok(None) => break,
            Err(_) => {
                for address in pending.drain(..) {
                    let reason = RejectionReason::SelectionDeadline { deadline: config.deadline };
                    rejections.push(reject(&address, reason));
                }
                break;
            }
        };
        let (address, candidate) = next;
        pending.retain(|a| a != &address);
        match candidate {
            Ok(c) => candidates.push(c),
            Err(reason) => rejections.push(reject(&address, reason)),
        }
    }

    candidates.sort_by_key(|c| c.latency);
    for r in &rejections {
        tracing::debug!(orchestrator = %redact_url(&r.orchestrator), reason = %r.reason, "orchestrator rejected");
    }
    if candidates.is_empty() {
        return Err(JobError::NoOrchestratorAvailable { rejections });
    }
    tracing::debug!(
        chosen = %redact_url(&candidates[0].address),
        latency_ms = candidates[0].latency.as_millis() as u64,
        usable = candidates.len(),
        rejected = rejections.len(),
        "orchestrators selected"
    );
    Ok(Selection { candidates, rejections })
}

/// The BYOC capability a selection is for, if any: a BYOC job names exactly one.
fn byoc_capability(queries: &[CapabilityQuery]) -> Result<Option<String>, JobError> {
    let byoc: Vec<&CapabilityQuery> = queries.iter().filter(|q| q.capability == Capability::Byoc).collect();
    match byoc.as_slice() {
        [] => Ok(None),
        [one] if queries.len() == 1 => Ok(Some(one.model.clone())),
        _ => Err(JobError::InvalidRequest(
            "a BYOC selection names exactly one byoc/NAME capability and nothing else".into(),
        )),
    }
}

/// `GetOrchestrator` on `address`, vetted.
async fn ask_for_info(
    rpc: &OrchestratorRpc,
    address: &str,
    req: OrchestratorRequest,
    requested: Option<&Capabilities>,
    request: &Select,
    per_call: Duration,
) -> Result<(OrchestratorInfo, Option<JobToken>), RejectionReason> {
    let info = match tokio::time::timeout(per_call, rpc.get_orchestrator(address, req)).await {
        Ok(Ok(info)) => info,
        Ok(Err(e)) => return Err(RejectionReason::InfoFailed(e.cause())),
        Err(_) => return Err(RejectionReason::InfoTimeout { after: per_call }),
    };
    match vet(&info, requested, request) {
        Ok(()) => Ok((info, None)),
        Err(unfit) => {
            // It answered but cannot take this job: no reason to keep its connection.
            rpc.forget(address);
            Err(RejectionReason::Unfit(unfit))
        }
    }
}

/// `GET /process/token` on `address` for BYOC `capability`, vetted; the info a signer needs is
/// made from the token. A restarted orchestrator's new certificate is confirmed through `rpc`
/// first (see [`fetch_job_token_confirmed`]).
async fn ask_for_token(
    rpc: &OrchestratorRpc,
    http: &HttpClients,
    address: &str,
    capability: &str,
    request: &Select,
    per_call: Duration,
) -> Result<(OrchestratorInfo, Option<JobToken>), RejectionReason> {
    let identity = request.identity.as_ref();
    let token = fetch_job_token_confirmed(http, rpc, address, capability, identity, per_call)
        .await
        .map_err(|e| RejectionReason::JobTokenFailed(e.to_string()))?;
    vet_job_token(&token, capability, request.max_price_wei_per_unit, request.identity.is_some())
        .map_err(RejectionReason::Unfit)?;
    let info = job_token_info(&token, unix_now());
    Ok((info, Some(token)))
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Whether `info` can take the job described by `request` (the rules live in
/// [`livepeer_gateway_core::vetting`](gateway_core::vetting)).
fn vet(
    info: &OrchestratorInfo,
    requested: Option<&Capabilities>,
    request: &Select,
) -> Result<(), VettingError> {
    let requirements = JobRequirements {
        capabilities: requested,
        max_price_wei_per_unit: request.max_price_wei_per_unit,
        paying: request.identity.is_some(),
    };
    vet_orchestrator_info(info, &requirements)
}

fn reject(address: &str, reason: RejectionReason) -> OrchestratorRejection {
    OrchestratorRejection::new(address, reason)
}

/// `host:port` in lower case, so `https://O:8935/` and `o:8935` count as the same orchestrator.
fn same_orchestrator_key(address: &str) -> String {
    OrchestratorTarget::parse(address)
        .map(|t| t.authority())
        .unwrap_or_else(|_| address.trim().to_owned())
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::lp_rpc::{AuthToken, PriceInfo, TicketParams};

    fn info() -> OrchestratorInfo {
        OrchestratorInfo {
            transcoder: "https://o:1".into(),
            auth_token: Some(AuthToken { token: vec![1], session_id: "s".into(), expiration: 1 }),
            price_info: Some(PriceInfo { price_per_unit: 100, pixels_per_unit: 1, ..Default::default() }),
            ticket_params: Some(TicketParams::default()),
            ..Default::default()
        }
    }

    #[test]
    fn vet_rules() {
        let offchain = Select::default();
        assert_eq!(vet(&info(), None, &offchain), Ok(()));
        assert!(vet(&OrchestratorInfo { transcoder: " ".into(), ..info() }, None, &offchain)
            .unwrap_err()
            .to_string()
            .contains("transcoder"));
        assert!(vet(&OrchestratorInfo { auth_token: None, ..info() }, None, &offchain)
            .unwrap_err()
            .to_string()
            .contains("auth token"));

        let capped = Select { max_price_wei_per_unit: Some(99.5), ..Default::default() };
        assert!(vet(&info(), None, &capped).unwrap_err().to_string().contains("above the maximum"));
        let ok = Select { max_price_wei_per_unit: Some(100.0), ..Default::default() };
        assert_eq!(vet(&info(), None, &ok), Ok(()));
        let bad_unit = OrchestratorInfo {
            price_info: Some(PriceInfo { price_per_unit: 1, pixels_per_unit: 0, ..Default::default() }),
            ..info()
        };
        assert!(vet(&bad_unit, None, &ok).unwrap_err().to_string().contains("pixelsPerUnit"));

        let paying = Select {
            identity: Some(SignerIdentity {
                address: "0x".into(),
                address_bytes: [0; 20],
                signature: vec![],
            }),
            ..Default::default()
        };
        assert_eq!(vet(&info(), None, &paying), Ok(()));
        assert!(vet(&OrchestratorInfo { ticket_params: None, ..info() }, None, &paying)
            .unwrap_err()
            .to_string()
            .contains("ticket"));
        assert_eq!(vet(&OrchestratorInfo { ticket_params: None, ..info() }, None, &offchain), Ok(()));

        let wants = build_capabilities(&["byoc/x".parse().unwrap()]);
        assert!(vet(&info(), Some(&wants), &offchain).unwrap_err().to_string().contains("capabilities"));
    }

    #[test]
    fn same_orchestrator_across_address_forms() {
        assert_eq!(same_orchestrator_key("https://O.example:8935/"), same_orchestrator_key("o.example:8935"));
        assert_ne!(same_orchestrator_key("o.example:8935"), same_orchestrator_key("o.example:8936"));
    }

    #[test]
    fn only_matching_keeps_the_orchestrators_whose_url_contains_the_wanted_text() {
        let candidate = |address: &str, transcoder: &str| Candidate {
            address: address.into(),
            info: OrchestratorInfo { transcoder: transcoder.into(), ..info() },
            latency: Duration::from_millis(5),
            token: None,
        };
        let selection = Selection {
            candidates: vec![
                candidate("a:1", "https://a.example:8935"),
                candidate("b:2", "https://b.example:8935"),
            ],
            rejections: vec![OrchestratorRejection::new("c:3", RejectionReason::Excluded)],
        };
        let kept = selection.clone().only_matching("b.example").unwrap();
        assert_eq!(kept.candidates.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), ["b:2"]);
        assert_eq!(kept.rejections.len(), 2);
        assert_eq!(kept.rejections[1], OrchestratorRejection::new("a:1", RejectionReason::Excluded));
        match selection.only_matching("nowhere") {
            Err(JobError::NoOrchestratorAvailable { rejections }) => assert_eq!(rejections.len(), 3),
            other => panic!("{other:?}"),
        }
    }
}
