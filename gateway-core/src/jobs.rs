//! Orchestrator job endpoints: live video-to-video (LV2V) and BYOC streams and requests.
//!
//! Paths, headers and bodies of the calls a gateway makes on an orchestrator's HTTP port, and
//! the builders for the `Livepeer-Segment`, `Livepeer-Payment` and `Livepeer` header values.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{JobError, ProtoError};
use crate::lp_rpc::{self, OrchestratorInfo, SegData};

/// `POST`: start an LV2V session; answers [`LiveVideoToVideoResponse`].
pub const LIVE_VIDEO_TO_VIDEO_PATH: &str = "/live-video-to-video";
/// `POST`, empty body, payment headers: top up an LV2V session; answers protobuf `PaymentResult`.
pub const PAYMENT_PATH: &str = "/payment";
/// `GET` with [`HEADER_ETH_ADDRESS`] and [`HEADER_CAPABILITY`]: a BYOC [`JobToken`].
pub const PROCESS_TOKEN_PATH: &str = "/process/token";
/// Prefix of single-shot BYOC requests: `POST /process/request/{path...}`.
pub const PROCESS_REQUEST_PREFIX: &str = "/process/request/";
/// `POST`: start a BYOC stream; trickle URLs come back in `X-*-Url` headers.
pub const STREAM_START_PATH: &str = "/ai/stream/start";
/// `POST`: top up a BYOC stream; answers with [`HEADER_BALANCE`].
pub const STREAM_PAYMENT_PATH: &str = "/ai/stream/payment";
/// `POST`: update a BYOC stream's parameters.
pub const STREAM_UPDATE_PATH: &str = "/ai/stream/update";
/// `POST`: stop a BYOC stream.
pub const STREAM_STOP_PATH: &str = "/ai/stream/stop";

/// Header: base64 JSON [`JobRequest`] on BYOC calls.
pub const HEADER_JOB: &str = "Livepeer";
/// Header: BYOC capability name on `/process/token`.
pub const HEADER_CAPABILITY: &str = "Livepeer-Capability";
/// Header: base64 protobuf `Payment`.
pub const HEADER_PAYMENT: &str = "Livepeer-Payment";
/// Header: base64 protobuf `SegData` (credentials: auth token, manifest, capabilities).
pub const HEADER_SEGMENT: &str = "Livepeer-Segment";
/// Response header: the sender's remaining balance on the orchestrator (wei).
pub const HEADER_BALANCE: &str = "Livepeer-Balance";
/// Request header on `/process/token`: base64 JSON [`EthAddressHeader`].
pub const HEADER_ETH_ADDRESS: &str = "Livepeer-Eth-Address";
/// Authorization value go-livepeer gateways send on `/live-video-to-video` (not checked).
pub const AI_WORKER_AUTHORIZATION: &str = "Livepeer-AI-Worker-1.0";
/// Response header of `/ai/stream/start`: gateway → worker media channel.
pub const HEADER_PUBLISH_URL: &str = "X-Publish-Url";
/// Response header of `/ai/stream/start`: worker → gateway media channel.
pub const HEADER_SUBSCRIBE_URL: &str = "X-Subscribe-Url";
/// Response header of `/ai/stream/start`: control channel.
pub const HEADER_CONTROL_URL: &str = "X-Control-Url";
/// Response header of `/ai/stream/start`: events channel.
pub const HEADER_EVENTS_URL: &str = "X-Events-Url";
/// Response header of `/ai/stream/start`: data (JSON lines) channel.
pub const HEADER_DATA_URL: &str = "X-Data-Url";
/// Header carrying the stream id to a BYOC worker.
pub const HEADER_STREAM_ID: &str = "X-Stream-Id";

/// Status: the orchestrator wants payment (or more balance) before starting.
pub const STATUS_PAYMENT_REQUIRED: u16 = 402;

/// LV2V is billed per pixel of a 1280×720 stream at 30 fps: pixels per second of stream.
pub const LV2V_PIXELS_PER_SECOND: u64 = 1280 * 720 * 30;
/// How often a gateway pays for an LV2V stream.
pub const LV2V_PAYMENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How often a gateway tops up a BYOC stream.
pub const BYOC_PAYMENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(50);
/// An orchestrator refuses to start a BYOC job with less than this many seconds of credit.
pub const BYOC_MIN_BALANCE_SECONDS: u64 = 60;
/// `timeout_seconds` go-livepeer gateways put in BYOC stream payment jobs.
pub const BYOC_PAYMENT_JOB_TIMEOUT_SECONDS: u32 = 70;

