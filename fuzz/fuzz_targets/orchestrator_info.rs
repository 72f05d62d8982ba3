//! An orchestrator's `GetOrchestrator` answer on any bytes: protobuf decoding of
//! `OrchestratorInfo` (and `PaymentResult`, which carries one), then everything the gateway
//! derives from it: vetting against several job requirements, prices, fees, ticket values,
//! offchain credentials and base64 transport.
//!
//! Checked: decode → encode → decode is the identity; vetting never panics and agrees with
//! the price it quotes; prices, fees and expected values are never NaN or negative;
//! capability prices are found exactly when listed; offchain credentials carry the auth token.
#![no_main]

use gateway_core::capabilities::{build_capabilities, parse_capability_queries};
use gateway_core::error::VettingError;
use gateway_core::jobs::{lv2v_fee_wei, offchain_segment_credentials};
use gateway_core::lp_rpc::{self, OrchestratorInfo, PaymentResult, SegData};
use gateway_core::vetting::{vet_orchestrator_info, JobRequirements};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn sane(x: f64) -> bool {
    !x.is_nan() && x >= 0.0
}

fuzz_target!(|data: &[u8]| {
    if let Ok(result) = PaymentResult::decode(data) {
        let again = PaymentResult::decode(result.encode_to_vec().as_slice()).expect("re-decodes");
        assert_eq!(again, result);
    }
    let Ok(info) = OrchestratorInfo::decode(data) else { return };
    let again = OrchestratorInfo::decode(info.encode_to_vec().as_slice()).expect("re-decodes");
    assert_eq!(again, info, "protobuf round trip");
    let b64 = lp_rpc::to_base64(&info);
    assert_eq!(lp_rpc::from_base64::<OrchestratorInfo>("orchestrator info", &b64), Ok(info.clone()));

    // Vetting against requirements from nothing to everything.
    let queries = parse_capability_queries(["live-video-to-video/noop,byoc/text-reversal"]).unwrap();
    let caps = build_capabilities(&queries);
    let lv2v = build_capabilities(&queries[..1]);
    let maxima = [None, Some(0.0), Some(1.0), Some(1e30), Some(f64::NAN), Some(f64::INFINITY), Some(-1.0)];
    for capabilities in [None, Some(&lv2v), Some(&caps)] {
        for max in maxima {
            for paying in [false, true] {
                let requirements = JobRequirements { capabilities, max_price_wei_per_unit: max, paying };
                match vet_orchestrator_info(&info, &requirements) {
                    Ok(()) => {
                        assert!(!info.transcoder.trim().is_empty());
                        assert!(!paying || !info.charges() || info.ticket_params.is_some());
                        if let (Some(max), Some(p)) = (max, &info.price_info) {
                            if p.price_per_unit != 0 {
                                let per_unit = p.wei_per_unit().expect("an accepted price is usable");
                                assert!(per_unit <= max, "{per_unit} accepted above {max}");
                            }
                        }
                    }
                    Err(VettingError::PriceAboveMaximum { wei_per_unit, max_wei_per_unit, .. }) => {
                        assert!(max_wei_per_unit.is_nan() || wei_per_unit > max_wei_per_unit);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
            }
        }
    }

    // Prices, fees and ticket values.
    for price in info.price_info.iter().chain(&info.capabilities_prices) {
        if let Some(per_unit) = price.wei_per_unit() {
            assert!(per_unit.is_finite() && per_unit >= 0.0, "{price:?} -> {per_unit}");
        }
    }
    for seconds in [0.0, 1.0, 5.5, 60.0, -1.0, f64::NAN, f64::INFINITY, f64::MAX] {
        let fee = lv2v_fee_wei(&info, seconds);
        assert!(sane(fee), "fee {fee} for {seconds} s");
    }
    if let Some(t) = &info.ticket_params {
        let ev = t.expected_value_wei();
        assert!(ev.is_finite() && ev >= 0.0, "expected value {ev}");
    }
    for p in &info.capabilities_prices {
        let found = info.capability_price(p.capability, &p.constraint).expect("a listed price is found");
        assert_eq!((found.capability, &found.constraint), (p.capability, &p.constraint));
    }
    let _ = info.is_offchain();

    match offchain_segment_credentials(&info, Some("manifest")) {
        Ok(header) => {
            let seg: SegData = lp_rpc::from_base64("segment", &header).expect("our own header decodes");
            assert_eq!(seg.auth_token, info.auth_token);
            assert_eq!(seg.manifest_id, b"manifest");
        }
        Err(_) => assert!(info.auth_token.is_none()),
    }
});
