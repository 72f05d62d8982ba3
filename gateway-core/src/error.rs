//! Errors, one type per concern.
//!
//! [`CapabilityError`] lives with the capability queries and [`ProtoError`] with the protobuf
//! codec; both are re-exported here. A job's own error, `JobError`, lives one floor up in
//! [`crate::rejection`], beside the rejections it lists: it is built from the errors here.
//!
//! Every error here is safe to print: none of them carries a signer header, a bearer token or a
//! gateway token. URLs are shown through [`redact_url`], which drops credentials and query
//! strings, because operators paste hosted signer URLs that carry API keys.

use thiserror::Error;

pub use crate::capabilities::CapabilityError;
pub use crate::lp_rpc::ProtoError;

/// A gateway token that could not be decoded. The token itself is never echoed back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Not standard base64.
    #[error("invalid token: not base64 ({0})")]
    Base64(String),
    /// Decoded bytes are not UTF-8 JSON.
    #[error("invalid token: not a JSON document ({0})")]
    Json(String),
    /// The JSON is not an object.
    #[error("invalid token: expected a JSON object, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A field has the wrong type or an empty value.
    #[error("invalid token: field {field:?} {problem}")]
    InvalidField {
        /// The field name.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// Errors talking to a remote signer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum SignerError {
    /// HTTP 480: the orchestrator info (auth token or ticket params) is stale; refresh it with
    /// `GetOrchestrator` and retry.
    #[error("signer asks for fresh orchestrator info (HTTP 480){}", orchestrator_url.as_deref().map(|u| format!(" for {}", redact_url(u))).unwrap_or_default())]
    RefreshRequired {
        /// The orchestrator to refresh, from `Livepeer-Orchestrator-URL`.
        orchestrator_url: Option<String>,
    },
    /// HTTP 481: the orchestrator's price is above the allowed maximum or rose during the session.
    #[error("orchestrator price exceeds the signer's limit (HTTP 481): {message}")]
    PriceExceeded {
        /// The signer's explanation.
        message: String,
    },
    /// HTTP 482: the prepaid credit still covers this interval; skip this payment cycle.
    #[error("no payment needed this cycle (HTTP 482)")]
    SkipCycle,
    /// Any other non-success status.
    #[error("signer returned HTTP {status} for {endpoint}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// Endpoint path, e.g. `/generate-live-payment`.
        endpoint: &'static str,
        /// The signer's `error.message`, or the start of the body.
        message: String,
    },
    /// The signer answered 200 with a body we cannot use.
    #[error("signer sent an invalid response for {endpoint}: {reason}")]
    InvalidResponse {
        /// Endpoint path.
        endpoint: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The signer could not be reached at all (refused, reset, timed out, TLS failure): no
    /// HTTP status exists. Retryable, like a 5xx.
    #[error("signer unreachable for {endpoint}: {reason}")]
    Unreachable {
        /// Endpoint path.
        endpoint: &'static str,
        /// The transport failure, without the URL's query.
        reason: String,
    },
    /// The request could not be built (bad input from the caller).
    #[error("invalid signer request: {0}")]
    InvalidRequest(String),
    /// The signer lacks what the job needs: go-livepeer master has no `/sign-byoc-job` and
    /// refuses payment type `byoc` ("invalid job type"). BYOC through a remote signer needs
    /// go-livepeer with the BYOC remote-signer work (PR #3869).
    #[error("the remote signer does not support {what} ({endpoint} answered HTTP {status}); BYOC through a remote signer needs go-livepeer with PR #3869 (master lacks it)")]
    Unsupported {
        /// What is missing, e.g. "BYOC job signing".
        what: &'static str,
        /// Endpoint path.
        endpoint: &'static str,
        /// The status it answered.
        status: u16,
    },
}