/// Body of `/live-video-to-video`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveVideoToVideoRequest {
    /// Pipeline model (`noop` if empty).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub model_id: String,
    /// Initial pipeline parameters.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub params: Option<serde_json::Value>,
    /// Gateway's request id, passed on to the runner.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub gateway_request_id: Option<String>,
    /// Caller's stream id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stream_id: Option<String>,
}

/// Answer of `/live-video-to-video`: the session's four channels and its manifest id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveVideoToVideoResponse {
    /// Gateway → runner media (`/ai/trickle/{mid}`).
    pub publish_url: String,
    /// Runner → gateway media (`{mid}-out`).
    pub subscribe_url: String,
    /// Control channel (`{mid}-control`).
    #[serde(default)]
    pub control_url: String,
    /// Events channel (`{mid}-events`).
    #[serde(default)]
    pub events_url: String,
    /// The session's manifest id; payments must name it.
    #[serde(default)]
    pub manifest_id: String,
    /// Not filled by go-livepeer today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl LiveVideoToVideoResponse {
    /// Makes host-less URLs absolute against the orchestrator origin, as go-livepeer gateways do.
    pub fn absolutize(mut self, origin: &str) -> Self {
        let fix = |u: &mut String| {
            if u.starts_with('/') {
                *u = format!("{}{}", origin.trim_end_matches('/'), u);
            }
        };
        fix(&mut self.publish_url);
        fix(&mut self.subscribe_url);
        fix(&mut self.control_url);
        fix(&mut self.events_url);
        self
    }
}

/// Which orchestrators a BYOC job may use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchestratorFilter {
    /// Only these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// BYOC `parameters` JSON: which channels the worker gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobParameters {
    /// Orchestrator include/exclude lists.
    #[serde(default)]
    pub orchestrators: OrchestratorFilter,
    /// Gateway → worker media channel (`X-Publish-Url`).
    #[serde(default)]
    pub enable_video_ingress: bool,
    /// Worker → gateway media channel (`X-Subscribe-Url`).
    #[serde(default)]
    pub enable_video_egress: bool,
    /// Worker → gateway JSON lines channel (`X-Data-Url`).
    #[serde(default)]
    pub enable_data_output: bool,
}

/// The BYOC job description carried base64-encoded in the [`HEADER_JOB`] header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRequest {
    /// Job id; for streams, the stream id and channel base name.
    pub id: String,
    /// JSON string, e.g. `{"stream_id":"..."}`.
    pub request: String,
    /// JSON string of [`JobParameters`].
    pub parameters: String,
    /// Registered BYOC capability name.
    pub capability: String,
    /// Sender address (`0x…`), empty offchain.
    #[serde(default)]
    pub sender: String,
    /// Signature hex (`0x` + 130 hex) over the job, empty offchain.
    #[serde(default)]
    pub sig: String,
    /// Seconds the job may run; 0 is refused by orchestrators.
    pub timeout_seconds: u32,
}

impl JobRequest {
    /// The [`HEADER_JOB`] value: base64 of the JSON.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a [`HEADER_JOB`] value.
    pub fn from_header(value: &str) -> Result<JobRequest, JobError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| JobError::InvalidRequest(format!("Livepeer header is not base64: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| JobError::InvalidRequest(format!("Livepeer header is not a job request: {e}")))
    }

    /// The job's parameters.
    pub fn parameters(&self) -> Result<JobParameters, JobError> {
        if self.parameters.trim().is_empty() {
            return Ok(JobParameters::default());
        }
        serde_json::from_str(&self.parameters)
            .map_err(|e| JobError::InvalidRequest(format!("invalid job parameters: {e}")))
    }
}

/// [`HEADER_ETH_ADDRESS`] value: the signer's address and its signature over that string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EthAddressHeader {
    /// Address string exactly as the signer returned it (EIP-55 casing matters).
    pub addr: String,
    /// Signature hex over `addr`.
    pub sig: String,
}

