//! Trickle: segmented pub/sub over plain HTTP, as served by go-livepeer orchestrators.
//!
//! A *channel* is a named sequence of *segments*. A publisher sends each segment as one chunked
//! `POST {base}{channel}/{seq}`; subscribers `GET` the same URL and receive the bytes while they
//! are still being written. This module holds every protocol fact as a named constant, builds
//! URLs, parses response headers and classifies status codes. No I/O.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{SegmentFailure, TrickleError};

/// Path prefix of every trickle channel on an orchestrator.
pub const BASE_PATH: &str = "/ai/trickle/";
/// Path element that asks for the channel's next write index (`GET {channel}/next`).
pub const NEXT_PATH: &str = "next";

/// Response header: the effective segment index (POST and GET responses).
pub const HEADER_SEQ: &str = "Lp-Trickle-Seq";
/// Response header: the server's next write index at request time.
pub const HEADER_LATEST: &str = "Lp-Trickle-Latest";
/// Response header: the channel has been closed; end of stream. Check before reading a body.
pub const HEADER_CLOSED: &str = "Lp-Trickle-Closed";
/// Value go-livepeer sends in [`HEADER_CLOSED`].
pub const CLOSED_VALUE: &str = "terminated";
/// Request header on POST (any non-empty value): publisher restart; closes older segments.
pub const HEADER_RESET: &str = "Lp-Trickle-Reset";
/// Request header on channel-create POST: the channel's mime type.
pub const HEADER_EXPECT_CONTENT: &str = "Expect-Content";

/// Status: the channel exists but the segment does not (too far ahead or out of the window).
pub const STATUS_SEGMENT_NOT_AVAILABLE: u16 = 470;
/// Body go-livepeer sends with 470 and with a closed channel's 200.
pub const ENTRY_NOT_FOUND_BODY: &str = "Entry not found";

/// Number of segments a server keeps per channel (slot = seq % 5).
pub const SERVER_RING_SIZE: usize = 5;

/// Mime type of MPEG-TS media channels (go-livepeer spells it `video/MP2T`).
pub const MIME_MPEGTS: &str = "video/MP2T";
/// Mime type of JSON channels (control, events): one message per segment.
pub const MIME_JSON: &str = "application/json";
/// Mime type of JSON-lines data channels (BYOC `-data`).
pub const MIME_JSONL: &str = "application/jsonl";
/// Mime type of IVF media (AV1 in a container ffmpeg reads from a pipe).
pub const MIME_IVF: &str = "video/x-ivf";

/// A segment writer that cannot hand a chunk to the network within this time fails the segment
/// instead of blocking the producer.
pub const SEGMENT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A trickle segment stays open at least this long, so very short media segments are joined.
pub const MIN_SEGMENT_WALLCLOCK: Duration = Duration::from_secs(1);
/// After a stream moves to a new channel, the first segment there is cut at a keyframe asked
/// for this long after it opened, so the new orchestrator holds a complete segment soon rather
/// than a whole keyframe interval later.
pub const FIRST_SEGMENT_AFTER_SWAP: Duration = Duration::from_secs(1);
/// With no media for this long the open segment is closed and a fresh one opened, staying
/// below load-balancer idle timeouts.
pub const IDLE_CUTOVER: Duration = Duration::from_secs(25);
/// A subscriber's preconnected GET without response headers for this long is re-issued.
pub const SUBSCRIBER_PRECONNECT_REFRESH: Duration = Duration::from_secs(20);
/// While a POST body has sent no byte, the server sends `100 Continue` this often.
pub const SERVER_FIRST_BYTE_KEEPALIVE: Duration = Duration::from_secs(10);
/// After this many failed segments in a row a publisher gives up.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 3;
/// A subscriber's attempts per segment before it gives up.
pub const SUBSCRIBER_MAX_RETRIES: u32 = 5;
/// Pause before retrying a GET that failed for a reason other than 470.
pub const SUBSCRIBER_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause before re-asking for a segment that is ahead of the live edge.
pub const SUBSCRIBER_AHEAD_PAUSE: Duration = Duration::from_millis(250);
/// The gateway writes `{"keep":"alive"}` to the control channel this often.
pub const CONTROL_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// A gateway stops a job whose events channel has been silent this long.
pub const EVENTS_SILENCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Servers close channels without a write for this long.
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often servers look for idle channels.
pub const SERVER_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Channel names of one stream: `{id}`, `{id}-out`, `{id}-control`, `{id}-events`, `{id}-data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNames {
    /// Gateway → worker media (`{id}`).
    pub input: String,
    /// Worker → gateway media (`{id}-out`).
    pub output: String,
    /// Gateway → worker JSON messages (`{id}-control`).
    pub control: String,
    /// Worker → gateway JSON events (`{id}-events`).
    pub events: String,
    /// Worker → gateway JSON lines (`{id}-data`, BYOC).
    pub data: String,
}

impl ChannelNames {
    /// The channel names go-livepeer derives from a stream or manifest id.
    pub fn for_stream(id: &str) -> ChannelNames {
        ChannelNames {
            input: id.to_owned(),
            output: format!("{id}-out"),
            control: format!("{id}-control"),
            events: format!("{id}-events"),
            data: format!("{id}-data"),
        }
    }
}

/// Whether `name` can be a channel: one non-empty path element of URL-safe characters.
pub fn is_valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name != NEXT_PATH
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// The URL of channel `name` on a server at `origin` (`https://host:port`).
pub fn channel_url(origin: &str, name: &str) -> String {
    format!("{}{}{}", origin.trim_end_matches('/'), BASE_PATH, name)
}

