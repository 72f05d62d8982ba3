//! The LV2V side of a gateway node's API, as go-livepeer's gateway serves it
//! (`server/ai_mediaserver.go` `StartLiveVideo`, `UpdateLiveVideo`,
//! `GetLiveVideoToVideoStatus`): the routes, the start's form and query, and go's refusal texts.
//!
//! go's gateway starts a live stream when MediaMTX calls `POST
//! /live/video-to-video/{stream}/start` with the form values `source_id`, `source_type`
//! (`rtmpconn` or `webrtcsession`) and `query`, the publisher's URL query, which may carry
//! `pipeline`, `params` (a JSON object), `streamId`, `rtmpOutput` and `orchestrator`. A name
//! ending in `-out` is an output and is not started. Updates are keyed by the stream's name,
//! the status by its stream id.

use serde_json::{Map, Value};

/// The routes' common prefix: `{LIVE_PATH_PREFIX}/{stream}/{action}`.
pub const LIVE_PATH_PREFIX: &str = "/live/video-to-video";
/// The model go asks for when the start names no pipeline.
pub const DEFAULT_PIPELINE: &str = "noop";
/// RTMP's default port: where go's gateway pulls a stream from MediaMTX (its URL names none),
/// and what an `rtmp://` URL without a port means.
pub const RTMP_PORT: u16 = 1935;
/// go's texts for a refused start, update or status read.
pub const ERROR_MISSING_STREAM: &str = "Missing stream name";
/// See [`ERROR_MISSING_STREAM`].
pub const ERROR_MISSING_SOURCE_ID: &str = "Missing source_id";
/// See [`ERROR_MISSING_STREAM`].
pub const ERROR_MISSING_SOURCE_TYPE: &str = "Missing source_type";
/// See [`ERROR_MISSING_STREAM`].
pub const ERROR_UNKNOWN_SOURCE: &str = "unknown media source";
/// See [`ERROR_MISSING_STREAM`].
pub const ERROR_INVALID_PARAMS: &str = "Invalid model params";
/// See [`ERROR_MISSING_STREAM`].
pub const ERROR_STREAM_ID_REQUIRED: &str = "stream id is required";
/// go's answer when the auth webhook refuses a live start.
pub const ERROR_FORBIDDEN: &str = "Forbidden";

/// `{base}/live/video-to-video/{stream}/{action}`.
pub fn live_url(base: &str, stream: &str, action: &str) -> String {
    format!("{}{LIVE_PATH_PREFIX}/{stream}/{action}", base.trim_end_matches('/'))
}

/// Where a live stream's media comes from, as go names it to the auth webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSource {
    /// An RTMP publisher (MediaMTX's `rtmpconn`).
    Rtmp,
    /// A WHIP publisher (MediaMTX's `webrtcsession`).
    Whip,
}

impl LiveSource {
    /// MediaMTX's `source_type`, case-insensitive (go's `MediamtxSourceTypeToString`).
    pub fn from_mediamtx(source_type: &str) -> Option<LiveSource> {
        match source_type.to_ascii_lowercase().as_str() {
            "rtmpconn" => Some(LiveSource::Rtmp),
            "webrtcsession" => Some(LiveSource::Whip),
            _ => None,
        }
    }

    /// The webhook's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveSource::Rtmp => "rtmp",
            LiveSource::Whip => "whip",
        }
    }
}

/// What a start asks for, from the publisher's query (go's keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveQuery {
    /// `pipeline`: the model the orchestrator runs ([`DEFAULT_PIPELINE`] when empty).
    pub pipeline: String,
    /// `params`: the pipeline's parameters, a JSON object.
    pub params: Option<Map<String, Value>>,
    /// `streamId`: the id the status is kept under.
    pub stream_id: String,
    /// `rtmpOutput`: where go pushes the output.
    pub rtmp_output: String,
    /// `orchestrator`: the one orchestrator to use.
    pub orchestrator: String,
}

