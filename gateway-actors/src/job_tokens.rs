//! BYOC job tokens: `GET {orchestrator}/process/token`, how a BYOC gateway learns what an
//! orchestrator offers for a capability (free capacity, price, the sender's balance, ticket
//! parameters bound to the sender).
//!
//! BYOC capabilities never appear in an orchestrator's capability bit string, so go's BYOC
//! gateway (`byoc/job_gateway.go`, `getJobOrchestrators`) asks every orchestrator for a token
//! instead of vetting `GetOrchestrator` answers; the selector does the same for `byoc/...`
//! queries, and payments re-fetch a token for fresh ticket parameters.
//!
//! Tokens come over HTTP, which never accepts an unconfirmed certificate. Under
//! [`OrchestratorTrust::Pinned`], a restarted orchestrator's new certificate is therefore
//! confirmed first with a `GetOrchestrator` call (go's BYOC orchestrators answer it on the same
//! port), then the token is asked for again ([`fetch_job_token_confirmed`]). A token's ticket
//! recipient is checked against the pins like a `GetOrchestrator` answer's.

use std::time::Duration;

use gateway_core::error::redact_url;
use gateway_core::jobs::{self, EthAddressHeader, JobToken};
use gateway_core::signer::SignerIdentity;

use crate::grpc::{OrchestratorRpc, OrchestratorTarget};
use crate::http::{describe, read_body_capped, HttpClients, MAX_RESPONSE_BYTES};
use crate::tls::{pin_key, trust_error, OrchestratorTrust, TrustError};

/// A job token could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobTokenError {
    /// The trust policy refused the orchestrator's certificate or the recipient it names.
    #[error("{path}: not trusted: {0}", path = jobs::PROCESS_TOKEN_PATH)]
    Untrusted(TrustError),
    /// Anything else (transport, HTTP status, body), described for a rejection list.
    #[error("{0}")]
    Failed(String),
}

impl From<JobTokenError> for String {
    fn from(e: JobTokenError) -> String {
        e.to_string()
    }
}

/// The address sent offchain (no signer): go's orchestrators skip the signature check then,
/// but still decode the header.
const OFFCHAIN_SENDER: &str = "0x0000000000000000000000000000000000000000";

/// The `Livepeer-Eth-Address` value for `identity`: the signer's address exactly as it gave
/// it, with its signature over that string (what `/sign-orchestrator-info` returns).
pub(crate) fn eth_address_header(identity: Option<&SignerIdentity>) -> String {
    let header = match identity {
        Some(id) => {
            EthAddressHeader { addr: id.address.clone(), sig: format!("0x{}", hex::encode(&id.signature)) }
        }
        None => EthAddressHeader { addr: OFFCHAIN_SENDER.to_owned(), sig: String::new() },
    };
    header.to_header()
}

/// Asks the orchestrator at `address` (as discovered: `host:port` or a URL) for a token for
/// BYOC `capability`, within `timeout`. The error says why, ready for a rejection list; a
/// refusal by the trust policy is typed ([`JobTokenError::Untrusted`]).
pub(crate) async fn fetch_job_token(
    http: &HttpClients,
    address: &str,
    capability: &str,
    identity: Option<&SignerIdentity>,
    timeout: Duration,
) -> Result<JobToken, JobTokenError> {
    let failed = JobTokenError::Failed;
    let target = OrchestratorTarget::parse(address).map_err(failed)?;
    let origin = target.origin();
    let client = http.orchestrator(&origin).map_err(|e| failed(e.to_string()))?;
    let url = format!("{origin}{}", jobs::PROCESS_TOKEN_PATH);
    let resp = client
        .get(&url)
        .timeout(timeout)
        .header(jobs::HEADER_ETH_ADDRESS, eth_address_header(identity))
        .header(jobs::HEADER_CAPABILITY, capability)
        .send()
        .await
        .map_err(|e| match trust_error(&e) {
            Some(refusal) => JobTokenError::Untrusted(refusal.clone()),
            None => failed(format!("{}: {}", jobs::PROCESS_TOKEN_PATH, describe(&e))),
        })?;
    let status = resp.status().as_u16();
    let body = read_body_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| failed(format!("{}: {e}", jobs::PROCESS_TOKEN_PATH)))?;
    if status != 200 {
        let why = gateway_core::error::body_excerpt(&body, 200);
        return Err(failed(format!("{} answered HTTP {status}: {why}", jobs::PROCESS_TOKEN_PATH)));
    }
    let token: JobToken = gateway_core::go_json::from_slice(&body).map_err(|e| {
        failed(format!("{} from {} is not a job token: {e}", jobs::PROCESS_TOKEN_PATH, redact_url(&origin)))
    })?;
    // Tickets made from this token pay its recipient: the pinned one, or none.
    if let (true, Some(pins), Some(params)) = (target.tls, http.trust.pins(), &token.ticket_params) {
        pins.check_recipient(&pin_key(&target.host, target.port), &params.recipient)
            .map_err(JobTokenError::Untrusted)?;
    }
    Ok(token)
}

/// `fetch_job_token`, and under `Pinned`, when the orchestrator presents a new certificate not
/// confirmed yet, confirms it with `GetOrchestrator` (which re-pins it when the answer names the
/// pinned ETH identity, or says why not) and asks once more.
pub async fn fetch_job_token_confirmed(
    http: &HttpClients,
    rpc: &OrchestratorRpc,
    address: &str,
    capability: &str,
    identity: Option<&SignerIdentity>,
    timeout: Duration,
) -> Result<JobToken, JobTokenError> {
    match fetch_job_token(http, address, capability, identity, timeout).await {
        Err(JobTokenError::Untrusted(TrustError::CertificateUnconfirmed { .. }))
            if matches!(http.trust, OrchestratorTrust::Pinned(_)) =>
        {
            let request = crate::grpc::orchestrator_request(identity, None);
            rpc.get_orchestrator(address, request).await.map_err(|e| match e.kind {
                crate::grpc::RpcErrorKind::Untrusted(refusal) => JobTokenError::Untrusted(refusal),
                _ => JobTokenError::Failed(format!(
                    "its certificate changed and could not be confirmed: {}",
                    e.cause()
                )),
            })?;
            fetch_job_token(http, address, capability, identity, timeout).await
        }
        other => other,
    }
}