impl SignerError {
    /// Whether retrying the same call later may succeed (unreachable, 5xx, 429, 408).
    pub fn is_retryable(&self) -> bool {
        match self {
            SignerError::Unreachable { .. } => true,
            SignerError::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

/// Errors on a trickle channel, split into "this segment failed" and "the channel is done".
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrickleError {
    /// One segment failed; the channel can go on with the next sequence number.
    #[error("trickle segment {seq} failed: {reason}")]
    Segment {
        /// Sequence number of the failed segment.
        seq: i64,
        /// What happened.
        reason: String,
        /// Why, typed where the failure was seen (callers act on this, never on `reason`).
        failure: SegmentFailure,
    },
    /// The channel does not exist (HTTP 404): terminal.
    #[error("trickle channel not found (HTTP 404): {}", redact_url(url))]
    ChannelNotFound {
        /// Channel URL.
        url: String,
    },
    /// The channel was closed by the server (`Lp-Trickle-Closed`): terminal, end of stream.
    #[error("trickle channel closed by the server")]
    EndOfStream,
    /// The segment is not available (HTTP 470): too far ahead, or fell out of the window.
    #[error("trickle segment {requested} not available (HTTP 470), latest is {latest:?}")]
    SequenceNotAvailable {
        /// Requested sequence number.
        requested: i64,
        /// Server's next write index, if it said.
        latest: Option<i64>,
    },
    /// The requested segment fell out of the server's window (HTTP 470 with a later
    /// `Lp-Trickle-Latest`), and the subscriber was told not to skip ahead.
    #[error("trickle segment {requested} fell out of the server's window; the live edge is {latest}")]
    FellBehind {
        /// Requested sequence number.
        requested: i64,
        /// The server's next write index.
        latest: i64,
    },
    /// The requested segment stayed ahead of the live edge for longer than the subscriber
    /// waits.
    #[error(
        "trickle segment {requested} still ahead of the live edge after {:.1} s (the server is at {})",
        waited.as_secs_f64(),
        latest.map_or_else(|| "an unknown index".to_owned(), |l| l.to_string())
    )]
    AheadOfLiveEdge {
        /// Requested sequence number.
        requested: i64,
        /// The server's next write index, if it said.
        latest: Option<i64>,
        /// How long the subscriber waited.
        waited: std::time::Duration,
    },
    /// Too many segments failed in a row: terminal.
    #[error("trickle publisher gave up after {consecutive_failures} consecutive failed segments")]
    Terminal {
        /// How many failed in a row.
        consecutive_failures: u32,
    },
    /// A response header had a value that is not what the protocol allows.
    #[error("invalid trickle header {name}: {value:?}")]
    InvalidHeader {
        /// Header name.
        name: &'static str,
        /// Received value (header values here are numbers or flags, never secrets).
        value: String,
    },
    /// The server answered with a status the protocol does not define for this request.
    #[error("unexpected trickle HTTP status {status}: {body}")]
    UnexpectedStatus {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        body: String,
    },
}

impl TrickleError {
    /// Whether the channel cannot be used any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TrickleError::ChannelNotFound { .. } | TrickleError::EndOfStream | TrickleError::Terminal { .. }
        )
    }

    /// Why a segment failed with this error: the typed cause a segment error carries, and the
    /// class the other variants stand for (a gone channel, an error status).
    pub fn segment_failure(&self) -> SegmentFailure {
        match self {
            TrickleError::Segment { failure, .. } => *failure,
            TrickleError::ChannelNotFound { .. } | TrickleError::EndOfStream => SegmentFailure::ChannelGone,
            TrickleError::UnexpectedStatus { status, .. } => SegmentFailure::Status(*status),
            _ => SegmentFailure::Other,
        }
    }
}

