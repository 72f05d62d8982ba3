//! The remote signer's HTTP API: request and response bodies, status codes, the BYOC V1 job
//! encoding.
//!
//! A remote signer holds the Ethereum key for a key-less gateway. It signs the gateway's
//! identity (`/sign-orchestrator-info`), mints payment tickets (`/generate-live-payment`),
//! signs BYOC jobs (`/sign-byoc-job`) and can list orchestrators (`/discover-orchestrators`).
//! It is stateless: the caller carries the opaque [`SignerState`] from one payment to the next.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{body_excerpt, SignerError};

/// `POST`, empty JSON object body: the gateway's address and its signature over that address.
pub const SIGN_ORCHESTRATOR_INFO_PATH: &str = "/sign-orchestrator-info";
/// `POST` [`GenerateLivePaymentRequest`]: tickets and credentials for one payment.
pub const GENERATE_LIVE_PAYMENT_PATH: &str = "/generate-live-payment";
/// `POST` [`SignByocJobRequest`]: signature over a BYOC job's V1 encoding.
pub const SIGN_BYOC_JOB_PATH: &str = "/sign-byoc-job";
/// `GET`, optional repeated `caps=pipeline/model`: orchestrators the signer knows.
pub const DISCOVER_ORCHESTRATORS_PATH: &str = "/discover-orchestrators";
/// Query parameter for capability filters on discovery endpoints.
pub const DISCOVERY_CAPS_PARAM: &str = "caps";

/// Status: orchestrator info is stale (auth token near expiry or ticket params expired); refresh it.
pub const STATUS_REFRESH_SESSION: u16 = 480;
/// Status: the orchestrator's price exceeds the configured maximum or the session's initial price.
pub const STATUS_PRICE_EXCEEDED: u16 = 481;
/// Status: no tickets needed this cycle; the prepaid credit covers it.
pub const STATUS_NO_TICKETS: u16 = 482;
/// Response header on 480 naming the orchestrator to refresh.
pub const HEADER_ORCHESTRATOR_URL: &str = "Livepeer-Orchestrator-URL";

/// Seconds of LV2V usage the signer bills on the first payment of a session.
pub const LV2V_INITIAL_PAYMENT_SECONDS: u64 = 60;
/// Seconds a BYOC payment preloads at least (the orchestrator wants 60 s of credit to start).
pub const BYOC_MIN_PRELOAD_SECONDS: u32 = 60;
/// Most tickets one signer call may mint before it refuses with 400.
pub const MAX_TICKETS_PER_PAYMENT: u32 = 100;

/// The 16-byte domain separator of the BYOC V1 job encoding (14 ASCII bytes and two NULs).
pub const BYOC_JOB_V1_PREFIX: &[u8; 16] = b"LP_BYOC_JOB_V1\0\0";

/// Answer of `/sign-orchestrator-info`. `address` must be passed on exactly as received (its
/// EIP-55 casing is what the signature covers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOrchestratorInfoResponse {
    /// `0x` + EIP-55 checksummed address.
    pub address: String,
    /// `0x` + 65-byte signature hex.
    pub signature: String,
}

/// The signer identity as the gRPC `OrchestratorRequest` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerIdentity {
    /// The address string exactly as the signer returned it.
    pub address: String,
    /// 20 address bytes.
    pub address_bytes: [u8; 20],
    /// 65 signature bytes.
    pub signature: Vec<u8>,
}

impl SignOrchestratorInfoResponse {
    /// Validates the hex fields and decodes them.
    pub fn identity(&self) -> Result<SignerIdentity, SignerError> {
        let invalid =
            |reason: String| SignerError::InvalidResponse { endpoint: SIGN_ORCHESTRATOR_INFO_PATH, reason };
        let address_bytes = crate::eth::parse_address(&self.address)
            .ok_or_else(|| invalid(format!("address {:?} is not 20 hex bytes", self.address)))?;
        let signature =
            crate::eth::parse_hex(&self.signature).ok_or_else(|| invalid("signature is not hex".into()))?;
        if signature.len() != 65 {
            return Err(invalid(format!("signature is {} bytes, expected 65", signature.len())));
        }
        Ok(SignerIdentity { address: self.address.clone(), address_bytes, signature })
    }
}

