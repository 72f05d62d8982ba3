//! A gateway node's own HTTP API, as go-livepeer's BYOC gateway serves it to programs that
//! run jobs through it (PR #3869 `byoc/byoc.go`, `byoc/stream_gateway.go`, `byoc/types.go`):
//! the routes, the start request and the URLs answered, and go's rules and refusal texts.
//!
//! A client starts a stream with `POST /process/stream/start`: a `Livepeer` header carrying a
//! job request (base64 JSON; the gateway signs it, so `sender` and `sig` may be empty) and a
//! body naming the stream and its parameters. It then updates, reads the status of, reads the
//! data of, and stops the stream at `/process/stream/{id}/…`. LV2V streams have routes of
//! their own ([`live`]).

pub mod live;

use serde::{Deserialize, Serialize};

use crate::jobs::{JobParameters, JobRequest};

/// `POST`: start a stream.
pub const STREAM_START_PATH: &str = "/process/stream/start";
/// Largest start or update body go's gateway reads (`http.MaxBytesReader`, 10 MB).
pub const MAX_STREAM_BODY_BYTES: usize = 10 << 20;
/// go's answer for a stream it does not run.
pub const ERROR_STREAM_NOT_FOUND: &str = "Stream not found";
/// go's `errNoTimeoutSet`.
pub const ERROR_NO_TIMEOUT: &str = "no timeout_seconds set with request, timeout_seconds is required";

/// What a stream route does (`/process/stream/{id}/{action}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamAction {
    /// `POST`: new parameters, relayed to the worker.
    Update,
    /// `GET`: the stream's status.
    Status,
    /// `POST`: stop it.
    Stop,
    /// `GET`: its data channel as server-sent events.
    Data,
}

impl StreamAction {
    /// The route's last segment.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamAction::Update => "update",
            StreamAction::Status => "status",
            StreamAction::Stop => "stop",
            StreamAction::Data => "data",
        }
    }
}

/// `{base}/process/stream/{id}/{action}`: where a client reaches a stream on the gateway at
/// `base` (go writes `https://{GatewayHost}`).
pub fn stream_url(base: &str, stream_id: &str, action: StreamAction) -> String {
    format!("{}/process/stream/{stream_id}/{}", base.trim_end_matches('/'), action.as_str())
}

/// The body of a start (go's `StartRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartRequest {
    /// A name the stream id starts with.
    #[serde(rename = "stream_name")]
    pub stream: String,
    /// Where to push the output over RTMP.
    pub rtmp_output: String,
    /// The stream id the client wants (random when empty).
    pub stream_id: String,
    /// The pipeline's parameters: a JSON object, as a string.
    pub params: String,
}

impl StartRequest {
    /// go's stream id: the client's, else `random`; prefixed with `{stream_name}-` when named.
    pub fn stream_id_or(&self, random: &str) -> String {
        let id = if self.stream_id.is_empty() { random } else { self.stream_id.as_str() };
        if self.stream.is_empty() {
            id.to_owned()
        } else {
            format!("{}-{id}", self.stream)
        }
    }

    /// The parameters as JSON (`None` when not given); `Err` with go's text when they are not
    /// a JSON object.
    pub fn pipeline_params(&self) -> Result<Option<serde_json::Value>, &'static str> {
        if self.params.is_empty() {
            return Ok(None);
        }
        match serde_json::from_str::<serde_json::Value>(&self.params) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(Some(v)),
            Ok(serde_json::Value::Null) => Ok(None),
            _ => Err("invalid model params"),
        }
    }

    /// go skips a stream whose name ends with `-out` (its own output, pushed back in).
    pub fn is_own_output(&self) -> bool {
        self.stream.ends_with("-out")
    }
}

/// What a start answers (go's `StreamUrls`); empty strings for what the stream does not have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayStreamUrls {
    /// The stream's id on the gateway.
    pub stream_id: String,
    /// WHIP ingest.
    pub whip_url: String,
    /// WHEP egress.
    pub whep_url: String,
    /// RTMP ingest.
    pub rtmp_url: String,
    /// RTMP outputs, comma-separated.
    pub rtmp_output_url: String,
    /// `POST` new parameters.
    pub update_url: String,
    /// `GET` the status.
    pub status_url: String,
    /// `GET` the data as server-sent events.
    pub data_url: String,
    /// `POST` to stop.
    pub stop_url: String,
    /// Media in as a trickle channel on the gateway, relayed to the orchestrator (ours; go's
    /// gateway takes media over WHIP or RTMP). Absent without ingress.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trickle_publish_url: String,
    /// Media out as a trickle channel on the gateway, relayed from the orchestrator (ours).
    /// Absent without egress.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trickle_subscribe_url: String,
}

