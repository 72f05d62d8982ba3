//! The server's configuration, the faults a test can inject into a channel's traffic, and the
//! counters it reports.

use std::time::Duration;

use gateway_core::trickle::{SERVER_IDLE_TIMEOUT, SERVER_SWEEP_INTERVAL};
use serde::{Deserialize, Serialize};

/// Configuration of a [`TrickleServer`](super::TrickleServer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrickleConfig {
    /// Whether a segment POST to a missing channel creates it (go-livepeer orchestrators: off).
    pub autocreate: bool,
    /// Channels without a write for longer than this are closed by the sweep.
    pub idle_timeout: Duration,
    /// How often the sweep runs.
    pub sweep_interval: Duration,
}

impl Default for TrickleConfig {
    /// The orchestrator's settings: no autocreate, [`SERVER_IDLE_TIMEOUT`], [`SERVER_SWEEP_INTERVAL`].
    fn default() -> Self {
        TrickleConfig {
            autocreate: false,
            idle_timeout: SERVER_IDLE_TIMEOUT,
            sweep_interval: SERVER_SWEEP_INTERVAL,
        }
    }
}

/// Errors of the in-process publisher and of fault validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrickleServerError {
    /// The channel was closed (deleted, swept or server shut down).
    #[error("trickle channel {0:?} is closed")]
    ChannelClosed(String),
    /// A fault that cannot be applied as given.
    #[error("invalid trickle fault: {0}")]
    InvalidFault(String),
}

/// Which requests a [`TrickleFault::RespondStatus`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMethod {
    /// Segment POSTs (`POST {chan}/{seq}`).
    Post,
    /// Segment GETs (`GET {chan}/{seq}`, not `/next`).
    Get,
    /// Both.
    Any,
}

impl FaultMethod {
    pub(super) fn matches(self, method: FaultMethod) -> bool {
        self == FaultMethod::Any || self == method
    }
}

/// A misbehaviour injected into one channel's HTTP traffic.
///
/// Serialized with serde for the admin API; in JSON:
/// `{"stall_after_bytes": 4096}`, `{"drop_after_bytes": 0}`, `{"delay_first_byte_ms": 250}`,
/// `{"respond_status": {"method": "post", "status": 500, "count": 2}}`.
///
/// Setting a fault replaces the previous one of the same kind (for `RespondStatus`: of the same
/// method). Byte faults apply to every POST of the channel until cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrickleFault {
    /// Stop reading a segment POST's body after this many bytes (the first `n` reach readers).
    /// The request then hangs: the server cannot see a client hang-up without reading, so it is
    /// released only when the fault is cleared (reading resumes) or the segment is closed (slot
    /// reuse, reset, DELETE, channel close, shutdown; answered `500`).
    StallAfterBytes(u64),
    /// After this many bytes of a segment POST, abort the connection without a response. The
    /// segment is left open, as after any body read error.
    DropAfterBytes(u64),
    /// Hold back each segment GET's response for this long after its first byte is available.
    #[serde(rename = "delay_first_byte_ms", with = "duration_ms")]
    DelayFirstByte(Duration),
    /// Answer the next `count` matching segment requests with `status` (before reading any
    /// body), with the protocol's headers where they apply: 404 `Connection: close` on POST,
    /// 470 `Lp-Trickle-Latest`/`Lp-Trickle-Seq`. Statuses outside 200..=999 are answered 500.
    RespondStatus {
        /// Which requests.
        method: FaultMethod,
        /// The status to answer.
        status: u16,
        /// How many requests.
        count: u32,
    },
    /// Like [`StallAfterBytes`](TrickleFault::StallAfterBytes), but for the next `count`
    /// segment POSTs that reach `after_bytes` only, and never lifted by time or by clearing:
    /// each stalled POST is released only when its segment is closed (the client's
    /// `DELETE {chan}/{seq}`, slot reuse, reset, channel close; answered `500`). A client that
    /// abandons a stalled segment without deleting it leaves the POST hanging, which shows in
    /// [`TrickleServerStats::active_posts`]. Used by soaks, where a time-bound stall would race
    /// the client's stall timeout.
    StallSegments {
        /// Bytes of each caught POST that are read (and reach readers) before the stall.
        after_bytes: u64,
        /// How many POSTs to catch.
        count: u32,
    },
    /// Like [`DropAfterBytes`](TrickleFault::DropAfterBytes), for the next `count` segment
    /// POSTs that reach `after_bytes` only.
    DropSegments {
        /// Bytes of each caught POST that are read before its connection is aborted.
        after_bytes: u64,
        /// How many POSTs to catch.
        count: u32,
    },
}

impl TrickleFault {
    /// Checks a fault that came from outside (e.g. JSON) before it is set.
    pub fn validate(&self) -> Result<(), TrickleServerError> {
        match self {
            TrickleFault::RespondStatus { status, .. } if !(200..=999).contains(status) => {
                Err(TrickleServerError::InvalidFault(format!("status {status} is not a final HTTP status")))
            }
            _ => Ok(()),
        }
    }
}

/// Milliseconds in JSON, so the admin API does not need serde's `{secs, nanos}` shape.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A snapshot of server counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrickleServerStats {
    /// Channels that exist now.
    pub channels: usize,
    /// Segment POSTs being handled now (including ones waiting for their first byte).
    pub active_posts: usize,
    /// Segment GETs being handled now (including ones waiting for their first byte).
    pub active_gets: usize,
    /// Segment bytes received, over HTTP and from local publishers.
    pub bytes_in: u64,
    /// Segment bytes sent, over HTTP and to local subscribers.
    pub bytes_out: u64,
    /// Segments whose writer finished with at least one byte.
    pub segments_completed: u64,
    /// Bytes held in segment buffers now (ring contents plus evicted segments still being read).
    pub buffered_bytes: u64,
}

/// What one channel name received over HTTP, kept by name after the channel is closed (so a
/// publisher can compare its own counts once it has deleted the channel) until
/// [`TrickleServer::forget_channel_totals`](super::TrickleServer::forget_channel_totals). A channel re-created under the same name adds to
/// the same totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelTotals {
    /// Segment POSTs whose body ended normally with at least one byte (answered `200`).
    pub segments_completed: u64,
    /// Body bytes of those segments.
    pub bytes_completed: u64,
    /// Every segment body byte received, completed or not.
    pub bytes_received: u64,
    /// Segment POSTs whose body did not end normally (read error, injected drop, stall ended
    /// by the segment closing).
    pub posts_failed: u64,
    /// Segment requests (POST or GET) answered by a `RespondStatus` fault.
    pub requests_refused: u64,
}

#[derive(Default, Clone)]
pub(super) struct ChannelFaults {
    pub(super) stall_after: Option<u64>,
    pub(super) drop_after: Option<u64>,
    pub(super) delay_first_byte: Option<Duration>,
    pub(super) respond: Vec<RespondRule>,
    pub(super) stall_segments: Option<CountedByteFault>,
    pub(super) drop_segments: Option<CountedByteFault>,
}

#[derive(Clone, Copy)]
pub(super) struct CountedByteFault {
    pub(super) after_bytes: u64,
    pub(super) remaining: u32,
}

#[derive(Clone)]
pub(super) struct RespondRule {
    pub(super) method: FaultMethod,
    pub(super) status: u16,
    pub(super) remaining: u32,
}
