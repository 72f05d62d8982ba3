//! Every parser of a remote signer's answers on any body: `/sign-orchestrator-info` (and the
//! identity decoded from it), `/generate-live-payment` (and its opaque state blob),
//! `/sign-byoc-job`, discovery lists, error bodies and status mapping, plus the request bodies
//! the local signer double parses.
//!
//! Checked: what parses serialises and parses back to the same; an identity has 20 address
//! bytes matching its text and a 65-byte signature; discovery entries all have an address;
//! error excerpts are bounded; each status maps to its typed error; `SignerState`'s `Debug`
//! shows only a length; the BYOC V1 encoding has the length its fields say.
#![no_main]

use gateway_core::error::SignerError;
use gateway_core::signer::{
    byoc_job_v1_encoding, check_status, error_message, parse_discovery_response, GenerateLivePaymentRequest,
    GenerateLivePaymentResponse, SignByocJobRequest, SignByocJobResponse, SignOrchestratorInfoResponse,
    SignerState, BYOC_JOB_V1_PREFIX, GENERATE_LIVE_PAYMENT_PATH, INVALID_JOB_TYPE_MESSAGE, STATUS_NO_TICKETS,
    STATUS_PRICE_EXCEEDED, STATUS_REFRESH_SESSION,
};
use libfuzzer_sys::fuzz_target;

/// An error excerpt is at most 500 bytes of body, each possibly widened to a 3-byte U+FFFD.
const MAX_EXCERPT: usize = 3 * 500 + 3;

fn round_trip<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let text = serde_json::to_string(value).expect("serialises");
    let back: T = serde_json::from_str(&text).expect("parses back");
    assert_eq!(&back, value);
}

fuzz_target!(|body: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<SignOrchestratorInfoResponse>(body) {
        round_trip(&r);
        match r.identity() {
            Ok(id) => {
                assert_eq!(id.address, r.address);
                assert_eq!(Some(id.address_bytes), gateway_core::eth::parse_address(&r.address));
                assert_eq!(id.signature.len(), 65);
            }
            Err(SignerError::InvalidResponse { .. }) => {}
            Err(other) => panic!("unexpected identity error {other:?}"),
        }
    }

    if let Ok(r) = serde_json::from_slice::<GenerateLivePaymentResponse>(body) {
        // The state may hold floats, which JSON text does not round-trip bit for bit: compare
        // the strings, and the state's shape after one normalising pass.
        let text = serde_json::to_string(&r).expect("serialises");
        let back: GenerateLivePaymentResponse = serde_json::from_str(&text).expect("parses back");
        assert_eq!((&back.payment, &back.seg_creds), (&r.payment, &r.seg_creds));
        let shown = format!("{:?}", r.state);
        assert!(shown.starts_with("SignerState(<") && shown.ends_with(" bytes>)"), "{shown}");
    }

    if let Ok(state) = serde_json::from_slice::<SignerState>(body) {
        let shown = format!("{state:?}");
        assert_eq!(shown, format!("SignerState(<{} bytes>)", state.0.to_string().len()));
    }

    if let Ok(r) = serde_json::from_slice::<SignByocJobResponse>(body) {
        round_trip(&r);
    }

    if let Ok(job) = serde_json::from_slice::<SignByocJobRequest>(body) {
        round_trip(&job);
        match byoc_job_v1_encoding(&job) {
            Ok(bytes) => {
                let fields = [&job.id, &job.capability, &job.request, &job.parameters];
                assert_eq!(bytes.len(), 20 + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
                assert_eq!(&bytes[..16], BYOC_JOB_V1_PREFIX);
                assert_eq!(&bytes[16..20], &job.timeout_seconds.to_be_bytes());
            }
            Err(SignerError::InvalidRequest(_)) => {
                assert!(job.id.is_empty() || job.capability.is_empty() || job.timeout_seconds == 0);
            }
            Err(other) => panic!("unexpected encoding error {other:?}"),
        }
    }

    if let Ok(req) = serde_json::from_slice::<GenerateLivePaymentRequest>(body) {
        let text = serde_json::to_string(&req).expect("serialises");
        let back: GenerateLivePaymentRequest = serde_json::from_str(&text).expect("parses back");
        assert_eq!((&back.orchestrator, back.payment_type), (&req.orchestrator, req.payment_type));
        assert_eq!((&back.manifest_id, back.in_pixels), (&req.manifest_id, req.in_pixels));
    }

    match parse_discovery_response(body) {
        Ok(list) => {
            for o in &list {
                assert!(!o.address.trim().is_empty());
            }
        }
        Err(SignerError::InvalidResponse { .. }) => {}
        Err(other) => panic!("unexpected discovery error {other:?}"),
    }

    let message = error_message(body);
    let structured = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_owned));
    if structured.is_none() {
        assert!(message.len() <= MAX_EXCERPT, "excerpt of {} bytes", message.len());
    }

    // Status mapping, with the body as the orchestrator URL header too.
    let header = std::str::from_utf8(body).ok().filter(|s| s.len() < 200);
    let status = body.first().map_or(200, |b| 200 + u16::from(*b) * 2);
    for status in [
        200,
        204,
        400,
        429,
        500,
        503,
        STATUS_REFRESH_SESSION,
        STATUS_PRICE_EXCEEDED,
        STATUS_NO_TICKETS,
        status,
    ] {
        match check_status(GENERATE_LIVE_PAYMENT_PATH, status, header, body) {
            Ok(()) => assert!((200..300).contains(&status)),
            Err(e) => {
                assert!(!(200..300).contains(&status));
                match &e {
                    SignerError::RefreshRequired { orchestrator_url } => {
                        assert_eq!(status, STATUS_REFRESH_SESSION);
                        assert_eq!(orchestrator_url.as_deref(), header.filter(|h| !h.is_empty()));
                    }
                    SignerError::PriceExceeded { .. } => assert_eq!(status, STATUS_PRICE_EXCEEDED),
                    SignerError::SkipCycle => assert_eq!(status, STATUS_NO_TICKETS),
                    // go-livepeer master refusing payment type `byoc`.
                    SignerError::Unsupported { status: s, .. } => {
                        assert_eq!((*s, error_message(body).as_str()), (400, INVALID_JOB_TYPE_MESSAGE));
                        assert!(!e.is_retryable());
                    }
                    SignerError::Http { status: s, .. } => {
                        assert_eq!(*s, status);
                        assert_eq!(e.is_retryable(), status >= 500 || status == 429 || status == 408);
                    }
                    other => panic!("unexpected status error {other:?}"),
                }
                let _ = e.to_string();
            }
        }
    }
});
