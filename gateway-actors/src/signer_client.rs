//! The remote-signer client actor: the gateway's identity, payment tickets and BYOC job
//! signatures, from a signer that holds the Ethereum key.
//!
//! - `/sign-orchestrator-info` is called once and cached for the life of the actor.
//! - 5xx, 408, 429 and transport failures are retried with exponential backoff (3 attempts).
//! - 480, 481 and 482 come back as typed errors; the payment session decides what to do.
//! - Signer headers (often credentials) are sent with every call and never logged.
//! - Without a signer URL the gateway is offchain: no identity, and payment calls are refused.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use gateway_core::error::SignerError;
use gateway_core::signer::{
    self, GenerateLivePaymentRequest, GenerateLivePaymentResponse, SignByocJobRequest, SignByocJobResponse,
    SignOrchestratorInfoResponse, SignerIdentity,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::http::{describe, header_str, read_body_capped, JSON_CALL_TIMEOUT, MAX_RESPONSE_BYTES};

/// Attempts per signer call for retryable failures.
const MAX_ATTEMPTS: u32 = 3;
/// First backoff pause; doubles per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Where the signer is and how to authenticate to it.
#[derive(Clone, Default)]
pub struct SignerEndpoint {
    /// Base URL; `host:port` means `https://host:port`. A path (hosted signers) is kept.
    pub url: String,
    /// Headers sent with every call.
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for SignerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignerEndpoint")
            .field("url", &gateway_core::error::redact_url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SignerEndpoint {
    /// The URL of `path` under the base URL. The path goes before a query the base may carry
    /// (hosted signers take `?key=...`); appending to the string would push it into the query.
    fn endpoint(&self, path: &str) -> String {
        let base = if self.url.contains("://") { self.url.clone() } else { format!("https://{}", self.url) };
        match url::Url::parse(&base) {
            Ok(mut url) => {
                let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
                url.set_path(&joined);
                url.to_string()
            }
            Err(_) => format!("{}{}", base.trim_end_matches('/'), path),
        }
    }
}

/// The signer client actor. Offchain when `endpoint` is `None`.
pub struct SignerClient {
    http: reqwest::Client,
    endpoint: Option<SignerEndpoint>,
    /// Cached after the first `/sign-orchestrator-info`.
    identity: Option<SignerIdentity>,
}

impl SignerClient {
    /// A client for `endpoint` using the signer HTTP client.
    pub fn new(http: reqwest::Client, endpoint: Option<SignerEndpoint>) -> SignerClient {
        SignerClient { http, endpoint, identity: None }
    }
}

impl Actor for SignerClient {
    type Context = Context<Self>;
}

/// Ask for the gateway's identity (`None` offchain).
#[derive(Debug, Message)]
#[rtype(result = "Result<Option<SignerIdentity>, SignerError>")]
pub struct GetIdentity;

/// Ask for one payment.
#[derive(Debug, Message)]
#[rtype(result = "Result<GenerateLivePaymentResponse, SignerError>")]
pub struct GeneratePayment(pub GenerateLivePaymentRequest);

/// Ask for a BYOC job signature.
#[derive(Debug, Message)]
#[rtype(result = "Result<SignByocJobResponse, SignerError>")]
pub struct SignByocJob(pub SignByocJobRequest);

impl Handler<GetIdentity> for SignerClient {
    type Result = ResponseActFuture<Self, Result<Option<SignerIdentity>, SignerError>>;

    fn handle(&mut self, _: GetIdentity, _: &mut Context<Self>) -> Self::Result {
        let Some(endpoint) = self.endpoint.clone() else { return Box::pin(fut::ready(Ok(None))) };
        if let Some(id) = &self.identity {
            return Box::pin(fut::ready(Ok(Some(id.clone()))));
        }
        let http = self.http.clone();
        let ask = async move {
            let resp: SignOrchestratorInfoResponse =
                call(&http, &endpoint, signer::SIGN_ORCHESTRATOR_INFO_PATH, &serde_json::json!({})).await?;
            resp.identity()
        };
        // Not atomic: payments go on while the identity is asked for; two first calls may both
        // ask, and the answers are the same.
        Box::pin(ask.into_actor(self).map(|result, act, _| {
            let id = result?;
            act.identity = Some(id.clone());
            Ok(Some(id))
        }))
    }
}

impl Handler<GeneratePayment> for SignerClient {
    type Result = ResponseFuture<Result<GenerateLivePaymentResponse, SignerError>>;

    fn handle(&mut self, msg: GeneratePayment, _: &mut Context<Self>) -> Self::Result {
        let (http, endpoint) = (self.http.clone(), self.endpoint.clone());
        Box::pin(async move {
            let endpoint = endpoint
                .ok_or_else(|| SignerError::InvalidRequest("no signer configured (offchain)".into()))?;
            let resp: GenerateLivePaymentResponse =
                call(&http, &endpoint, signer::GENERATE_LIVE_PAYMENT_PATH, &msg.0).await?;
            if resp.payment.is_empty() {
                return Err(SignerError::InvalidResponse {
                    endpoint: signer::GENERATE_LIVE_PAYMENT_PATH,
                    reason: "empty payment".into(),
                });
            }
            Ok(resp)
        })
    }
}

impl Handler<SignByocJob> for SignerClient {
    type Result = ResponseFuture<Result<SignByocJobResponse, SignerError>>;

    fn handle(&mut self, msg: SignByocJob, _: &mut Context<Self>) -> Self::Result {
        let (http, endpoint) = (self.http.clone(), self.endpoint.clone());
        Box::pin(async move {
            signer::byoc_job_v1_encoding(&msg.0)?; // refuse jobs the signer would refuse, without a call
            let endpoint = endpoint
                .ok_or_else(|| SignerError::InvalidRequest("no signer configured (offchain)".into()))?;
            call(&http, &endpoint, signer::SIGN_BYOC_JOB_PATH, &msg.0).await
        })
    }
}

/// POSTs `body` to the signer and decodes the answer, retrying retryable failures.
async fn call<B: Serialize, R: DeserializeOwned>(
    http: &reqwest::Client,
    endpoint: &SignerEndpoint,
    path: &'static str,
    body: &B,
) -> Result<R, SignerError> {
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match call_once(http, endpoint, path, body).await {
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                tracing::debug!(endpoint = path, attempt, error = %e, "signer call failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn call_once<B: Serialize, R: DeserializeOwned>(
    http: &reqwest::Client,
    endpoint: &SignerEndpoint,
    path: &'static str,
    body: &B,
) -> Result<R, SignerError> {
    let mut req = http.post(endpoint.endpoint(path)).timeout(JSON_CALL_TIMEOUT).json(body);
    for (k, v) in &endpoint.headers {
        req = req.header(k, v);
    }
    let resp =
        req.send().await.map_err(|e| SignerError::Unreachable { endpoint: path, reason: describe(&e) })?;
    let status = resp.status().as_u16();
    let orch_url = header_str(&resp, signer::HEADER_ORCHESTRATOR_URL).map(str::to_owned);
    let bytes = read_body_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|reason| SignerError::InvalidResponse { endpoint: path, reason })?;
    signer::check_status(path, status, orch_url.as_deref(), &bytes)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| SignerError::InvalidResponse { endpoint: path, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_the_base_path_and_query() {
        let e = |url: &str| SignerEndpoint { url: url.into(), headers: BTreeMap::new() };
        assert_eq!(e("signer.example:8935").endpoint("/x"), "https://signer.example:8935/x");
        assert_eq!(e("https://s.example/api/").endpoint("/x"), "https://s.example/api/x");
        assert_eq!(e("https://s.example/api?key=k").endpoint("/x"), "https://s.example/api/x?key=k");
        assert_eq!(e("http://127.0.0.1:9/?key=k").endpoint("/x"), "http://127.0.0.1:9/x?key=k");
    }
}