/// Which segment a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqSpec {
    /// `-1`: the next segment to be written (the live edge at the next segment boundary).
    Next,
    /// `-2`: the segment being written now, replayed from its start.
    Current,
    /// An absolute index.
    At(u64),
}

impl SeqSpec {
    /// The wire value (`-1`, `-2` or the index).
    pub fn wire_value(self) -> i64 {
        match self {
            SeqSpec::Next => -1,
            SeqSpec::Current => -2,
            SeqSpec::At(n) => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }

    /// From a wire value; other negative values are refused (go-livepeer would crash on them).
    pub fn from_wire(v: i64) -> Option<SeqSpec> {
        match v {
            -1 => Some(SeqSpec::Next),
            -2 => Some(SeqSpec::Current),
            n if n >= 0 => Some(SeqSpec::At(n as u64)),
            _ => None,
        }
    }
}

impl fmt::Display for SeqSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.wire_value())
    }
}

impl FromStr for SeqSpec {
    type Err = TrickleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<i64>()
            .ok()
            .and_then(SeqSpec::from_wire)
            .ok_or_else(|| TrickleError::InvalidHeader { name: "seq", value: s.to_owned() })
    }
}

/// `{channel_url}/{seq}`.
pub fn segment_url(channel_url: &str, seq: SeqSpec) -> String {
    format!("{}/{}", channel_url.trim_end_matches('/'), seq)
}

/// `{channel_url}/next`.
pub fn next_url(channel_url: &str) -> String {
    format!("{}/{}", channel_url.trim_end_matches('/'), NEXT_PATH)
}

/// Splits a trickle URL path into `(channel, seq-or-next)`; `None` for paths outside
/// [`BASE_PATH`]. The second element is `None` for a bare channel path.
pub fn split_path(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix(BASE_PATH)?;
    match rest.split_once('/') {
        None => Some((rest, None)),
        Some((chan, tail)) if !tail.contains('/') => Some((chan, Some(tail))),
        Some(_) => None,
    }
}

/// The trickle headers of a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrickleHeaders {
    /// [`HEADER_SEQ`].
    pub seq: Option<i64>,
    /// [`HEADER_LATEST`].
    pub latest: Option<i64>,
    /// [`HEADER_CLOSED`] present (any value).
    pub closed: bool,
}

impl TrickleHeaders {
    /// Reads the headers through `get` (case-insensitive lookup by the caller).
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<TrickleHeaders, TrickleError> {
        let number = |name: &'static str| -> Result<Option<i64>, TrickleError> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<i64>() {
                    Ok(n) if n >= -2 => Ok(Some(n)),
                    _ => Err(TrickleError::InvalidHeader { name, value: v.chars().take(64).collect() }),
                },
            }
        };
        Ok(TrickleHeaders {
            seq: number(HEADER_SEQ)?,
            latest: number(HEADER_LATEST)?,
            closed: get(HEADER_CLOSED).is_some(),
        })
    }
}

/// What a subscriber's GET means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetOutcome {
    /// A segment follows in the body.
    Segment {
        /// Index of the segment (from [`HEADER_SEQ`], else the requested one if absolute).
        seq: Option<i64>,
        /// Server's next write index, if sent.
        latest: Option<i64>,
    },
    /// The channel is closed: end of stream.
    EndOfStream,
    /// 470 for a segment ahead of the live edge: wait briefly and ask for the same index again.
    WaitForSame,
    /// 470 for a segment that fell out of the window: continue from this index.
    JumpTo(i64),
}

