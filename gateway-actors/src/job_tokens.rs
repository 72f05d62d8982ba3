//! BYOC job tokens: `GET {orchestrator}/process/token`, how a BYOC gateway learns what an
//! orchestrator offers for a capability (free capacity, price, the sender's balance, ticket
//! parameters bound to the sender).
//!
//! BYOC capabilities never appear in an orchestrator's capability bit string, so go's BYOC
//! gateway (`byoc/job_gateway.go`, `getJobOrchestrators`) asks every orchestrator for a token
//! instead of vetting `GetOrchestrator` answers; the selector does the same for `byoc/...`
//! queries, and payments re-fetch a token for fresh ticket parameters.

use std::time::Duration;

use gateway_core::error::redact_url;
use gateway_core::jobs::{self, EthAddressHeader, JobToken};
use gateway_core::signer::SignerIdentity;

use crate::grpc::OrchestratorTarget;
use crate::http::{describe, read_body_capped, HttpClients, MAX_RESPONSE_BYTES};

/// The address sent offchain (no signer): go's orchestrators skip the signature check then,
/// but still decode the header.
const OFFCHAIN_SENDER: &str = "0x0000000000000000000000000000000000000000";

/// The `Livepeer-Eth-Address` value for `identity`: the signer's address exactly as it gave
/// it, with its signature over that string (what `/sign-orchestrator-info` returns).
pub fn eth_address_header(identity: Option<&SignerIdentity>) -> String {
    let header = match identity {
        Some(id) => {
            EthAddressHeader { addr: id.address.clone(), sig: format!("0x{}", hex::encode(&id.signature)) }
        }
        None => EthAddressHeader { addr: OFFCHAIN_SENDER.to_owned(), sig: String::new() },
    };
    header.to_header()
}

/// Asks the orchestrator at `address` (as discovered: `host:port` or a URL) for a token for
/// BYOC `capability`, within `timeout`. The error says why, ready for a rejection list.
pub async fn fetch_job_token(
    http: &HttpClients,
    address: &str,
    capability: &str,
    identity: Option<&SignerIdentity>,
    timeout: Duration,
) -> Result<JobToken, String> {
    let origin = OrchestratorTarget::parse(address)?.origin();
    let client = http.orchestrator(&origin).map_err(|e| e.to_string())?;
    let url = format!("{origin}{}", jobs::PROCESS_TOKEN_PATH);
    let resp = client
        .get(&url)
        .timeout(timeout)
        .header(jobs::HEADER_ETH_ADDRESS, eth_address_header(identity))
        .header(jobs::HEADER_CAPABILITY, capability)
        .send()
        .await
        .map_err(|e| format!("{}: {}", jobs::PROCESS_TOKEN_PATH, describe(&e)))?;
    let status = resp.status().as_u16();
    let body = read_body_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| format!("{}: {e}", jobs::PROCESS_TOKEN_PATH))?;
    if status != 200 {
        let why = gateway_core::error::body_excerpt(&body, 200);
        return Err(format!("{} answered HTTP {status}: {why}", jobs::PROCESS_TOKEN_PATH));
    }
    gateway_core::go_json::from_slice(&body).map_err(|e| {
        format!("{} from {} is not a job token: {e}", jobs::PROCESS_TOKEN_PATH, redact_url(&origin))
    })
}
