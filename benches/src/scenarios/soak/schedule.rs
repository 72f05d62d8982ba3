//! The fault schedule: the kinds of fault, and a seeded, pure schedule of when each hits which
//! stream slot.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::MEAN_FAULT_GAP_PER_STREAM;

/// The kinds of fault the soak injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// The server stops reading the next segment body after `param` bytes, until the segment is
    /// deleted: the writer must time out, delete it and roll to the next seq.
    StalledBody,
    /// The server drops the connection of the next segment after `param` bytes.
    DroppedConnection,
    /// One `5xx` (status `param`) before any body byte: retried once, the segment lands.
    ServerErrorRetried,
    /// Two `503`s in a row before any body byte: the retry fails too, the segment fails.
    ServerErrorTwice,
    /// `404` on the next POST: the channel is gone, the session ends.
    NotFound,
    /// The server closes the channel (`DELETE {chan}`): the session ends.
    ChannelClosed,
    /// Segment GETs answered `param` ms late and the subscriber reads slowly, for a while.
    SlowReader,
    /// The next `param` segment GETs answered `500` or `470` (alternately): the subscriber
    /// retries or jumps.
    ReaderError,
}

impl FaultKind {
    /// Every kind, in summary order.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::StalledBody,
        FaultKind::DroppedConnection,
        FaultKind::ServerErrorRetried,
        FaultKind::ServerErrorTwice,
        FaultKind::NotFound,
        FaultKind::ChannelClosed,
        FaultKind::SlowReader,
        FaultKind::ReaderError,
    ];

    /// Relative frequency in the schedule.
    fn weight(self) -> u64 {
        match self {
            FaultKind::StalledBody | FaultKind::DroppedConnection => 20,
            FaultKind::ServerErrorRetried | FaultKind::ReaderError => 15,
            FaultKind::SlowReader => 12,
            FaultKind::ServerErrorTwice => 10,
            FaultKind::NotFound | FaultKind::ChannelClosed => 4,
        }
    }

    /// Whether it needs a subscriber to have an effect.
    pub(super) fn for_readers(self) -> bool {
        matches!(self, FaultKind::SlowReader | FaultKind::ReaderError)
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::StalledBody => "stalled body read",
            FaultKind::DroppedConnection => "dropped connection mid-segment",
            FaultKind::ServerErrorRetried => "5xx before any body byte (once)",
            FaultKind::ServerErrorTwice => "5xx before any body byte (twice)",
            FaultKind::NotFound => "404 (channel gone)",
            FaultKind::ChannelClosed => "channel closed by the server",
            FaultKind::SlowReader => "slow reader",
            FaultKind::ReaderError => "GET 500/470",
        }
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// When, from the start of the run.
    pub at: Duration,
    /// Which stream slot.
    pub slot: usize,
    /// What.
    pub kind: FaultKind,
    /// Bytes, status, milliseconds or count, by kind.
    pub param: u64,
    /// How long it lasts (slow readers only).
    pub hold: Duration,
}

/// SplitMix64: tiny, seedable, and the same on every platform and version.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether slot `slot` runs a bare trickle publisher (else the video pipeline): 1 in 5, or
/// none / all with `LPGW_SOAK_MIX=frames` / `segments` (a diagnostic, to tell which path a
/// problem is on).
pub fn is_segment_stream(slot: usize) -> bool {
    match std::env::var("LPGW_SOAK_MIX").as_deref() {
        Ok("frames") => false,
        Ok("segments") => true,
        _ => slot % 5 == 4,
    }
}

/// Whether slot `slot` has a subscriber.
pub fn has_subscriber(slot: usize) -> bool {
    slot % 4 == 1
}

/// When faults start: after every stream has had time to start.
pub(super) const FAULTS_FROM: Duration = Duration::from_secs(3);
/// No new fault this close to the end, so the last ones play out before teardown.
const FAULTS_QUIET_TAIL: Duration = Duration::from_secs(4);

/// The fault schedule for `streams` slots over `seconds`: a pure function of its arguments.
pub fn schedule(seed: u64, streams: usize, seconds: f64) -> Vec<ScheduledFault> {
    let mut rng = SplitMix64::new(seed);
    let streams = streams.max(1);
    let readers: Vec<usize> = (0..streams).filter(|&s| has_subscriber(s)).collect();
    let total_weight: u64 = FaultKind::ALL.iter().map(|k| k.weight()).sum();
    let mean_gap = MEAN_FAULT_GAP_PER_STREAM.as_secs_f64() / streams as f64;
    let end = (seconds - FAULTS_QUIET_TAIL.as_secs_f64()).max(0.0);
    let mut out = Vec::new();
    let mut t = FAULTS_FROM.as_secs_f64();
    loop {
        // Exponential gaps: a Poisson process of faults.
        t += -mean_gap * (1.0 - rng.unit()).ln();
        if t >= end {
            break;
        }
        let mut pick = rng.range(0, total_weight);
        let mut kind = FaultKind::StalledBody;
        for k in FaultKind::ALL {
            if pick < k.weight() {
                kind = k;
                break;
            }
            pick -= k.weight();
        }
        let slot = if kind.for_readers() && !readers.is_empty() {
            readers[rng.range(0, readers.len() as u64) as usize]
        } else {
            rng.range(0, streams as u64) as usize
        };
        let (param, hold) = match kind {
            FaultKind::StalledBody | FaultKind::DroppedConnection => (rng.range(0, 6000), Duration::ZERO),
            FaultKind::ServerErrorRetried => ([500, 502, 503][rng.range(0, 3) as usize], Duration::ZERO),
            FaultKind::ServerErrorTwice => (503, Duration::ZERO),
            FaultKind::NotFound => (404, Duration::ZERO),
            FaultKind::ChannelClosed => (0, Duration::ZERO),
            FaultKind::SlowReader => (rng.range(200, 2000), Duration::from_millis(rng.range(2000, 8000))),
            FaultKind::ReaderError => (rng.range(1, 4), Duration::ZERO),
        };
        out.push(ScheduledFault { at: Duration::from_secs_f64(t), slot, kind, param, hold });
    }
    out
}

/// Counts per kind.
pub fn count_by_kind(faults: &[ScheduledFault]) -> BTreeMap<FaultKind, u64> {
    let mut m = BTreeMap::new();
    for f in faults {
        *m.entry(f.kind).or_insert(0) += 1;
    }
    m
}

/// A fingerprint of a schedule (FNV-1a over its JSON), printed so runs can be compared.
pub fn fingerprint(faults: &[ScheduledFault]) -> u64 {
    let json = serde_json::to_vec(faults).unwrap_or_default();
    json.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}