/// Classifies a GET response for `requested` (the wire value that was asked for).
pub fn classify_get(
    requested: i64,
    status: u16,
    headers: &TrickleHeaders,
    url: &str,
    body: &[u8],
) -> Result<GetOutcome, TrickleError> {
    match status {
        200 if headers.closed => Ok(GetOutcome::EndOfStream),
        200 => Ok(GetOutcome::Segment {
            seq: headers.seq.or((requested >= 0).then_some(requested)),
            latest: headers.latest,
        }),
        404 => Err(TrickleError::ChannelNotFound { url: url.to_owned() }),
        STATUS_SEGMENT_NOT_AVAILABLE => match headers.latest {
            // Ahead of the live edge (or at it): jumping would rewind; wait instead.
            Some(latest) if requested >= 0 && latest <= requested => Ok(GetOutcome::WaitForSame),
            Some(latest) if latest >= 0 => Ok(GetOutcome::JumpTo(latest)),
            _ => Err(TrickleError::SequenceNotAvailable { requested, latest: headers.latest }),
        },
        _ => Err(TrickleError::UnexpectedStatus { status, body: crate::error::body_excerpt(body, 200) }),
    }
}

/// Classifies a publisher's POST response for segment `seq`.
pub fn classify_post(
    seq: i64,
    status: u16,
    headers: &TrickleHeaders,
    url: &str,
    body: &[u8],
) -> Result<(), TrickleError> {
    match status {
        200..=299 if headers.closed => Err(TrickleError::EndOfStream),
        200..=299 => Ok(()),
        404 => Err(TrickleError::ChannelNotFound { url: url.to_owned() }),
        _ => Err(TrickleError::Segment {
            seq,
            reason: format!("HTTP {status}: {}", crate::error::body_excerpt(body, 200)),
            failure: SegmentFailure::Status(status),
        }),
    }
}