/// The opaque state blob a signer returns with every payment and expects back on the next call
/// of the same session. Kept as raw JSON so it round-trips byte for byte in meaning, whatever
/// shape the signer uses (go-livepeer's is `{"State": base64, "Sig": base64}`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SignerState(pub serde_json::Value);

impl fmt::Debug for SignerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerState(<{} bytes>)", self.0.to_string().len())
    }
}

/// What a payment pays for; decides how the signer counts billable units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentType {
    /// Live video-to-video: seconds × 1280×720×30 pixels (first call 60 s).
    #[serde(rename = "lv2v")]
    Lv2v,
    /// Per second of a live session (first call 10 s).
    #[serde(rename = "live")]
    Live,
    /// One fixed unit.
    #[serde(rename = "fixed")]
    Fixed,
    /// BYOC: seconds, with `preloadSeconds` on the first call.
    #[serde(rename = "byoc")]
    Byoc,
    /// Explicit pixel count in `inPixels`.
    #[serde(rename = "")]
    Pixels,
}

/// A price ceiling sent with a payment request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxPrice {
    /// Decimal amount.
    pub price: f64,
    /// Always `wei` today.
    pub currency: String,
    /// `seconds`, `720p-pixel-seconds` or `fixed`, matching the payment type.
    pub unit: String,
}

/// Body of `/generate-live-payment`. Key spellings follow go-livepeer (`ManifestID` has no JSON
/// tag there, so Go emits the field name; its decoder also accepts any casing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateLivePaymentRequest {
    /// Base64 protobuf `OrchestratorInfo`, as received from `GetOrchestrator` (or refreshed).
    pub orchestrator: String,
    /// The previous response's state; absent on a session's first call.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<SignerState>,
    /// The orchestrator's manifest id for the session (LV2V) once known.
    #[serde(rename = "ManifestID", skip_serializing_if = "Option::is_none", default)]
    pub manifest_id: Option<String>,
    /// Optional application label, pinned in the state.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub app: Option<String>,
    /// Billable pixels for [`PaymentType::Pixels`].
    #[serde(rename = "inPixels", skip_serializing_if = "Option::is_none", default)]
    pub in_pixels: Option<i64>,
    /// Payment type.
    #[serde(rename = "type")]
    pub payment_type: PaymentType,
    /// Optional price ceiling.
    #[serde(rename = "maxPrice", skip_serializing_if = "Option::is_none", default)]
    pub max_price: Option<MaxPrice>,
    /// Base64 protobuf `Capabilities` of the job.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capabilities: Option<String>,
    /// BYOC: seconds to preload on the first call (the signer uses at least 60).
    #[serde(rename = "preloadSeconds", skip_serializing_if = "Option::is_none", default)]
    pub preload_seconds: Option<u32>,
    /// Caller's id for this call, for correlating logs across gateway and signer.
    #[serde(rename = "RequestID", skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
}

/// Answer of `/generate-live-payment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerateLivePaymentResponse {
    /// Base64 protobuf `Payment`: the `Livepeer-Payment` header value.
    pub payment: String,
    /// Base64 protobuf `SegData`: the `Livepeer-Segment` header value.
    #[serde(rename = "segCreds", default)]
    pub seg_creds: String,
    /// State to send back on the next call.
    pub state: SignerState,
}

/// Body of `/sign-byoc-job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignByocJobRequest {
    /// Job (stream) id.
    pub id: String,
    /// Registered BYOC capability name.
    pub capability: String,
    /// The job's request JSON, as a string.
    pub request: String,
    /// The job's parameters JSON, as a string.
    pub parameters: String,
    /// Job timeout, 1..=u32::MAX seconds.
    pub timeout_seconds: u32,
}