/// Why one trickle segment failed, classified where the failure is seen (the transport's error
/// kinds, the stall timer, the server's status), so a caller deciding whether an orchestrator is
/// dead never has to read error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentFailure {
    /// No connection could be made: refused, unreachable, connect timeout.
    Connect,
    /// The connection was reset or closed in the middle of the exchange.
    Reset,
    /// No progress for the stall timeout: a write not taken, or no answer after the body.
    Stalled,
    /// The server answered with this error status.
    Status(u16),
    /// The channel is gone (404, or closed by the server).
    ChannelGone,
    /// Anything else (a local failure, or a transport that cannot tell).
    Other,
}

/// Why an orchestrator's `OrchestratorInfo` cannot take a job (see [`crate::vetting`]).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum VettingError {
    /// The info names no transcoder URL to send the job to.
    #[error("its info has no transcoder URL")]
    NoTranscoder,
    /// The info carries no (or an empty) auth token.
    #[error("its info has no auth token")]
    NoAuthToken,
    /// Its capabilities do not satisfy the request.
    #[error("{0}")]
    Incompatible(crate::capabilities::Incompatibility),
    /// The price cannot be used: a non-positive `pixelsPerUnit` or a negative `pricePerUnit`.
    #[error("invalid price: pricePerUnit {price_per_unit}, pixelsPerUnit is {pixels_per_unit}")]
    InvalidPrice {
        /// `pricePerUnit` as sent.
        price_per_unit: i64,
        /// `pixelsPerUnit` as sent.
        pixels_per_unit: i64,
    },
    /// The price is above the caller's maximum.
    #[error(
        "price {wei_per_unit} wei per unit ({price_per_unit}/{pixels_per_unit}) is above the maximum {max_wei_per_unit}"
    )]
    PriceAboveMaximum {
        /// `pricePerUnit / pixelsPerUnit`.
        wei_per_unit: f64,
        /// `pricePerUnit` as sent.
        price_per_unit: i64,
        /// `pixelsPerUnit` as sent.
        pixels_per_unit: i64,
        /// The caller's maximum.
        max_wei_per_unit: f64,
    },
    /// The gateway pays but the info has no ticket parameters.
    #[error("its info has no ticket parameters, which paying requires")]
    NoTicketParams,
    /// Its `/process/token` answer shows no free capacity for the BYOC capability (go's
    /// gateways drop such orchestrators; one that does not run the capability answers 0 too).
    #[error("no available capacity for BYOC capability {capability:?} (/process/token says 0)")]
    NoCapacity {
        /// The capability name.
        capability: String,
    },
}

/// Drops user-info (`user:pass@`), query and fragment from a URL-ish string so it can be
/// logged. Strings that do not parse as URLs are returned up to the first `?`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.has_host() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        _ => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// How a JSON value's type reads in an error message ("a number", "an array", ...).
pub fn json_type_name(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Cuts an HTTP body down to a printable excerpt (at most `max` bytes, valid UTF-8, trimmed).
pub fn body_excerpt(body: &[u8], max: usize) -> String {
    let cut = &body[..body.len().min(max)];
    let text = String::from_utf8_lossy(cut);
    let mut s = text.trim().to_owned();
    if body.len() > max {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_drops_credentials_and_query() {
        assert_eq!(
            redact_url("https://user:secret@signer.example/api/signer?key=abc#x"),
            "https://signer.example/api/signer"
        );
        assert_eq!(redact_url("host:8935?token=1"), "host:8935");
    }

    #[test]
    fn signer_retryable_classes() {
        let http = |status| SignerError::Http { status, endpoint: "/x", message: String::new() };
        assert!(http(503).is_retryable());
        assert!(SignerError::Unreachable { endpoint: "/x", reason: "refused".into() }.is_retryable());
        assert!(http(429).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!SignerError::SkipCycle.is_retryable());
    }

    #[test]
    fn body_excerpt_is_bounded() {
        assert_eq!(body_excerpt(b"  hello \n", 100), "hello");
        assert_eq!(body_excerpt(b"abcdef", 3), "abc…");
        assert_eq!(body_excerpt(&[0xff, 0xfe, b'a'], 10), "\u{fffd}\u{fffd}a");
    }
}