/// Parses the body of `GET {channel}/next`: a decimal, non-negative index.
pub fn parse_next_body(body: &[u8]) -> Result<u64, TrickleError> {
    std::str::from_utf8(body).ok().and_then(|s| s.trim().parse::<u64>().ok()).ok_or_else(|| {
        TrickleError::InvalidHeader { name: "next", value: crate::error::body_excerpt(body, 32) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(pairs: &[(&str, &str)]) -> Result<TrickleHeaders, TrickleError> {
        let owned: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())).collect();
        TrickleHeaders::parse(|name| {
            let lower = name.to_ascii_lowercase();
            owned.iter().find(|(k, _)| *k == lower).map(|(_, v)| v.as_str())
        })
    }

    #[test]
    fn urls() {
        let chan = channel_url("https://o:8935/", "abc-out");
        assert_eq!(chan, "https://o:8935/ai/trickle/abc-out");
        assert_eq!(segment_url(&chan, SeqSpec::At(7)), "https://o:8935/ai/trickle/abc-out/7");
        assert_eq!(segment_url(&chan, SeqSpec::Next), "https://o:8935/ai/trickle/abc-out/-1");
        assert_eq!(segment_url(&chan, SeqSpec::Current), "https://o:8935/ai/trickle/abc-out/-2");
        assert_eq!(next_url(&chan), "https://o:8935/ai/trickle/abc-out/next");
        assert_eq!(split_path("/ai/trickle/abc/12"), Some(("abc", Some("12"))));
        assert_eq!(split_path("/ai/trickle/abc"), Some(("abc", None)));
        assert_eq!(split_path("/ai/trickle/a/b/c"), None);
        assert_eq!(split_path("/other/abc"), None);
    }

    #[test]
    fn channel_names() {
        let n = ChannelNames::for_stream("3f2a");
        assert_eq!(
            [n.input, n.output, n.control, n.events, n.data],
            ["3f2a", "3f2a-out", "3f2a-control", "3f2a-events", "3f2a-data"]
        );
        assert!(is_valid_channel_name("3f2a-out"));
        assert!(!is_valid_channel_name("a/b"));
        assert!(!is_valid_channel_name(""));
        assert!(!is_valid_channel_name("next"));
    }

    #[test]
    fn seq_spec() {
        assert_eq!("-1".parse::<SeqSpec>().unwrap(), SeqSpec::Next);
        assert_eq!("-2".parse::<SeqSpec>().unwrap(), SeqSpec::Current);
        assert_eq!(" 42 ".parse::<SeqSpec>().unwrap(), SeqSpec::At(42));
        assert!("-3".parse::<SeqSpec>().is_err());
        assert!("x".parse::<SeqSpec>().is_err());
    }

    #[test]
    fn header_parsing() {
        let h = headers(&[
            ("lp-trickle-seq", "4"),
            ("LP-TRICKLE-LATEST", "5"),
            ("Lp-Trickle-Closed", "terminated"),
        ])
        .unwrap();
        assert_eq!(h, TrickleHeaders { seq: Some(4), latest: Some(5), closed: true });
        assert_eq!(headers(&[]).unwrap(), TrickleHeaders::default());
        assert!(matches!(
            headers(&[("Lp-Trickle-Seq", "abc")]),
            Err(TrickleError::InvalidHeader { name: HEADER_SEQ, .. })
        ));
        assert!(headers(&[("Lp-Trickle-Latest", "-9")]).is_err());
        assert!(headers(&[("Lp-Trickle-Seq", "99999999999999999999999")]).is_err());
    }

    #[test]
    fn get_classification() {
        let h = |seq, latest, closed| TrickleHeaders { seq, latest, closed };
        assert_eq!(
            classify_get(-1, 200, &h(Some(3), None, false), "u", b""),
            Ok(GetOutcome::Segment { seq: Some(3), latest: None })
        );
        assert_eq!(
            classify_get(7, 200, &h(None, None, false), "u", b""),
            Ok(GetOutcome::Segment { seq: Some(7), latest: None })
        );
        assert_eq!(
            classify_get(3, 200, &h(Some(3), Some(4), true), "u", b"Entry not found"),
            Ok(GetOutcome::EndOfStream)
        );
        assert!(matches!(
            classify_get(3, 404, &h(None, None, false), "u", b""),
            Err(TrickleError::ChannelNotFound { .. })
        ));
        // Ahead of the live edge: wait and retry the same index (never rewind).
        assert_eq!(classify_get(9, 470, &h(Some(9), Some(5), false), "u", b""), Ok(GetOutcome::WaitForSame));
        // Fell behind the window: jump to latest.
        assert_eq!(classify_get(2, 470, &h(Some(2), Some(20), false), "u", b""), Ok(GetOutcome::JumpTo(20)));
        assert!(matches!(
            classify_get(2, 470, &h(None, None, false), "u", b""),
            Err(TrickleError::SequenceNotAvailable { .. })
        ));
        assert!(matches!(
            classify_get(2, 500, &h(None, None, false), "u", b"boom"),
            Err(TrickleError::UnexpectedStatus { status: 500, .. })
        ));
    }

    #[test]
    fn post_classification() {
        let ok = TrickleHeaders { seq: Some(1), ..Default::default() };
        assert_eq!(classify_post(1, 200, &ok, "u", b""), Ok(()));
        let closed = TrickleHeaders { closed: true, ..ok };
        assert_eq!(classify_post(1, 200, &closed, "u", b""), Err(TrickleError::EndOfStream));
        assert!(classify_post(1, 404, &ok, "u", b"").unwrap_err().is_terminal());
        let e = classify_post(1, 500, &ok, "u", b"Server error\n").unwrap_err();
        assert!(!e.is_terminal());
        assert_eq!(e.to_string(), "trickle segment 1 failed: HTTP 500: Server error");
        assert_eq!(e.segment_failure(), SegmentFailure::Status(500));
        let gone = classify_post(1, 404, &ok, "u", b"").unwrap_err();
        assert_eq!(gone.segment_failure(), SegmentFailure::ChannelGone);
    }

    #[test]
    fn next_body() {
        assert_eq!(parse_next_body(b"12\n"), Ok(12));
        assert!(parse_next_body(b"-1").is_err());
        assert!(parse_next_body(&[0xff]).is_err());
    }

    proptest! {
        #[test]
        fn headers_round_trip(seq in -2i64..i64::MAX, latest in -2i64..i64::MAX, closed: bool) {
            let s = seq.to_string();
            let l = latest.to_string();
            let mut pairs = vec![(HEADER_SEQ, s.as_str()), (HEADER_LATEST, l.as_str())];
            if closed { pairs.push((HEADER_CLOSED, CLOSED_VALUE)); }
            let h = headers(&pairs).unwrap();
            prop_assert_eq!(h, TrickleHeaders { seq: Some(seq), latest: Some(latest), closed });
        }

        #[test]
        fn header_parser_never_panics(v in "\\PC{0,40}") {
            let _ = headers(&[(HEADER_SEQ, v.as_str()), (HEADER_LATEST, v.as_str())]);
        }

        #[test]
        fn seq_spec_round_trip(n in -2i64..i64::MAX) {
            let spec = SeqSpec::from_wire(n).unwrap();
            prop_assert_eq!(spec.wire_value(), n);
            prop_assert_eq!(spec.to_string().parse::<SeqSpec>().unwrap(), spec);
        }
    }
}