/// Answer of `/sign-byoc-job`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignByocJobResponse {
    /// `0x` checksummed signer address.
    pub sender: String,
    /// `0x` + 65-byte signature hex over the V1 encoding.
    pub signature: String,
}

/// One entry of a discovery answer (`/discover-orchestrators` or a discovery webhook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredOrchestrator {
    /// Orchestrator service URL.
    pub address: String,
    /// Ranking score, higher is better.
    #[serde(default)]
    pub score: Option<f64>,
    /// `pipeline/model` strings it serves.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// Parses a discovery answer: a JSON list whose objects have a non-empty `address`; other
/// entries are skipped as the Python SDK does.
pub fn parse_discovery_response(body: &[u8]) -> Result<Vec<DiscoveredOrchestrator>, SignerError> {
    let invalid =
        |reason: String| SignerError::InvalidResponse { endpoint: DISCOVER_ORCHESTRATORS_PATH, reason };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let serde_json::Value::Array(items) = value else {
        return Err(invalid("expected a JSON list".into()));
    };
    Ok(items
        .into_iter()
        .filter_map(|item| serde_json::from_value::<DiscoveredOrchestrator>(item).ok())
        .filter(|o| !o.address.trim().is_empty())
        .collect())
}

/// The signer's error body: `{"error": {"message": "..."}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorMessage,
}

#[derive(Debug, Deserialize)]
struct ErrorMessage {
    message: String,
}

/// The human message of a signer error body, or the start of the raw body.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| body_excerpt(body, 500))
}

/// go-livepeer master's `/generate-live-payment` message for a payment type it lacks (`byoc`).
pub const INVALID_JOB_TYPE_MESSAGE: &str = "invalid job type";

/// Maps a signer HTTP status to success or a typed error. A signer without BYOC support
/// (go-livepeer master: no `/sign-byoc-job` route, no `byoc` payment type) is
/// [`SignerError::Unsupported`].
pub fn check_status(
    endpoint: &'static str,
    status: u16,
    orchestrator_url_header: Option<&str>,
    body: &[u8],
) -> Result<(), SignerError> {
    match status {
        200..=299 => Ok(()),
        STATUS_REFRESH_SESSION => Err(SignerError::RefreshRequired {
            orchestrator_url: orchestrator_url_header.map(str::to_owned).filter(|s| !s.is_empty()),
        }),
        STATUS_PRICE_EXCEEDED => Err(SignerError::PriceExceeded { message: error_message(body) }),
        STATUS_NO_TICKETS => Err(SignerError::SkipCycle),
        404 | 405 if endpoint == SIGN_BYOC_JOB_PATH => {
            Err(SignerError::Unsupported { what: "BYOC job signing", endpoint, status })
        }
        400 if endpoint == GENERATE_LIVE_PAYMENT_PATH && error_message(body) == INVALID_JOB_TYPE_MESSAGE => {
            Err(SignerError::Unsupported { what: "this payment type (byoc)", endpoint, status })
        }
        _ => Err(SignerError::Http { status, endpoint, message: error_message(body) }),
    }
}