impl LiveQuery {
    /// Reads a raw URL query (`a=b&c=d`); a `params` that is not a JSON object is
    /// [`ERROR_INVALID_PARAMS`].
    pub fn parse(query: &str) -> Result<LiveQuery, &'static str> {
        let mut q = LiveQuery::default();
        for (key, value) in url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
            match key.as_ref() {
                "pipeline" => q.pipeline = value.into_owned(),
                "streamId" => q.stream_id = value.into_owned(),
                "rtmpOutput" => q.rtmp_output = value.into_owned(),
                "orchestrator" => q.orchestrator = value.into_owned(),
                "params" if !value.is_empty() => match serde_json::from_str(&value) {
                    Ok(Value::Object(map)) => q.params = Some(map),
                    _ => return Err(ERROR_INVALID_PARAMS),
                },
                _ => {}
            }
        }
        Ok(q)
    }

    /// The model to ask the orchestrator for.
    pub fn model(&self) -> &str {
        if self.pipeline.is_empty() {
            DEFAULT_PIPELINE
        } else {
            &self.pipeline
        }
    }
}

/// The auth webhook's `pipeline_parameters` as go takes them: ComfyUI's without a `prompt` key
/// are wrapped as `{"prompt": …}`.
pub fn webhook_params(pipeline: &str, params: Map<String, Value>) -> Map<String, Value> {
    if pipeline == "comfyui" && !params.contains_key("prompt") {
        let mut wrapped = Map::new();
        wrapped.insert("prompt".into(), Value::Object(params));
        wrapped
    } else {
        params
    }
}

/// A start's form values, checked in go's order.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStartForm {
    /// The stream's name (from the path).
    pub stream: String,
    /// MediaMTX's id of the publishing connection.
    pub source_id: String,
    /// What publishes.
    pub source: LiveSource,
    /// The publisher's raw query.
    pub query: String,
    /// What the query asks for.
    pub parsed: LiveQuery,
    /// Where to pull the stream from instead of `rtmp://{caller}/{path}` (go's `rtmp_url`
    /// form value); empty when not given.
    pub rtmp_url: String,
}

impl LiveStartForm {
    /// Checks `stream` and the form `values` (name, value pairs) as go does; `Err` is go's 400
    /// text.
    pub fn check<'a>(
        stream: &str,
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<LiveStartForm, &'static str> {
        let (mut source_id, mut source_type, mut query, mut rtmp_url) = (None, None, None, None);
        for (name, value) in values {
            // The first value of a name wins (go's `FormValue`).
            let slot = match name {
                "source_id" => &mut source_id,
                "source_type" => &mut source_type,
                "query" => &mut query,
                "rtmp_url" => &mut rtmp_url,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        if stream.is_empty() {
            return Err(ERROR_MISSING_STREAM);
        }
        let source_id = source_id.filter(|s| !s.is_empty()).ok_or(ERROR_MISSING_SOURCE_ID)?;
        let source_type = source_type.filter(|s| !s.is_empty()).ok_or(ERROR_MISSING_SOURCE_TYPE)?;
        let source = LiveSource::from_mediamtx(source_type).ok_or(ERROR_UNKNOWN_SOURCE)?;
        let query = query.unwrap_or_default().to_owned();
        let parsed = LiveQuery::parse(&query)?;
        Ok(LiveStartForm {
            stream: stream.to_owned(),
            source_id: source_id.to_owned(),
            source,
            query,
            parsed,
            rtmp_url: rtmp_url.unwrap_or_default().to_owned(),
        })
    }

    /// Whether the stream is an output (`…-out`), which go answers 200 and does not start.
    pub fn is_output(&self) -> bool {
        self.stream.ends_with("-out")
    }
}

/// The text fields of a `multipart/form-data` body (what `curl -F name=value` sends, as
/// MediaMTX's sample hook does): `(name, value)` pairs. `None` when the body is not one with
/// `boundary`; file parts are skipped.
pub fn multipart_fields(body: &[u8], boundary: &str) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    let delimiter = format!("--{boundary}");
    if !text.contains(delimiter.as_str()) {
        return None;
    }
    let mut fields = Vec::new();
    let mut parts = text.split(delimiter.as_str());
    parts.next()?; // the preamble
    for part in parts {
        if part.starts_with("--") {
            break; // the closing delimiter
        }
        let part = part.strip_prefix("\r\n")?;
        let (headers, value) = part.split_once("\r\n\r\n")?;
        let disposition =
            headers.split("\r\n").find(|h| h.to_ascii_lowercase().starts_with("content-disposition:"))?;
        if disposition.contains("filename=") {
            continue;
        }
        let name = disposition.split(';').find_map(|p| p.trim().strip_prefix("name="))?;
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        fields.push((name.trim_matches('"').to_owned(), value.to_owned()));
    }
    Some(fields)
}

