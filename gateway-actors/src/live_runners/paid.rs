//! Paying a live runner's 402 challenge: one request (a session reservation, or a single-shot
//! call), sent with the payer's address; when the orchestrator answers 402 with a challenge,
//! paid through the remote signer and sent again with the payment.
//!
//! The rules are go-livepeer master's (`server/ai_http.go` `runnerChallenge`,
//! `reservePaidLiveRunnerSession`) as the Python SDK pays them (`call_runner`,
//! `_get_runner_payment`): the signer's payment type follows the runner's price unit
//! (`seconds` -> `live`, `720p-pixel-seconds` -> `lv2v`, `fixed` -> `fixed`), `maxPrice` is
//! the discovered price plus 1.2 % (the price may move between discovery and the challenge),
//! the challenge's manifest id is the session id paid under, and a signer 480 on the first
//! payment asks for a fresh challenge. Recurring payments refresh through the orchestrator's
//! `/refresh-payment` instead.

use std::time::Duration;

use gateway_core::error::SignerError;
use gateway_core::lp_rpc::{self, OrchestratorInfo};
use gateway_core::rejection::{JobError, RejectionReason};
use gateway_core::runners::{PaymentChallenge, HEADER_PAYER_ADDRESS};
use gateway_core::signer::{MaxPrice, SignerIdentity};

use super::discovery::RunnerCandidate;
use crate::gateway::{Gateway, GatewayError};
use crate::http::{describe, read_body_capped, MAX_RESPONSE_BYTES};
use crate::jobs::{job_error, JobPayments};
use crate::payments::{
    InfoSource, PaymentCredentials, PaymentKind, PaymentSession, PaymentStop, PaymentTarget,
    RefreshOrchestratorInfo, Refresher,
};

/// Challenges answered for one request before giving up (the Python SDK allows 3 retries,
/// each of which may need a fresh challenge).
const MAX_CHALLENGES: u32 = 4;
/// The margin over the discovered price the payer accepts (the Python SDK's 1.2 %: it covers
/// most hourly ETH-USD moves).
const MAX_PRICE_MARGIN: f64 = 1.012;
/// The orchestrator's route that re-issues payment params for a session (go's `RefreshPayment`).
const REFRESH_PAYMENT_PATH: &str = "/refresh-payment";

/// A request's answer, and the payment that bought it (none when the orchestrator asked none).
pub(super) struct PaidAnswer {
    /// The orchestrator's (or the app's) answer, its body unread.
    pub response: reqwest::Response,
    /// The paid challenge and the session that paid it.
    pub paid: Option<(PaymentChallenge, PaymentSession)>,
    /// The payer (`None` without a signer).
    pub identity: Option<SignerIdentity>,
}

impl Gateway {
    /// Sends what `build` makes to `candidate`, paying its challenge if one comes (see the
    /// module docs). `timeout` bounds each send up to the answer's headers.
    pub(super) async fn send_paying(
        &self,
        candidate: &RunnerCandidate,
        url: &str,
        build: &(dyn Fn() -> reqwest::RequestBuilder + Sync),
        timeout: Duration,
    ) -> Result<PaidAnswer, GatewayError> {
        let identity = self.identity().await?;
        let kind = runner_payment_kind(candidate)?;
        let mut paid: Option<(PaymentChallenge, PaymentSession, PaymentCredentials)> = None;
        for _ in 0..MAX_CHALLENGES {
            let mut req = build();
            if let Some(id) = &identity {
                req = req.header(HEADER_PAYER_ADDRESS, payer_address(id));
            }
            if let Some((_, _, creds)) = &paid {
                req = req
                    .header(gateway_core::jobs::HEADER_PAYMENT, &creds.payment)
                    .header(gateway_core::jobs::HEADER_SEGMENT, &creds.segment);
            }
            let response = send_for_headers(req, url, timeout).await?;
            if response.status().as_u16() != 402 {
                return Ok(PaidAnswer { response, paid: paid.map(|(c, s, _)| (c, s)), identity });
            }
            let body = read_body_capped(response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|reason| JobError::InvalidResponse { endpoint: url.to_owned(), reason })?;
            let challenge = payment_challenge(url, &body, identity.is_some())?;
            let info: OrchestratorInfo = lp_rpc::from_base64("payment_params", &challenge.payment_params)
                .map_err(|e| JobError::InvalidResponse { endpoint: url.to_owned(), reason: e.to_string() })?;
            let mut session =
                PaymentSession::new(self.signer_addr(), info, kind.clone(), &Default::default(), None);
            if !session.is_paying() {
                return Err(JobError::PaymentRequired { message: NO_SIGNER.into() }.into());
            }
            session.set_manifest_id(challenge.manifest_id.clone());
            session.set_runner_terms(Some(candidate.runner.app.clone()), max_price(candidate));
            match session.next_payment().await {
                Ok(creds) => paid = Some((challenge, session, creds)),
                // The challenge's params went stale: ask for a fresh one.
                Err(SignerError::RefreshRequired { .. }) => paid = None,
                Err(e) => return Err(e.into()),
            }
        }
        Err(JobError::PaymentRequired {
            message: format!("{url} still asked for payment after {MAX_CHALLENGES} challenges"),
        }
        .into())
    }