/// The bytes a BYOC V1 job signature covers:
/// `prefix(16) ‖ timeout(u32 BE) ‖ for id, capability, request, parameters: len(u32 BE) ‖ bytes`.
pub fn byoc_job_v1_encoding(job: &SignByocJobRequest) -> Result<Vec<u8>, SignerError> {
    if job.id.is_empty() {
        return Err(SignerError::InvalidRequest("BYOC job id must not be empty".into()));
    }
    if job.capability.is_empty() {
        return Err(SignerError::InvalidRequest("BYOC capability must not be empty".into()));
    }
    if job.timeout_seconds == 0 {
        return Err(SignerError::InvalidRequest("BYOC timeout_seconds must be positive".into()));
    }
    let fields = [&job.id, &job.capability, &job.request, &job.parameters];
    let mut out = Vec::with_capacity(20 + fields.iter().map(|f| 4 + f.len()).sum::<usize>());
    out.extend_from_slice(BYOC_JOB_V1_PREFIX);
    out.extend_from_slice(&job.timeout_seconds.to_be_bytes());
    for field in fields {
        let len = u32::try_from(field.len())
            .map_err(|_| SignerError::InvalidRequest("BYOC job field longer than 4 GiB".into()))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn payment_request_key_spelling() {
        let req = GenerateLivePaymentRequest {
            orchestrator: "b64".into(),
            state: Some(SignerState(serde_json::json!({"State": "s", "Sig": "g"}))),
            manifest_id: Some("abcd1234".into()),
            app: None,
            in_pixels: None,
            payment_type: PaymentType::Byoc,
            max_price: None,
            capabilities: Some("caps".into()),
            preload_seconds: Some(90),
            request_id: Some("r1".into()),
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "orchestrator": "b64", "state": {"State": "s", "Sig": "g"}, "ManifestID": "abcd1234",
                "type": "byoc", "capabilities": "caps", "preloadSeconds": 90, "RequestID": "r1"
            })
        );
        let lv2v = GenerateLivePaymentRequest {
            payment_type: PaymentType::Lv2v,
            state: None,
            manifest_id: None,
            ..req
        };
        let v = serde_json::to_value(&lv2v).unwrap();
        assert_eq!(v["type"], "lv2v");
        assert!(v.get("state").is_none() && v.get("ManifestID").is_none());
    }

    #[test]
    fn state_round_trips_verbatim() {
        let body =
            br#"{"payment":"p","segCreds":"s","state":{"State":"eyJ4IjoxfQ==","Sig":"AAEC","extra":[1,2]}}"#;
        let resp: GenerateLivePaymentResponse = serde_json::from_slice(body).unwrap();
        assert_eq!(resp.state.0["extra"], serde_json::json!([1, 2]));
        let again = serde_json::to_value(&resp.state).unwrap();
        assert_eq!(again, serde_json::json!({"State":"eyJ4IjoxfQ==","Sig":"AAEC","extra":[1,2]}));
        assert!(!format!("{:?}", resp.state).contains("eyJ4"), "Debug hides the blob");
    }

    #[test]
    fn status_codes_map_to_typed_errors() {
        assert_eq!(check_status(GENERATE_LIVE_PAYMENT_PATH, 200, None, b""), Ok(()));
        assert_eq!(
            check_status(GENERATE_LIVE_PAYMENT_PATH, 480, Some("https://o:8935"), b""),
            Err(SignerError::RefreshRequired { orchestrator_url: Some("https://o:8935".into()) })
        );
        assert_eq!(
            check_status(GENERATE_LIVE_PAYMENT_PATH, 481, None, br#"{"error":{"message":"price too high"}}"#),
            Err(SignerError::PriceExceeded { message: "price too high".into() })
        );
        assert_eq!(check_status(GENERATE_LIVE_PAYMENT_PATH, 482, None, b""), Err(SignerError::SkipCycle));
        let e =
            check_status(GENERATE_LIVE_PAYMENT_PATH, 400, None, b"numTickets 101 exceeds maximum of 100\n")
                .unwrap_err();
        assert_eq!(
            e.to_string(),
            "signer returned HTTP 400 for /generate-live-payment: numTickets 101 exceeds maximum of 100"
        );
    }

    #[test]
    fn identity_validation() {
        let ok = SignOrchestratorInfoResponse {
            address: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed".into(),
            signature: format!("0x{}", "ab".repeat(65)),
        };
        let id = ok.identity().unwrap();
        assert_eq!(id.signature.len(), 65);
        assert_eq!(id.address, ok.address);
        let short = SignOrchestratorInfoResponse { signature: "0xabcd".into(), ..ok.clone() };
        assert!(short.identity().unwrap_err().to_string().contains("2 bytes, expected 65"));
        let bad = SignOrchestratorInfoResponse { address: "0x12".into(), ..ok };
        assert!(matches!(bad.identity(), Err(SignerError::InvalidResponse { .. })));
    }

    #[test]
    fn discovery_parsing() {
        let body = br#"[{"address":"https://a:8935","score":0.5,"capabilities":["byoc/x"]},{"address":""},{"nope":1},3]"#;
        let list = parse_discovery_response(body).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].capabilities, ["byoc/x"]);
        assert!(parse_discovery_response(b"{}").is_err());
        assert!(parse_discovery_response(b"nope").is_err());
    }

    /// Vectors derived by hand from the layout, byte by byte.
    #[test]
    fn byoc_v1_encoding_vectors() {
        let job = SignByocJobRequest {
            id: "s1".into(),
            capability: "tr".into(),
            request: "{}".into(),
            parameters: "".into(),
            timeout_seconds: 70,
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(b"LP_BYOC_JOB_V1");
        expected.extend_from_slice(&[0, 0]); // prefix padding to 16 bytes
        expected.extend_from_slice(&[0, 0, 0, 70]); // timeout 70 s
        expected.extend_from_slice(&[0, 0, 0, 2, b's', b'1']);
        expected.extend_from_slice(&[0, 0, 0, 2, b't', b'r']);
        expected.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(byoc_job_v1_encoding(&job).unwrap(), expected);
        assert_eq!(expected.len(), 16 + 4 + 6 + 6 + 6 + 4);

        // Multi-byte UTF-8 counts bytes, and a large timeout is big-endian.
        let job = SignByocJobRequest { id: "é".into(), timeout_seconds: 0x0102_0304, ..job };
        let enc = byoc_job_v1_encoding(&job).unwrap();
        assert_eq!(&enc[16..20], &[1, 2, 3, 4]);
        assert_eq!(&enc[20..26], &[0, 0, 0, 2, 0xc3, 0xa9]);
    }

    #[test]
    fn byoc_v1_rejects_bad_jobs() {
        let job = SignByocJobRequest {
            id: "".into(),
            capability: "c".into(),
            request: "".into(),
            parameters: "".into(),
            timeout_seconds: 1,
        };
        assert!(byoc_job_v1_encoding(&job).is_err());
        let job = SignByocJobRequest { id: "i".into(), capability: "".into(), ..job };
        assert!(byoc_job_v1_encoding(&job).is_err());
        let job = SignByocJobRequest { capability: "c".into(), timeout_seconds: 0, ..job };
        assert!(byoc_job_v1_encoding(&job).is_err());
    }

    proptest! {
        #[test]
        fn byoc_v1_decodes_back(id in "\\PC{1,20}", cap in "[a-z-]{1,12}", req in "\\PC{0,40}", params in "\\PC{0,40}", timeout in 1u32..) {
            let job = SignByocJobRequest { id, capability: cap, request: req, parameters: params, timeout_seconds: timeout };
            let enc = byoc_job_v1_encoding(&job).unwrap();
            prop_assert_eq!(&enc[..16], BYOC_JOB_V1_PREFIX);
            prop_assert_eq!(u32::from_be_bytes(enc[16..20].try_into().unwrap()), timeout);
            let mut at = 20;
            let mut fields = Vec::new();
            for _ in 0..4 {
                let len = u32::from_be_bytes(enc[at..at + 4].try_into().unwrap()) as usize;
                at += 4;
                fields.push(String::from_utf8(enc[at..at + len].to_vec()).unwrap());
                at += len;
            }
            prop_assert_eq!(at, enc.len());
            prop_assert_eq!(fields, vec![job.id, job.capability, job.request, job.parameters]);
        }
    }
}
