//! Orchestrator job endpoints: live video-to-video (LV2V) and BYOC streams and requests.
//!
//! Paths, headers and bodies of the calls a gateway makes on an orchestrator's HTTP port, and
//! the builders for the `Livepeer-Segment`, `Livepeer-Payment` and `Livepeer` header values.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::go_json::{self, is_zero, null_as_default};
use crate::lp_rpc::ProtoError;
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
/// Largest `/ai/stream/update` body go's gateway passes on (`UpdateStream`: 10 MB).
pub const MAX_STREAM_UPDATE_BYTES: usize = 10 << 20;
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
/// Response header of a single-shot answer streamed as server-sent events: the sender's balance
/// before the request (go names it differently from [`HEADER_BALANCE`] there).
pub const HEADER_PAYMENT_BALANCE: &str = "Livepeer-Payment-Balance";
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
/// go's BYOC gateway waits this long beyond a job's `timeout_seconds` for an orchestrator's
/// answer (`byoc/job_gateway.go`, `sendJobToOrch`).
pub const BYOC_START_GRACE_SECONDS: u64 = 5;
/// go's BYOC gateway reads a server-sent-event answer for at most this long beyond the job's
/// `timeout_seconds`.
pub const BYOC_STREAM_GRACE_SECONDS: u64 = 10;
/// `timeout_seconds` go-livepeer gateways put in BYOC stream payment jobs.
pub const BYOC_PAYMENT_JOB_TIMEOUT_SECONDS: u32 = 70;

/// go's BYOC orchestrators answer 400 with this text when a job's signature does not verify
/// (`byoc/types.go`, `errNoJobCreds`).
pub const ERR_NO_JOB_CREDS: &str = "Could not verify job creds";

/// Added to a refusal with [`ERR_NO_JOB_CREDS`] of a job a remote signer signed: the two go
/// versions verify different signatures, and neither accepts the other's.
pub const JOB_CREDS_VERSION_HINT: &str = " (jobs signed by a remote signer's /sign-byoc-job use the V1 encoding of go-livepeer PR #3869; an orchestrator on go-livepeer master verifies the older request+parameters signature and refuses them)";

/// Whether an orchestrator's answer is go's refusal of a job's signature.
pub fn is_job_creds_refusal(status: u16, body: &[u8]) -> bool {
    status == 400 && std::str::from_utf8(body).is_ok_and(|b| b.trim_end() == ERR_NO_JOB_CREDS)
}

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
#[serde(default)]
pub struct OrchestratorFilter {
    /// Only these.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub include: Vec<String>,
    /// Never these.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub exclude: Vec<String>,
}

/// BYOC `parameters` JSON: which channels the worker gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobParameters {
    /// Orchestrator include/exclude lists.
    #[serde(deserialize_with = "null_as_default")]
    pub orchestrators: OrchestratorFilter,
    /// Gateway → worker media channel (`X-Publish-Url`).
    #[serde(deserialize_with = "null_as_default")]
    pub enable_video_ingress: bool,
    /// Worker → gateway media channel (`X-Subscribe-Url`).
    #[serde(deserialize_with = "null_as_default")]
    pub enable_video_egress: bool,
    /// Worker → gateway JSON lines channel (`X-Data-Url`).
    #[serde(deserialize_with = "null_as_default")]
    pub enable_data_output: bool,
}

impl JobParameters {
    /// Parses a job's `parameters` string as go's `/ai/stream/start` does (`byoc/stream_orchestrator.go`
    /// `StartStream`): `null` and `{}` are empty parameters, an empty string is an error.
    pub fn parse(raw: &str) -> Result<JobParameters, serde_json::Error> {
        serde_json::from_str::<Option<JobParameters>>(raw).map(Option::unwrap_or_default)
    }
}

/// The `request` JSON of a BYOC job (go's `JobRequestDetails`): an object or `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobRequestDetails {
    /// The stream a stream route acts on (empty for single-shot requests).
    #[serde(deserialize_with = "null_as_default")]
    pub stream_id: String,
}

impl JobRequestDetails {
    /// Parses a job's `request` string as every go BYOC route does (`byoc/job_orchestrator.go`
    /// `setupOrchJob`): it must be a JSON object or `null`; an empty string is an error.
    pub fn parse(raw: &str) -> Result<JobRequestDetails, serde_json::Error> {
        serde_json::from_str::<Option<JobRequestDetails>>(raw).map(Option::unwrap_or_default)
    }
}

