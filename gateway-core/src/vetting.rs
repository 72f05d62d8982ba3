//! Vetting an orchestrator's answer: whether the `OrchestratorInfo` it sent back from
//! `GetOrchestrator` can take a job, and if not, exactly why.
//!
//! These are go-livepeer's selection rules reduced to the pure part: an orchestrator is unfit
//! when its info lacks a `transcoder` URL or an auth token, its capabilities do not satisfy the
//! request, its price is invalid or above the caller's maximum, or, when paying, it sent no
//! ticket parameters. The selector in `gateway-actors` asks the network; this module judges.

use crate::capabilities::check_compatible;
use crate::error::VettingError;
use crate::lp_rpc::{Capabilities, OrchestratorInfo};

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
    if let (Some(max), Some(price)) = (requirements.max_price_wei_per_unit, info.price_info.as_ref()) {
        if price.price_per_unit != 0 {
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
        }
    }
    if requirements.paying && info.ticket_params.is_none() {
        return Err(VettingError::NoTicketParams);
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
}
