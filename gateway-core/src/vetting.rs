//! Vetting an orchestrator's answer: whether the `OrchestratorInfo` it sent back from
//! `GetOrchestrator` can take a job, and if not, exactly why.
//!
//! These are go-livepeer's selection rules reduced to the pure part: an orchestrator is unfit
//! when its info lacks a `transcoder` URL or an auth token, its capabilities do not satisfy the
//! request, its price is invalid or above the caller's maximum, or, when paying an orchestrator
//! that charges, it sent no ticket parameters. BYOC orchestrators are judged by their
//! `/process/token` answer instead ([`vet_job_token`]). The selector in `gateway-actors` asks
//! the network; this module judges.

use crate::capabilities::check_compatible;
use crate::error::VettingError;
use crate::jobs::JobToken;
use crate::lp_rpc::{AuthToken, Capabilities, OrchestratorInfo, PriceInfo};

/// How long the auth token of an [`OrchestratorInfo`] made from a [`JobToken`] claims to be
/// valid. A BYOC token has none, but remote signers refuse info without one (they check it to
/// decide on a 480 refresh); go's own tests use an hour.
pub const BYOC_INFO_AUTH_VALIDITY_SECS: i64 = 3600;

/// What a job asks of an orchestrator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JobRequirements<'a> {
    /// The capabilities the job needs (as sent with `GetOrchestrator`); `None` asks for nothing
    /// in particular.
    pub capabilities: Option<&'a Capabilities>,
    /// Highest acceptable price in wei per unit (`pricePerUnit / pixelsPerUnit`). A NaN maximum
    /// accepts no priced orchestrator.
    pub max_price_wei_per_unit: Option<f64>,
    /// Whether the gateway pays (has a signer identity); paying needs ticket parameters.
    pub paying: bool,
}

/// Whether `info` can take a job with `requirements`; the error says why not.
pub fn vet_orchestrator_info(
    info: &OrchestratorInfo,
    requirements: &JobRequirements<'_>,
) -> Result<(), VettingError> {
    if info.transcoder.trim().is_empty() {
        return Err(VettingError::NoTranscoder);
    }
    if info.auth_token.as_ref().is_none_or(|t| t.token.is_empty()) {
        return Err(VettingError::NoAuthToken);
    }
    if let Some(requested) = requirements.capabilities {
        check_compatible(requested, info.capabilities.as_ref()).map_err(VettingError::Incompatible)?;
    }
    if let Some(price) = info.price_info.as_ref() {
        check_price(price, requirements)?;
    }
    // A free orchestrator takes no payment, so it needs no ticket parameters.
    if requirements.paying && info.charges() && info.ticket_params.is_none() {
        return Err(VettingError::NoTicketParams);
    }
    Ok(())
}

/// Whether a BYOC orchestrator's `GET /process/token` answer can take a job for `capability`.
///
/// go's BYOC gateway (`byoc/job_gateway.go`, `getJobOrchestrators`) keeps an orchestrator only
/// when `available_capacity > 0`; BYOC never appears in the capability bit string. We also
/// refuse a token without a service address, a price above the caller's maximum, and, when
/// paying a priced orchestrator, one without ticket parameters.
pub fn vet_job_token(
    token: &JobToken,
    capability: &str,
    max_price_wei_per_unit: Option<f64>,
    paying: bool,
) -> Result<(), VettingError> {
    if token.available_capacity <= 0 {
        return Err(VettingError::NoCapacity { capability: capability.to_owned() });
    }
    if token.service_addr.trim().is_empty() {
        return Err(VettingError::NoTranscoder);
    }
    let price = token.price();
    let requirements = JobRequirements { capabilities: None, max_price_wei_per_unit, paying: false };
    check_price(
        &PriceInfo {
            price_per_unit: price.price_per_unit,
            pixels_per_unit: price.pixels_per_unit,
            ..Default::default()
        },
        &requirements,
    )?;
    if paying && price.charges() && token.ticket_params.is_none() {
        return Err(VettingError::NoTicketParams);
    }
    Ok(())
}