/// The boundary of a `multipart/form-data` content type.
pub fn multipart_boundary(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| p.trim().strip_prefix("boundary=")).map(|b| b.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(stream: &str, values: &[(&str, &str)]) -> Result<LiveStartForm, &'static str> {
        LiveStartForm::check(stream, values.iter().copied())
    }

    #[test]
    fn starts_are_checked_in_gos_order_with_gos_texts() {
        let full = [("source_id", "c1"), ("source_type", "rtmpconn"), ("query", "")];
        assert_eq!(check("", &full), Err(ERROR_MISSING_STREAM));
        assert_eq!(check("s", &full[1..]), Err(ERROR_MISSING_SOURCE_ID));
        assert_eq!(check("s", &[("source_id", "c1")]), Err(ERROR_MISSING_SOURCE_TYPE));
        assert_eq!(check("s", &[("source_id", "c1"), ("source_type", "srt")]), Err(ERROR_UNKNOWN_SOURCE));
        let bad_params = [("source_id", "c1"), ("source_type", "RTMPConn"), ("query", "params=[1]")];
        assert_eq!(check("s", &bad_params), Err(ERROR_INVALID_PARAMS));
        let ok = [
            ("source_id", "c1"),
            ("source_type", "webrtcsession"),
            ("query", "pipeline=comfyui&streamId=abc&params=%7B%22a%22%3A1%7D&rtmpOutput=rtmp%3A%2F%2Fx%2Fy"),
        ];
        let form = check("s", &ok).unwrap();
        assert_eq!(form.source, LiveSource::Whip);
        assert_eq!(form.parsed.pipeline, "comfyui");
        assert_eq!(form.parsed.stream_id, "abc");
        assert_eq!(form.parsed.rtmp_output, "rtmp://x/y");
        assert_eq!(form.parsed.params.as_ref().unwrap()["a"], 1);
        assert!(!form.is_output());
        assert!(check("s-out", &full).unwrap().is_output());
        assert_eq!(LiveQuery::parse("").unwrap().model(), DEFAULT_PIPELINE);
    }

    #[test]
    fn comfyui_params_without_a_prompt_are_wrapped() {
        let params: Map<String, Value> = serde_json::from_str(r#"{"a":1}"#).unwrap();
        assert_eq!(
            Value::Object(webhook_params("comfyui", params.clone())),
            serde_json::json!({"prompt": {"a": 1}})
        );
        assert_eq!(Value::Object(webhook_params("other", params)), serde_json::json!({"a": 1}));
        let prompt: Map<String, Value> = serde_json::from_str(r#"{"prompt":"x"}"#).unwrap();
        assert_eq!(webhook_params("comfyui", prompt.clone()), prompt);
    }

    #[test]
    fn multipart_text_fields_as_curl_sends_them() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"source_id\"\r\n\r\nconn-1\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\na=1&b=2\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\nbin\r\n\
                    --XyZ--\r\n";
        let boundary = multipart_boundary("multipart/form-data; boundary=XyZ").unwrap();
        let fields = multipart_fields(body.as_bytes(), boundary).unwrap();
        assert_eq!(fields, [("source_id".into(), "conn-1".into()), ("query".into(), "a=1&b=2".into())]);
        assert_eq!(multipart_boundary("application/x-www-form-urlencoded"), None);
        assert_eq!(multipart_fields(b"garbage", "XyZ"), None);
        assert_eq!(multipart_fields(b"--XyZ\r\nno blank line", "XyZ"), None);
    }
}