impl EthAddressHeader {
    /// base64 of the JSON.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a header value.
    pub fn from_header(value: &str) -> Result<EthAddressHeader, JobError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| JobError::InvalidRequest(format!("Livepeer-Eth-Address is not base64: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| JobError::InvalidRequest(format!("Livepeer-Eth-Address is not JSON: {e}")))
    }
}

/// Price in a [`JobToken`]: wei per second = `price_per_unit / pixels_per_unit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPrice {
    /// Wei.
    #[serde(rename = "pricePerUnit", default)]
    pub price_per_unit: i64,
    /// Units the price covers.
    #[serde(rename = "pixelsPerUnit", default)]
    pub pixels_per_unit: i64,
}

/// Answer of `/process/token`: what a BYOC capability costs this sender, and its balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobToken {
    /// The sender as the orchestrator saw it.
    #[serde(default)]
    pub sender_address: Option<EthAddressHeader>,
    /// Ticket parameters (protobuf JSON form), absent offchain.
    #[serde(default)]
    pub ticket_params: Option<serde_json::Value>,
    /// Sender's balance in wei (integer part).
    #[serde(default)]
    pub balance: i64,
    /// Price.
    #[serde(default)]
    pub price: Option<JobPrice>,
    /// Orchestrator service address.
    #[serde(default)]
    pub service_addr: String,
    /// Free capacity for the capability.
    #[serde(default)]
    pub available_capacity: i64,
}

/// The trickle channels a BYOC stream start announced in `X-*-Url` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamUrls {
    /// Gateway → worker media.
    pub publish_url: Option<String>,
    /// Worker → gateway media.
    pub subscribe_url: Option<String>,
    /// Control (gateway → worker JSON).
    pub control_url: Option<String>,
    /// Events (worker → gateway JSON).
    pub events_url: Option<String>,
    /// Data (worker → gateway JSON lines).
    pub data_url: Option<String>,
}

impl StreamUrls {
    /// Reads the `X-*-Url` headers through `get`; empty values count as absent.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> StreamUrls {
        let read = |name| get(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        StreamUrls {
            publish_url: read(HEADER_PUBLISH_URL),
            subscribe_url: read(HEADER_SUBSCRIBE_URL),
            control_url: read(HEADER_CONTROL_URL),
            events_url: read(HEADER_EVENTS_URL),
            data_url: read(HEADER_DATA_URL),
        }
    }
}

/// `Livepeer-Segment` for an offchain orchestrator: a `SegData` with only the orchestrator's
/// auth token (and the manifest id when known), as the Python SDK sends when there is no signer.
pub fn offchain_segment_credentials(
    info: &OrchestratorInfo,
    manifest_id: Option<&str>,
) -> Result<String, ProtoError> {
    let auth_token = info
        .auth_token
        .clone()
        .ok_or(ProtoError::MissingField { what: "orchestrator info", field: "auth_token" })?;
    let seg = SegData {
        manifest_id: manifest_id.map(|m| m.as_bytes().to_vec()).unwrap_or_default(),
        auth_token: Some(auth_token),
        ..Default::default()
    };
    Ok(lp_rpc::to_base64(&seg))
}

/// Wei an orchestrator will charge for `seconds` of LV2V at `info`'s price. Never NaN and never
/// negative: an unusable price counts as free, and NaN or negative `seconds` as none.
pub fn lv2v_fee_wei(info: &OrchestratorInfo, seconds: f64) -> f64 {
    let seconds = if seconds.is_nan() { 0.0 } else { seconds.clamp(0.0, f64::MAX) };
    info.price_info.as_ref().and_then(|p| p.wei_per_unit()).unwrap_or(0.0)
        * LV2V_PIXELS_PER_SECOND as f64
        * seconds
}

/// Headers as an ordered map, for callers that build requests from them.
pub type HeaderList = BTreeMap<&'static str, String>;