/// The [`OrchestratorInfo`] a remote signer needs to pay for a BYOC job, made from the
/// orchestrator's [`JobToken`]: its service address, price and ticket parameters, the
/// recipient as address, and an auth token valid for [`BYOC_INFO_AUTH_VALIDITY_SECS`] from
/// `now_unix` (BYOC tokens carry none; the orchestrator never checks it).
pub fn job_token_info(token: &JobToken, now_unix: i64) -> OrchestratorInfo {
    let price = token.price();
    let ticket_params = token.ticket_params.as_ref().map(Into::into);
    OrchestratorInfo {
        transcoder: token.service_addr.trim_end_matches('/').to_owned(),
        address: token.ticket_params.as_ref().map(|p| p.recipient.clone()).unwrap_or_default(),
        price_info: Some(PriceInfo {
            price_per_unit: price.price_per_unit,
            pixels_per_unit: price.pixels_per_unit,
            ..Default::default()
        }),
        ticket_params,
        auth_token: Some(AuthToken {
            token: b"byoc".to_vec(),
            session_id: String::new(),
            expiration: now_unix.saturating_add(BYOC_INFO_AUTH_VALIDITY_SECS),
        }),
        ..Default::default()
    }
}

/// The price rules shared by both vettings.
fn check_price(price: &PriceInfo, requirements: &JobRequirements<'_>) -> Result<(), VettingError> {
    let Some(max) = requirements.max_price_wei_per_unit else { return Ok(()) };
    if price.price_per_unit == 0 {
        return Ok(());
    }
    if price.pixels_per_unit <= 0 || price.price_per_unit < 0 {
        return Err(VettingError::InvalidPrice {
            price_per_unit: price.price_per_unit,
            pixels_per_unit: price.pixels_per_unit,
        });
    }
    let per_unit = price.price_per_unit as f64 / price.pixels_per_unit as f64;
    // A NaN maximum refuses rather than accepts.
    if max.is_nan() || per_unit > max {
        return Err(VettingError::PriceAboveMaximum {
            wei_per_unit: per_unit,
            price_per_unit: price.price_per_unit,
            pixels_per_unit: price.pixels_per_unit,
            max_wei_per_unit: max,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::{build_capabilities, Incompatibility};
    use crate::lp_rpc::{AuthToken, PriceInfo, TicketParams};

    fn info() -> OrchestratorInfo {
        OrchestratorInfo {
            transcoder: "https://o:1".into(),
            auth_token: Some(AuthToken { token: vec![1], session_id: "s".into(), expiration: 1 }),
            price_info: Some(PriceInfo { price_per_unit: 100, pixels_per_unit: 1, ..Default::default() }),
            ticket_params: Some(TicketParams::default()),
            ..Default::default()
        }
    }

    fn vet(info: &OrchestratorInfo, r: JobRequirements<'_>) -> Result<(), VettingError> {
        vet_orchestrator_info(info, &r)
    }

    #[test]
    fn missing_fields_are_named() {
        let offchain = JobRequirements::default();
        assert_eq!(vet(&info(), offchain), Ok(()));
        let e = vet(&OrchestratorInfo { transcoder: " ".into(), ..info() }, offchain).unwrap_err();
        assert_eq!(e, VettingError::NoTranscoder);
        assert!(e.to_string().contains("transcoder"));
        let e = vet(&OrchestratorInfo { auth_token: None, ..info() }, offchain).unwrap_err();
        assert!(e.to_string().contains("auth token"));
        let empty_token = AuthToken { token: vec![], session_id: "s".into(), expiration: 1 };
        let e = vet(&OrchestratorInfo { auth_token: Some(empty_token), ..info() }, offchain).unwrap_err();
        assert_eq!(e, VettingError::NoAuthToken);
    }

    #[test]
    fn price_rules() {
        let capped = JobRequirements { max_price_wei_per_unit: Some(99.5), ..Default::default() };
        let e = vet(&info(), capped).unwrap_err();
        assert!(matches!(e, VettingError::PriceAboveMaximum { wei_per_unit, .. } if wei_per_unit == 100.0));
        assert!(e.to_string().contains("above the maximum"), "{e}");
        let ok = JobRequirements { max_price_wei_per_unit: Some(100.0), ..Default::default() };
        assert_eq!(vet(&info(), ok), Ok(()));
        let bad_unit = OrchestratorInfo {
            price_info: Some(PriceInfo { price_per_unit: 1, pixels_per_unit: 0, ..Default::default() }),
            ..info()
        };
        assert!(vet(&bad_unit, ok).unwrap_err().to_string().contains("pixelsPerUnit"));
        let negative = OrchestratorInfo {
            price_info: Some(PriceInfo { price_per_unit: -5, pixels_per_unit: 1, ..Default::default() }),
            ..info()
        };
        assert!(matches!(vet(&negative, ok), Err(VettingError::InvalidPrice { price_per_unit: -5, .. })));
        // A free orchestrator passes any maximum, a NaN maximum refuses a priced one.
        let free = OrchestratorInfo { price_info: Some(PriceInfo::default()), ..info() };
        let nan = JobRequirements { max_price_wei_per_unit: Some(f64::NAN), ..Default::default() };
        assert_eq!(vet(&free, nan), Ok(()));
        assert!(matches!(vet(&info(), nan), Err(VettingError::PriceAboveMaximum { .. })));
        let inf = JobRequirements { max_price_wei_per_unit: Some(f64::INFINITY), ..Default::default() };
        assert_eq!(vet(&info(), inf), Ok(()));
    }

    #[test]
    fn paying_needs_ticket_params_and_capabilities_must_match() {
        let paying = JobRequirements { paying: true, ..Default::default() };
        assert_eq!(vet(&info(), paying), Ok(()));
        let e = vet(&OrchestratorInfo { ticket_params: None, ..info() }, paying).unwrap_err();
        assert_eq!(e, VettingError::NoTicketParams);
        assert!(e.to_string().contains("ticket"));
        assert_eq!(
            vet(&OrchestratorInfo { ticket_params: None, ..info() }, JobRequirements::default()),
            Ok(())
        );

        let wants = build_capabilities(&["byoc/x".parse().unwrap()]);
        let e =
            vet(&info(), JobRequirements { capabilities: Some(&wants), ..Default::default() }).unwrap_err();
        assert_eq!(e, VettingError::Incompatible(Incompatibility::NoCapabilities));
        assert!(e.to_string().contains("capabilities"));
    }

    #[test]
    fn byoc_tokens_are_judged_by_capacity_price_and_ticket_params() {
        use crate::jobs::{JobPrice, JobTicketParams};
        let token = JobToken {
            service_addr: "https://o:8935".into(),
            available_capacity: 2,
            price: Some(JobPrice { price_per_unit: 100, pixels_per_unit: 1 }),
            ticket_params: Some(JobTicketParams { recipient: vec![7; 20], ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(vet_job_token(&token, "x", None, true), Ok(()));
        let full = JobToken { available_capacity: 0, ..token.clone() };
        let e = vet_job_token(&full, "x", None, true).unwrap_err();
        assert_eq!(e, VettingError::NoCapacity { capability: "x".into() });
        assert!(e.to_string().contains("capacity"), "{e}");
        assert!(matches!(
            vet_job_token(&token, "x", Some(99.0), true),
            Err(VettingError::PriceAboveMaximum { .. })
        ));
        let unpaid = JobToken { ticket_params: None, ..token.clone() };
        assert_eq!(vet_job_token(&unpaid, "x", None, true), Err(VettingError::NoTicketParams));
        // A free orchestrator needs no ticket parameters.
        let free = JobToken { price: None, ..unpaid };
        assert_eq!(vet_job_token(&free, "x", None, true), Ok(()));

        let info = job_token_info(&token, 1_000);
        assert_eq!(info.transcoder, "https://o:8935");
        assert_eq!(info.address, vec![7; 20]);
        assert_eq!(info.price_info.as_ref().map(|p| (p.price_per_unit, p.pixels_per_unit)), Some((100, 1)));
        assert_eq!(info.auth_token.unwrap().expiration, 1_000 + BYOC_INFO_AUTH_VALIDITY_SECS);
    }
}