    /// Recurring payments for a paid session or call: none at a fixed price (paid once), else
    /// every `interval` to the challenge's payment URL, refreshing through the orchestrator's
    /// `/refresh-payment` on a signer 480.
    pub(super) fn pay_while_running(
        &self,
        candidate: &RunnerCandidate,
        paid: Option<(PaymentChallenge, PaymentSession)>,
        identity: Option<SignerIdentity>,
        actor_http: reqwest::Client,
        interval: Duration,
    ) -> Result<JobPayments, GatewayError> {
        let Some((challenge, mut session)) = paid else {
            return Ok(JobPayments::none(PaymentStop::FreeOrchestrator));
        };
        if !session.kind().is_metered() {
            return Ok(JobPayments::none(PaymentStop::FixedPrice));
        }
        let origin = url::Url::parse(&challenge.payment_url)
            .map(|u| u.origin().ascii_serialization())
            .map_err(|e| JobError::InvalidResponse {
                endpoint: challenge.payment_url.clone(),
                reason: format!("not a payment URL: {e}"),
            })?;
        let source = InfoSource::RunnerSession {
            refresh_url: format!("{origin}{REFRESH_PAYMENT_PATH}"),
            manifest_id: challenge.manifest_id.clone(),
        };
        let request = RefreshOrchestratorInfo { address: candidate.orchestrator.clone(), identity, source };
        session.set_refresher(Refresher::new(self.refresh_recipient(), request));
        let target = PaymentTarget::RunnerSession { payment_url: challenge.payment_url };
        Ok(self.start_payments(session, target, actor_http, interval))
    }
}

/// `POST {refresh_url}` `{"sender", "manifest_id"}`: the challenge-shaped answer's payment
/// params, for a signer 480 during a session.
pub(crate) async fn refresh_payment_params(
    http: &reqwest::Client,
    refresh_url: &str,
    identity: Option<&SignerIdentity>,
    manifest_id: &str,
) -> Result<OrchestratorInfo, String> {
    let sender =
        identity.map(payer_address).ok_or("cannot refresh payment params without a signer address")?;
    let body = serde_json::json!({ "sender": sender, "manifest_id": manifest_id });
    let resp = http
        .post(refresh_url)
        .json(&body)
        .timeout(crate::http::JSON_CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{refresh_url}: {}", describe(&e)))?;
    let status = resp.status().as_u16();
    let body = read_body_capped(resp, MAX_RESPONSE_BYTES).await?;
    if status != 200 {
        return Err(format!(
            "{refresh_url} answered HTTP {status}: {}",
            gateway_core::error::body_excerpt(&body, 200)
        ));
    }
    let challenge: PaymentChallenge =
        serde_json::from_slice(&body).map_err(|e| format!("{refresh_url}: not payment params: {e}"))?;
    lp_rpc::from_base64("payment_params", &challenge.payment_params).map_err(|e| e.to_string())
}

/// The signer's payment type for `candidate`'s price unit.
fn runner_payment_kind(candidate: &RunnerCandidate) -> Result<PaymentKind, JobError> {
    let unit = candidate.runner.price_info.as_ref().map(|p| p.unit.as_str()).unwrap_or_default();
    PaymentKind::for_runner_unit(unit).ok_or_else(|| {
        JobError::InvalidRequest(format!(
            "runner {} is priced per {unit:?}, a unit this gateway cannot pay (seconds, 720p-pixel-seconds or fixed)",
            candidate.runner.url
        ))
    })
}

/// The discovered price plus the margin, as the signer's ceiling.
fn max_price(candidate: &RunnerCandidate) -> Option<MaxPrice> {
    let price = candidate.runner.price_info.as_ref()?;
    Some(MaxPrice {
        price: price.price_value()? * MAX_PRICE_MARGIN,
        currency: if price.currency.is_empty() { "wei".into() } else { price.currency.clone() },
        unit: price.unit.clone(),
    })
}

fn payer_address(id: &SignerIdentity) -> String {
    format!("0x{}", hex::encode(id.address_bytes))
}

const NO_SIGNER: &str = "the runner asks for payment and this gateway has no signer to pay with";

/// Sends `req`, waiting at most `timeout` for the answer's headers (its body may stream for
/// longer).
pub(super) async fn send_for_headers(
    req: reqwest::RequestBuilder,
    url: &str,
    timeout: Duration,
) -> Result<reqwest::Response, JobError> {
    let transport =
        |message: String| job_error(RejectionReason::Transport { endpoint: url.to_owned(), message });
    match tokio::time::timeout(timeout, req.send()).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(transport(describe(&e))),
        Err(_) => Err(transport(format!("no answer within {timeout:?}"))),
    }
}

/// A 402's challenge; go's JSON error instead (no payer address, say) is a typed refusal that
/// says what the orchestrator said.
fn payment_challenge(url: &str, body: &[u8], has_signer: bool) -> Result<PaymentChallenge, JobError> {
    if let Ok(challenge) = serde_json::from_slice::<PaymentChallenge>(body) {
        return Ok(challenge);
    }
    let said = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned));
    match said {
        Some(message) if has_signer => Err(JobError::PaymentRequired { message }),
        Some(message) => Err(JobError::PaymentRequired { message: format!("{NO_SIGNER} ({message})") }),
        None => Err(JobError::InvalidResponse {
            endpoint: url.to_owned(),
            reason: format!(
                "a 402 without a payment challenge: {}",
                gateway_core::error::body_excerpt(body, 200)
            ),
        }),
    }
}