/// The payment headers of a request: `Livepeer-Payment` and `Livepeer-Segment`.
pub fn payment_headers(payment: &str, segment: &str) -> HeaderList {
    let mut h = HeaderList::new();
    h.insert(HEADER_PAYMENT, payment.to_owned());
    h.insert(HEADER_SEGMENT, segment.to_owned());
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lp_rpc::{AuthToken, PriceInfo};
    use proptest::prelude::*;

    #[test]
    fn lv2v_bodies() {
        let req = LiveVideoToVideoRequest {
            model_id: "noop".into(),
            params: Some(serde_json::json!({"prompt":"x"})),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"model_id":"noop","params":{"prompt":"x"}})
        );
        let resp: LiveVideoToVideoResponse = serde_json::from_str(
            r#"{"publish_url":"/ai/trickle/ab","subscribe_url":"https://o/ai/trickle/ab-out","control_url":"/ai/trickle/ab-control","events_url":"/ai/trickle/ab-events","manifest_id":"ab"}"#,
        )
        .unwrap();
        let resp = resp.absolutize("https://o:8935/");
        assert_eq!(resp.publish_url, "https://o:8935/ai/trickle/ab");
        assert_eq!(resp.subscribe_url, "https://o/ai/trickle/ab-out");
    }

    #[test]
    fn job_header_round_trip() {
        let params =
            JobParameters { enable_video_ingress: true, enable_data_output: true, ..Default::default() };
        let job = JobRequest {
            id: "stream-1".into(),
            request: r#"{"stream_id":"stream-1"}"#.into(),
            parameters: serde_json::to_string(&params).unwrap(),
            capability: "text-reversal".into(),
            sender: "0xabc".into(),
            sig: "0x00".into(),
            timeout_seconds: 70,
        };
        let back = JobRequest::from_header(&job.to_header()).unwrap();
        assert_eq!(back, job);
        assert_eq!(back.parameters().unwrap(), params);
        assert!(JobRequest::from_header("***").is_err());
        assert!(JobRequest::from_header(&base64::engine::general_purpose::STANDARD.encode("[]")).is_err());
    }

    #[test]
    fn stream_urls_from_headers() {
        let urls = StreamUrls::from_headers(|name| match name {
            HEADER_PUBLISH_URL => Some("https://o/ai/trickle/s"),
            HEADER_DATA_URL => Some(" "),
            _ => None,
        });
        assert_eq!(urls.publish_url.as_deref(), Some("https://o/ai/trickle/s"));
        assert_eq!(urls.data_url, None);
    }

    #[test]
    fn offchain_credentials_carry_the_auth_token() {
        let info = OrchestratorInfo {
            auth_token: Some(AuthToken { token: vec![1, 2, 3], session_id: "s".into(), expiration: 9 }),
            ..Default::default()
        };
        let header = offchain_segment_credentials(&info, Some("mid1")).unwrap();
        let seg: SegData = lp_rpc::from_base64("segment", &header).unwrap();
        assert_eq!(seg.auth_token.unwrap().token, vec![1, 2, 3]);
        assert_eq!(seg.manifest_id, b"mid1");
        assert!(offchain_segment_credentials(&OrchestratorInfo::default(), None).is_err());
    }

    #[test]
    fn lv2v_fee() {
        let info = OrchestratorInfo {
            price_info: Some(PriceInfo { price_per_unit: 1, pixels_per_unit: 1, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(lv2v_fee_wei(&info, 2.0), 2.0 * 27_648_000.0);
        assert_eq!(lv2v_fee_wei(&OrchestratorInfo::default(), 5.0), 0.0);
    }

    /// Regression (fuzz target `orchestrator_info`): a hostile price or a bad duration gave a
    /// negative or NaN fee.
    #[test]
    fn lv2v_fee_is_never_negative_or_nan() {
        let priced = |price_per_unit, pixels_per_unit| OrchestratorInfo {
            price_info: Some(PriceInfo { price_per_unit, pixels_per_unit, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(lv2v_fee_wei(&priced(1, -1), 2.0), 0.0);
        assert_eq!(lv2v_fee_wei(&priced(-1, 1), 2.0), 0.0);
        assert_eq!(lv2v_fee_wei(&priced(i64::MIN, -1), 2.0), 0.0);
        assert_eq!(lv2v_fee_wei(&priced(0, 1), f64::INFINITY), 0.0);
        assert_eq!(lv2v_fee_wei(&priced(1, 1), f64::NAN), 0.0);
        assert_eq!(lv2v_fee_wei(&priced(1, 1), -3.0), 0.0);
        assert!(lv2v_fee_wei(&priced(i64::MAX, 1), f64::INFINITY) > 0.0);
    }

    proptest! {
        #[test]
        fn eth_address_header_round_trip(addr in "0x[0-9a-fA-F]{40}", sig in "0x[0-9a-f]{130}") {
            let h = EthAddressHeader { addr, sig };
            prop_assert_eq!(EthAddressHeader::from_header(&h.to_header()).unwrap(), h);
        }

        #[test]
        fn job_header_never_panics(s in "\\PC{0,60}") {
            let _ = JobRequest::from_header(&s);
            let _ = EthAddressHeader::from_header(&s);
        }
    }
}