/// The BYOC job description carried base64-encoded in the [`HEADER_JOB`] header. Decoded with
/// go's tolerance ([`crate::go_json`]): the official Python SDK leaves out `parameters`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobRequest {
    /// Job id; for streams, the stream id and channel base name.
    #[serde(deserialize_with = "null_as_default")]
    pub id: String,
    /// JSON string, e.g. `{"stream_id":"..."}`; see [`JobRequestDetails`].
    #[serde(deserialize_with = "null_as_default")]
    pub request: String,
    /// JSON string of [`JobParameters`].
    #[serde(deserialize_with = "null_as_default")]
    pub parameters: String,
    /// Registered BYOC capability name.
    #[serde(deserialize_with = "null_as_default")]
    pub capability: String,
    /// Sender address (`0x…`), empty offchain.
    #[serde(deserialize_with = "null_as_default")]
    pub sender: String,
    /// Signature hex (`0x` + 130 hex) over the job, empty offchain.
    #[serde(deserialize_with = "null_as_default")]
    pub sig: String,
    /// Seconds the job may run; 0 is refused by orchestrators.
    #[serde(deserialize_with = "null_as_default")]
    pub timeout_seconds: u32,
}

/// A [`HEADER_JOB`] or [`HEADER_ETH_ADDRESS`] value (or the job parameters inside one) that
/// does not decode; the text says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid job request: {0}")]
pub struct InvalidJobHeader(pub String);

impl JobRequest {
    /// An unsigned job `id` for `capability` with `request` (a JSON object) and no stream
    /// parameters (`{}`), as single-shot requests, training submits and stream updates send.
    pub fn without_parameters(
        id: impl Into<String>,
        request: &serde_json::Value,
        capability: impl Into<String>,
        timeout_seconds: u32,
    ) -> JobRequest {
        JobRequest {
            id: id.into(),
            request: request.to_string(),
            parameters: "{}".into(),
            capability: capability.into(),
            timeout_seconds,
            ..Default::default()
        }
    }

    /// The [`HEADER_JOB`] value: base64 of the JSON.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a [`HEADER_JOB`] value.
    pub fn from_header(value: &str) -> Result<JobRequest, InvalidJobHeader> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| InvalidJobHeader(format!("Livepeer header is not base64: {e}")))?;
        go_json::from_slice(&bytes)
            .map_err(|e| InvalidJobHeader(format!("Livepeer header is not a job request: {e}")))
    }

    /// The job's parameters (see [`JobParameters::parse`]; an empty string counts as none here,
    /// for callers that only read them).
    pub fn parameters(&self) -> Result<JobParameters, InvalidJobHeader> {
        if self.parameters.trim().is_empty() {
            return Ok(JobParameters::default());
        }
        JobParameters::parse(&self.parameters)
            .map_err(|e| InvalidJobHeader(format!("invalid job parameters: {e}")))
    }
}

/// [`HEADER_ETH_ADDRESS`] value: the signer's address and its signature over that string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EthAddressHeader {
    /// Address string exactly as the signer returned it (EIP-55 casing matters).
    #[serde(deserialize_with = "null_as_default")]
    pub addr: String,
    /// Signature hex over `addr`.
    #[serde(deserialize_with = "null_as_default")]
    pub sig: String,
}

impl EthAddressHeader {
    /// base64 of the JSON.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a header value.
    pub fn from_header(value: &str) -> Result<EthAddressHeader, InvalidJobHeader> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| InvalidJobHeader(format!("Livepeer-Eth-Address is not base64: {e}")))?;
        go_json::from_slice(&bytes)
            .map_err(|e| InvalidJobHeader(format!("Livepeer-Eth-Address is not JSON: {e}")))
    }
}

/// Price in a [`JobToken`] (go's `net.PriceInfo` through `encoding/json`): wei per second =
/// `price_per_unit / pixels_per_unit`. go truncates BYOC prices to whole wei per second, so
/// `pixels_per_unit` is 1 and a zero price is left out (`{"pixelsPerUnit":1}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobPrice {
    /// Wei.
    #[serde(rename = "pricePerUnit", skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub price_per_unit: i64,
    /// Units the price covers.
    #[serde(rename = "pixelsPerUnit", skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub pixels_per_unit: i64,
}