/// `{base}/process/stream/{id}/trickle/{key}/{in|out}`: a stream's media channel on the
/// gateway. The key (the stream's own, random) stands for the bearer token trickle peers do not
/// send: whoever started the stream has it.
pub fn media_channel_url(base: &str, stream_id: &str, key: &str, direction: MediaDirection) -> String {
    let dir = match direction {
        MediaDirection::In => "in",
        MediaDirection::Out => "out",
    };
    format!("{}/process/stream/{stream_id}/trickle/{key}/{dir}", base.trim_end_matches('/'))
}

/// Which way a stream's media channel on the gateway carries media.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaDirection {
    /// Client → worker.
    In,
    /// Worker → client.
    Out,
}

/// go's `setupGatewayJob` before the orchestrator search: the `Livepeer` header decoded, a
/// timeout required, the request and parameters parsed. `Err` is go's 400 text.
pub fn gateway_job(header: Option<&str>) -> Result<(JobRequest, JobParameters), String> {
    let unable = |why: String| format!("Unable to parse job request, err={why}");
    let header = header.unwrap_or("");
    let job = JobRequest::from_header(header).map_err(|e| unable(e.to_string()))?;
    if job.timeout_seconds == 0 {
        return Err(unable(ERROR_NO_TIMEOUT.into()));
    }
    serde_json::from_str::<serde_json::Value>(&job.request)
        .map_err(|e| format!("Unable to unmarshal job request err={e}"))?;
    let params = JobParameters::parse(&job.parameters)
        .map_err(|e| format!("Unable to unmarshal job parameters err={e}"))?;
    Ok((job, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(job: serde_json::Value) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(job.to_string())
    }

    #[test]
    fn stream_ids_and_params_follow_go() {
        let named = StartRequest { stream: "cam".into(), stream_id: "abc".into(), ..Default::default() };
        assert_eq!(named.stream_id_or("rnd"), "cam-abc");
        assert_eq!(StartRequest::default().stream_id_or("rnd"), "rnd");
        let bad = StartRequest { params: "[1]".into(), ..Default::default() };
        assert_eq!(bad.pipeline_params(), Err("invalid model params"));
        let good = StartRequest { params: r#"{"prompt":"x"}"#.into(), ..Default::default() };
        assert_eq!(good.pipeline_params().unwrap().unwrap()["prompt"], "x");
        assert!(StartRequest { stream: "a-out".into(), ..Default::default() }.is_own_output());
        let decoded: StartRequest = serde_json::from_str(r#"{"stream_name":"s","params":"{}"}"#).unwrap();
        assert_eq!(decoded.stream, "s");
    }

    #[test]
    fn job_headers_are_checked_as_go_checks_them() {
        let ok = header(serde_json::json!({
            "capability": "text-reversal", "request": "{}", "timeout_seconds": 30,
            "parameters": r#"{"enable_data_output":true}"#,
        }));
        let (job, params) = gateway_job(Some(&ok)).unwrap();
        assert_eq!(job.capability, "text-reversal");
        assert!(params.enable_data_output);
        let no_timeout = header(serde_json::json!({"capability": "x", "request": "{}", "parameters": "{}"}));
        assert_eq!(
            gateway_job(Some(&no_timeout)).unwrap_err(),
            format!("Unable to parse job request, err={ERROR_NO_TIMEOUT}")
        );
        assert!(gateway_job(None).unwrap_err().starts_with("Unable to parse job request"));
        let bad_request =
            header(serde_json::json!({"request": "nope", "parameters": "{}", "timeout_seconds": 1}));
        assert!(gateway_job(Some(&bad_request)).unwrap_err().starts_with("Unable to unmarshal job request"));
        let bad_params = header(serde_json::json!({"request": "{}", "parameters": "", "timeout_seconds": 1}));
        assert!(gateway_job(Some(&bad_params))
            .unwrap_err()
            .starts_with("Unable to unmarshal job parameters"));
        assert_eq!(
            stream_url("https://gw:8937/", "s1", StreamAction::Stop),
            "https://gw:8937/process/stream/s1/stop"
        );
    }
}