impl JobPrice {
    /// Whether the orchestrator charges at all; go's gateway pays only when `pricePerUnit > 0`.
    pub fn charges(&self) -> bool {
        self.price_per_unit > 0 && self.pixels_per_unit > 0
    }

    /// Wei per second, `None` for a price that charges nothing or makes no sense.
    pub fn wei_per_second(&self) -> Option<f64> {
        self.charges().then(|| self.price_per_unit as f64 / self.pixels_per_unit as f64)
    }
}

/// go's `net.TicketExpirationParams` through `encoding/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobTicketExpirationParams {
    /// Round the ticket parameters were created in.
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub creation_round: i64,
    /// Block hash of that round.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub creation_round_block_hash: Vec<u8>,
}

/// Ticket parameters in a [`JobToken`]: go's `net.TicketParams` through `encoding/json`
/// (snake_case keys, bytes as standard base64, empty fields left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobTicketParams {
    /// Ticket recipient (the orchestrator's address).
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub recipient: Vec<u8>,
    /// Face value, big-endian wei.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub face_value: Vec<u8>,
    /// Win probability, big-endian over 2^256 - 1.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub win_prob: Vec<u8>,
    /// Commitment to the recipient's random number.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub recipient_rand_hash: Vec<u8>,
    /// Seed of the recipient's random number.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub seed: Vec<u8>,
    /// Block after which the parameters expire.
    #[serde(skip_serializing_if = "Vec::is_empty", with = "go_bytes")]
    pub expiration_block: Vec<u8>,
    /// Round and block hash the parameters were created at.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "null_as_default")]
    pub expiration_params: Option<JobTicketExpirationParams>,
}

impl From<&lp_rpc::TicketParams> for JobTicketParams {
    fn from(p: &lp_rpc::TicketParams) -> Self {
        JobTicketParams {
            recipient: p.recipient.clone(),
            face_value: p.face_value.clone(),
            win_prob: p.win_prob.clone(),
            recipient_rand_hash: p.recipient_rand_hash.clone(),
            seed: p.seed.clone(),
            expiration_block: p.expiration_block.clone(),
            expiration_params: p.expiration_params.as_ref().map(|e| JobTicketExpirationParams {
                creation_round: e.creation_round,
                creation_round_block_hash: e.creation_round_block_hash.clone(),
            }),
        }
    }
}

impl From<&JobTicketParams> for lp_rpc::TicketParams {
    fn from(p: &JobTicketParams) -> Self {
        lp_rpc::TicketParams {
            recipient: p.recipient.clone(),
            face_value: p.face_value.clone(),
            win_prob: p.win_prob.clone(),
            recipient_rand_hash: p.recipient_rand_hash.clone(),
            seed: p.seed.clone(),
            expiration_block: p.expiration_block.clone(),
            expiration_params: p.expiration_params.as_ref().map(|e| lp_rpc::TicketExpirationParams {
                creation_round: e.creation_round,
                creation_round_block_hash: e.creation_round_block_hash.clone(),
            }),
        }
    }
}

/// Answer of `GET /process/token` (go's `JobToken`, `byoc/types.go`): what a BYOC capability
/// costs this sender, its balance, and the orchestrator's free capacity. Zero values are left
/// out on the wire, `LastNonce` never is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobToken {
    /// The sender as the orchestrator saw it (echoed).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "null_as_default")]
    pub sender_address: Option<EthAddressHeader>,
    /// Ticket parameters bound to this sender and price; absent offchain.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "null_as_default")]
    pub ticket_params: Option<JobTicketParams>,
    /// Sender's balance for the capability in whole wei (rounded down).
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub balance: i64,
    /// Price per second.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "null_as_default")]
    pub price: Option<JobPrice>,
    /// Orchestrator service address; every later call of the job goes there.
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "null_as_default")]
    pub service_addr: String,
    /// Free capacity for the capability; 0 (left out) when it runs none or is full.
    #[serde(skip_serializing_if = "is_zero", deserialize_with = "null_as_default")]
    pub available_capacity: i64,
    /// Last ticket nonce the orchestrator saw (go always sends 0).
    #[serde(rename = "LastNonce", deserialize_with = "null_as_default")]
    pub last_nonce: u32,
}

impl JobToken {
    /// The price, zero when the token names none.
    pub fn price(&self) -> JobPrice {
        self.price.unwrap_or_default()
    }
}

/// `encoding/json`'s form of `[]byte`: standard base64, `null` or absent for empty.
mod go_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
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
