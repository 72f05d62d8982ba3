//! The soak: many live streams for minutes through the real gateway path against the server
//! child, with faults injected at random from a seeded schedule, checking at the end that every
//! frame and byte is accounted for, that the client's memory stayed flat and that nothing
//! leaked (`throughput --soak --seconds 300 --streams 100 --seed 42`).
//!
//! Load per stream, small enough for 100 of them on 2 shared cores:
//! - **frame streams** (4 in 5): the test pattern at [`WIDTH`]x[`HEIGHT`], [`FPS`] fps, through
//!   the SDK's `VideoPublisher` (frame queue, openh264 at [`BITRATE`], MPEG-TS segmenter with
//!   1 s keyframe segments, supervised `SegmentWriter`, `TricklePublisher`);
//! - **segment streams** (1 in 5): a bare `TricklePublisher` writing one segment per second of
//!   [`CHUNKS_PER_SEGMENT`] chunks of [`CHUNK_BYTES`] (no encoder: cheaper, and their segments
//!   are larger than a frame stream's, so faults land at other points of a body);
//! - every 4th stream also has a `TrickleSubscriber` reading its channel back.
//!
//! Each stream slot runs *sessions* back to back: a session owns a fresh channel and HTTP
//! client, and ends at the deadline or when its publisher gives up (404, channel closed, too
//! many failures in a row); the slot then starts a new one, as a service would start a new job.
//!
//! Faults come from [`schedule`], a pure function of (seed, streams, seconds): the same seed
//! gives the same schedule. Each is aimed at whatever session holds its slot when it fires,
//! through the server child's admin API (see [`FaultKind`] for the kinds).
//!
//! Checks (any failure names the session and makes the run fail): the accounting equations of
//! [`SessionRecord::problems`], RSS flat within [`RSS_TOLERANCE_PCT`] % or [`RSS_TOLERANCE_MIB`]
//! MiB between the first and last window after warm-up, and at the end no open channel, POST,
//! GET or connection on the server and no task, thread or descriptor left in the client.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway_actors::http::HttpClients;
use gateway_actors::media::{MediaStats, VideoPublisher, VideoPublisherConfig};
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{
    PublisherConfig, PublisherStats, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};
use gateway_core::trickle::{SeqSpec, MIME_MPEGTS};
use gateway_media::h264_pool::PoolStats;
use gateway_media::{H264EncoderPool, Rational, TestPattern, VideoFrame};
use gateway_testkit::trickle_server::{
    ChannelTotals, FaultMethod, TrickleFault, TrickleServerStats, ADMIN_PATH,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::report::table;
use crate::servers::{ServerAddrs, ServerProcess, CONNECTIONS_PATH};
use crate::sys::{cpu_seconds, peak_rss_kib, raise_fd_limit, rss_kib};

/// Frame size of frame streams.
pub const WIDTH: u32 = 160;
/// Frame height of frame streams.
pub const HEIGHT: u32 = 96;
/// Frame rate of frame streams.
pub const FPS: u32 = 10;
/// Encoder bitrate of frame streams.
pub const BITRATE: u32 = 150_000;
/// Chunks per segment of segment streams (one segment per second).
pub const CHUNKS_PER_SEGMENT: u32 = 8;
/// Bytes per chunk of segment streams.
pub const CHUNK_BYTES: usize = 4096;
/// The publishers' stall timeout (the library's default is 5 s; shorter makes stalls cheaper).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on finishing a session (flush, last segment, DELETEs of failed segments).
pub const FINISH_BOUND: Duration = Duration::from_secs(30);
/// How long a subscriber may take to end after its channel is deleted.
pub const SUBSCRIBER_BOUND: Duration = Duration::from_secs(15);
/// Mean time between two faults on the same stream.
pub const MEAN_FAULT_GAP_PER_STREAM: Duration = Duration::from_secs(20);
/// RSS may grow by this many percent from the first to the last window...
pub const RSS_TOLERANCE_PCT: f64 = 10.0;
/// ...or by this many MiB, whichever is larger.
pub const RSS_TOLERANCE_MIB: f64 = 16.0;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct SoakConfig {
    /// Concurrent stream slots.
    pub streams: usize,
    /// Length of the run.
    pub seconds: f64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Allowed RSS growth in MiB (the larger of this and [`RSS_TOLERANCE_PCT`] % is used);
    /// [`RSS_TOLERANCE_MIB`] by default.
    pub rss_tolerance_mib: f64,
}

// ---------------------------------------------------------------------------------------------
// The schedule
// ---------------------------------------------------------------------------------------------

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
    fn for_readers(self) -> bool {
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
const FAULTS_FROM: Duration = Duration::from_secs(3);
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

// ---------------------------------------------------------------------------------------------
// Sessions and their accounting
// ---------------------------------------------------------------------------------------------

/// What a subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberRecord {
    /// Segments it started reading.
    pub segments: u64,
    /// Bytes it read.
    pub bytes: u64,
    /// Why it stopped with an error, if it did.
    pub error: Option<String>,
    /// Whether it was still running [`SUBSCRIBER_BOUND`] after its channel was deleted.
    pub hung: bool,
}

/// One session of one slot: its own channel, publisher and counts.
#[derive(Debug, Clone, Default)]
pub struct SessionRecord {
    /// The channel name (the session's id in reports).
    pub channel: String,
    /// Frame stream (`VideoPublisher`) or segment stream (bare `TricklePublisher`).
    pub segment_stream: bool,
    /// Frames the soak handed to `write_frame` and it accepted.
    pub frames_submitted: u64,
    /// The video pipeline's totals (frame streams).
    pub media: Option<MediaStats>,
    /// Bytes the soak wrote into segments (segment streams).
    pub bytes_written: u64,
    /// Bytes of segments whose `finish` succeeded (segment streams).
    pub bytes_delivered: u64,
    /// Bytes of segments that failed (segment streams).
    pub bytes_failed: u64,
    /// Segments that succeeded / failed (segment streams).
    pub segments_ok: u64,
    /// Segments that failed (segment streams).
    pub segments_failed: u64,
    /// The trickle publisher's counters (segment streams).
    pub publisher: Option<PublisherStats>,
    /// The server's totals for the channel (filled in at the end of the run).
    pub server: ChannelTotals,
    /// Why the session ended.
    pub end: String,
    /// Its subscriber, if it had one.
    pub subscriber: Option<SubscriberRecord>,
    /// Problems met while running (hangs, setup failures).
    pub errors: Vec<String>,
}

impl SessionRecord {
    /// Bytes the client says the server confirmed.
    pub fn bytes_confirmed(&self) -> u64 {
        match &self.media {
            Some(m) => m.bytes_published,
            None => self.bytes_delivered,
        }
    }

    /// Every accounting equation that does not hold, as a sentence naming the session.
    ///
    /// Frame streams: frames submitted = frames in (the queue's count) = frames encoded +
    /// frames dropped, frames dropped = the sum of the reasons, and bytes encoded = bytes
    /// published + bytes drained. Segment streams: bytes written = bytes delivered + bytes of
    /// failed segments = the publisher's bytes sent + bytes refused. Both: the server's bytes
    /// in completed segments = the client's confirmed bytes, the server received no more than
    /// was sent, a subscriber read no more than the server received, and nothing hung.
    pub fn problems(&self) -> Vec<String> {
        let id = &self.channel;
        let mut out: Vec<String> = self.errors.iter().map(|e| format!("{id}: {e}")).collect();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(format!("{id}: {what}"));
            }
        };
        let sent = match &self.media {
            Some(m) => {
                check(
                    self.frames_submitted == m.frames_in,
                    format!("{} frames submitted but {} counted in", self.frames_submitted, m.frames_in),
                );
                check(
                    m.frames_in == m.frames_encoded + m.frames_dropped,
                    format!(
                        "frames in {} != encoded {} + dropped {}",
                        m.frames_in, m.frames_encoded, m.frames_dropped
                    ),
                );
                check(
                    m.frames_dropped == m.drops.total(),
                    format!("frames dropped {} != the sum of the reasons {:?}", m.frames_dropped, m.drops),
                );
                check(
                    m.bytes_encoded == m.bytes_published + m.bytes_drained,
                    format!(
                        "bytes encoded {} != published {} + drained {}",
                        m.bytes_encoded, m.bytes_published, m.bytes_drained
                    ),
                );
                m.bytes_encoded
            }
            None if self.segment_stream => {
                check(
                    self.bytes_written == self.bytes_delivered + self.bytes_failed,
                    format!(
                        "bytes written {} != delivered {} + failed {}",
                        self.bytes_written, self.bytes_delivered, self.bytes_failed
                    ),
                );
                if let Some(p) = &self.publisher {
                    check(
                        self.bytes_written == p.bytes_sent + p.bytes_failed,
                        format!(
                            "bytes written {} != publisher's sent {} + refused {}",
                            self.bytes_written, p.bytes_sent, p.bytes_failed
                        ),
                    );
                }
                self.bytes_written
            }
            None => {
                check(false, "no stats from the video publisher".into());
                0
            }
        };
        check(
            self.server.bytes_completed == self.bytes_confirmed(),
            format!(
                "server has {} bytes in completed segments, client confirmed {}",
                self.server.bytes_completed,
                self.bytes_confirmed()
            ),
        );
        check(
            self.server.bytes_received <= sent,
            format!("server received {} bytes, client produced only {sent}", self.server.bytes_received),
        );
        if let Some(s) = &self.subscriber {
            check(
                !s.hung,
                format!("subscriber still running {SUBSCRIBER_BOUND:?} after the channel was deleted"),
            );
            check(
                s.bytes <= self.server.bytes_received,
                format!("subscriber read {} bytes, server received {}", s.bytes, self.server.bytes_received),
            );
        }
        out
    }
}

/// What every session task shares.
struct Ctx {
    base: String,
    admin: String,
    control: reqwest::Client,
    clip: Vec<VideoFrame>,
    started: Instant,
    deadline: Instant,
    /// The channel each slot's session is using now.
    current: Mutex<Vec<Option<String>>>,
    /// Per slot, until when (ms from start) its subscriber reads slowly.
    slow_until_ms: Vec<AtomicU64>,
}

impl Ctx {
    fn set_current(&self, slot: usize, channel: Option<String>) {
        self.current.lock().unwrap_or_else(|e| e.into_inner())[slot] = channel;
    }

    fn current(&self, slot: usize) -> Option<String> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())[slot].clone()
    }

    fn reading_slowly(&self, slot: usize) -> bool {
        (self.started.elapsed().as_millis() as u64) < self.slow_until_ms[slot].load(Ordering::Relaxed)
    }
}

/// Runs slot `slot`'s sessions until the deadline.
async fn run_slot(ctx: Arc<Ctx>, slot: usize) -> Vec<SessionRecord> {
    let mut records = Vec::new();
    let mut n = 0;
    while Instant::now() + Duration::from_secs(1) < ctx.deadline {
        let channel = format!("soak-{}-{slot}-{n}", std::process::id());
        n += 1;
        let record = run_session(&ctx, slot, channel).await;
        let setup_failed = !record.errors.is_empty() && record.media.is_none() && record.publisher.is_none();
        records.push(record);
        if setup_failed {
            // Do not spin on a broken setup.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    records
}

async fn run_session(ctx: &Arc<Ctx>, slot: usize, channel: String) -> SessionRecord {
    let mut rec = SessionRecord {
        channel: channel.clone(),
        segment_stream: is_segment_stream(slot),
        ..Default::default()
    };
    let url = format!("{}{channel}", ctx.base);
    // The channel exists before anyone subscribes (a GET on a missing channel is the end).
    let created = ctx.control.post(&url).header("Expect-Content", MIME_MPEGTS).send().await;
    if !matches!(&created, Ok(r) if r.status().is_success()) {
        rec.errors.push(format!("cannot create the channel: {created:?}"));
        return rec;
    }
    let http = match HttpClients::new(OrchestratorTrust::Insecure).and_then(|h| h.orchestrator(&url)) {
        Ok(h) => h,
        Err(e) => {
            rec.errors.push(format!("no HTTP client: {e}"));
            return rec;
        }
    };
    let subscriber =
        has_subscriber(slot).then(|| tokio::spawn(subscribe(ctx.clone(), slot, http.clone(), url.clone())));
    ctx.set_current(slot, Some(channel.clone()));
    let config = PublisherConfig { stall_timeout: STALL_TIMEOUT, ..Default::default() };
    let trickle = TricklePublisher::start(http, &url, config).await;
    if rec.segment_stream {
        segment_session(ctx, &mut rec, trickle).await;
    } else {
        frame_session(ctx, &mut rec, trickle).await;
    }
    ctx.set_current(slot, None);
    // End of the job: delete the channel (it may already be gone), which ends the subscriber.
    let _ = tokio::time::timeout(Duration::from_secs(10), ctx.control.delete(&url).send()).await;
    if let Some(task) = subscriber {
        let abort = task.abort_handle();
        rec.subscriber = Some(match tokio::time::timeout(SUBSCRIBER_BOUND, task).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => SubscriberRecord { error: Some(format!("panicked: {e}")), ..Default::default() },
            Err(_) => {
                abort.abort();
                SubscriberRecord { hung: true, ..Default::default() }
            }
        });
    }
    rec
}

async fn frame_session(ctx: &Ctx, rec: &mut SessionRecord, trickle: TricklePublisher) {
    let mut config = VideoPublisherConfig::h264(WIDTH, HEIGHT);
    config.frame_rate = Rational::new(FPS, 1);
    config.bitrate_bps = BITRATE;
    let vp = match VideoPublisher::start(trickle, config) {
        Ok(vp) => vp,
        Err(e) => {
            rec.errors.push(format!("video publisher did not start: {e}"));
            return;
        }
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / FPS);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    rec.end = "deadline".into();
    loop {
        ticker.tick().await;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let mut frame = ctx.clip[(n % ctx.clip.len() as u64) as usize].clone();
        if let Err(e) = frame.set_pts(n as i64, Rational::new(1, FPS)) {
            rec.errors.push(format!("bad pts: {e}"));
            break;
        }
        n += 1;
        match vp.write_frame(frame) {
            Ok(()) => rec.frames_submitted += 1,
            Err(e) => {
                rec.end = e.to_string();
                break;
            }
        }
        if n.is_multiple_of(u64::from(FPS)) {
            if let Ok(MediaStats { terminal_error: Some(t), .. }) = vp.stats().await {
                rec.end = t;
                break;
            }
        }
    }
    match tokio::time::timeout(FINISH_BOUND, vp.finish()).await {
        Ok(Ok(stats)) => rec.media = Some(stats),
        Ok(Err(e)) => rec.errors.push(format!("finish failed: {e}")),
        Err(_) => rec.errors.push(format!("finish took longer than {FINISH_BOUND:?}")),
    }
}

async fn segment_session(ctx: &Ctx, rec: &mut SessionRecord, mut publisher: TricklePublisher) {
    let payload = Bytes::from((0..CHUNK_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let period = Duration::from_secs(1);
    let mut next = Instant::now();
    rec.end = "deadline".into();
    'segments: loop {
        tokio::time::sleep_until(next).await;
        next += period;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let mut sink = match publisher.next_segment() {
            Ok(s) => s,
            Err(e) => {
                rec.end = e.to_string();
                break;
            }
        };
        let mut bytes = 0;
        for w in 0..CHUNKS_PER_SEGMENT {
            tokio::time::sleep_until(next - period + period / CHUNKS_PER_SEGMENT * w).await;
            rec.bytes_written += CHUNK_BYTES as u64;
            bytes += CHUNK_BYTES as u64;
            if sink.write(payload.clone()).await.is_err() {
                rec.bytes_failed += bytes;
                rec.segments_failed += 1;
                drop(sink);
                continue 'segments;
            }
        }
        match tokio::time::timeout(FINISH_BOUND, sink.finish()).await {
            Ok(Ok(())) => {
                rec.bytes_delivered += bytes;
                rec.segments_ok += 1;
            }
            Ok(Err(_)) => {
                rec.bytes_failed += bytes;
                rec.segments_failed += 1;
            }
            Err(_) => {
                rec.errors.push(format!("segment finish took longer than {FINISH_BOUND:?}"));
                rec.bytes_failed += bytes;
                rec.segments_failed += 1;
            }
        }
    }
    // Let the DELETEs of failed segments go out, then read the counters.
    publisher.settled().await;
    rec.publisher = Some(publisher.stats());
    if tokio::time::timeout(FINISH_BOUND, publisher.close()).await.is_err() {
        rec.errors.push(format!("close took longer than {FINISH_BOUND:?}"));
    }
}

async fn subscribe(ctx: Arc<Ctx>, slot: usize, http: reqwest::Client, url: String) -> SubscriberRecord {
    let mut rec = SubscriberRecord::default();
    let config = SubscriberConfig { start: SeqSpec::At(0), ..Default::default() };
    let mut sub = TrickleSubscriber::new(http, &url, config);
    loop {
        match sub.next_segment().await {
            Ok(Some(mut seg)) => {
                rec.segments += 1;
                while let Ok(Some(chunk)) = seg.chunk().await {
                    rec.bytes += chunk.len() as u64;
                    if ctx.reading_slowly(slot) {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                rec.error = Some(e.to_string().chars().take(80).collect());
                break;
            }
        }
    }
    rec
}

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

/// Faults applied and skipped (their slot was between sessions), per kind.
#[derive(Debug, Clone, Default)]
pub struct InjectionCounts {
    /// Applied through the admin API.
    pub applied: BTreeMap<FaultKind, u64>,
    /// Not applied: no session on the slot, or the admin call failed.
    pub skipped: BTreeMap<FaultKind, u64>,
}

async fn inject(ctx: Arc<Ctx>, faults: Vec<ScheduledFault>) -> InjectionCounts {
    let mut counts = InjectionCounts::default();
    for f in faults {
        tokio::time::sleep_until(ctx.started + f.at).await;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let applied = match ctx.current(f.slot) {
            Some(channel) => apply(&ctx, &channel, &f).await,
            None => false,
        };
        let m = if applied { &mut counts.applied } else { &mut counts.skipped };
        *m.entry(f.kind).or_insert(0) += 1;
    }
    counts
}

async fn apply(ctx: &Ctx, channel: &str, f: &ScheduledFault) -> bool {
    let fault = match f.kind {
        FaultKind::StalledBody => TrickleFault::StallSegments { after_bytes: f.param, count: 1 },
        FaultKind::DroppedConnection => TrickleFault::DropSegments { after_bytes: f.param, count: 1 },
        FaultKind::ServerErrorRetried | FaultKind::NotFound => {
            TrickleFault::RespondStatus { method: FaultMethod::Post, status: f.param as u16, count: 1 }
        }
        FaultKind::ServerErrorTwice => {
            TrickleFault::RespondStatus { method: FaultMethod::Post, status: f.param as u16, count: 2 }
        }
        FaultKind::ReaderError => {
            let status = if f.param.is_multiple_of(2) { 470 } else { 500 };
            TrickleFault::RespondStatus { method: FaultMethod::Get, status, count: f.param as u32 }
        }
        FaultKind::SlowReader => TrickleFault::DelayFirstByte(Duration::from_millis(f.param)),
        FaultKind::ChannelClosed => {
            let url = format!("{}{channel}", ctx.base);
            return matches!(ctx.control.delete(url).send().await, Ok(r) if r.status().is_success());
        }
    };
    let ok = set_fault(ctx, channel, &fault).await;
    if ok && f.kind == FaultKind::SlowReader {
        let until = (f.at + f.hold).as_millis() as u64;
        ctx.slow_until_ms[f.slot].store(until, Ordering::Relaxed);
        // Lift the delay when the hold is over (other faults of the channel stay).
        let (control, admin, channel, hold) =
            (ctx.control.clone(), ctx.admin.clone(), channel.to_owned(), f.hold);
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let lift = TrickleFault::DelayFirstByte(Duration::ZERO);
            let _ = control.post(format!("{admin}{channel}/faults")).json(&lift).send().await;
        });
    }
    ok
}

async fn set_fault(ctx: &Ctx, channel: &str, fault: &TrickleFault) -> bool {
    let url = format!("{}{channel}/faults", ctx.admin);
    matches!(ctx.control.post(url).json(fault).send().await, Ok(r) if r.status().is_success())
}

// ---------------------------------------------------------------------------------------------
// Memory and leak checks
// ---------------------------------------------------------------------------------------------

/// One sample of the client process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// Seconds from the start of the run.
    pub t: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// OS threads.
    pub threads: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// The process as it is now.
pub fn proc_sample(t: f64) -> ProcSample {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Threads:")).and_then(|l| l[8..].trim().parse().ok()))
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    ProcSample { t, rss_kib: rss_kib().unwrap_or(0), threads, fds }
}

/// The memory verdict: medians of the first and last window after warm-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryVerdict {
    /// Warm-up excluded, seconds.
    pub warmup_s: f64,
    /// Window length, seconds.
    pub window_s: f64,
    /// Median RSS of the first window, MiB.
    pub first_mib: f64,
    /// Median RSS of the last window, MiB.
    pub last_mib: f64,
    /// Most RSS seen, MiB.
    pub max_mib: f64,
    /// Least-squares slope after warm-up, MiB per minute.
    pub slope_mib_per_min: f64,
    /// Allowed growth, MiB.
    pub allowed_mib: f64,
}

impl MemoryVerdict {
    /// Whether the last window stayed within the allowed growth of the first.
    pub fn flat(&self) -> bool {
        self.last_mib - self.first_mib <= self.allowed_mib
    }
}

/// Judges `samples` of a run of `seconds`.
pub fn memory_verdict(samples: &[ProcSample], seconds: f64, tolerance_mib: f64) -> MemoryVerdict {
    let warmup_s = (seconds * 0.25).clamp(10.0, 60.0);
    let window_s = (seconds * 0.15).clamp(8.0, 60.0);
    let mib = |k: u64| k as f64 / 1024.0;
    let median = |lo: f64, hi: f64| {
        let mut v: Vec<f64> =
            samples.iter().filter(|s| s.t >= lo && s.t < hi).map(|s| mib(s.rss_kib)).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let first_mib = median(warmup_s, warmup_s + window_s);
    let last_mib = median(seconds - window_s, seconds + 1.0);
    let after: Vec<(f64, f64)> =
        samples.iter().filter(|s| s.t >= warmup_s).map(|s| (s.t, mib(s.rss_kib))).collect();
    let slope = if after.len() >= 2 {
        let n = after.len() as f64;
        let (mt, mr) =
            (after.iter().map(|p| p.0).sum::<f64>() / n, after.iter().map(|p| p.1).sum::<f64>() / n);
        let cov: f64 = after.iter().map(|p| (p.0 - mt) * (p.1 - mr)).sum();
        let var: f64 = after.iter().map(|p| (p.0 - mt).powi(2)).sum();
        if var > 0.0 {
            cov / var * 60.0
        } else {
            0.0
        }
    } else {
        0.0
    };
    MemoryVerdict {
        warmup_s,
        window_s,
        first_mib,
        last_mib,
        max_mib: samples.iter().map(|s| mib(s.rss_kib)).fold(0.0, f64::max),
        slope_mib_per_min: slope,
        allowed_mib: (first_mib * RSS_TOLERANCE_PCT / 100.0).max(tolerance_mib),
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Everything a run measured and every check that failed.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// The configuration.
    pub streams: usize,
    /// Seconds of streaming.
    pub seconds: f64,
    /// The seed.
    pub seed: u64,
    /// Schedule fingerprint.
    pub fingerprint: u64,
    /// Scheduled faults per kind.
    pub scheduled: BTreeMap<FaultKind, u64>,
    /// Applied and skipped faults.
    pub injected: InjectionCounts,
    /// Every session.
    pub sessions: Vec<SessionRecord>,
    /// Client samples, one a second.
    pub samples: Vec<ProcSample>,
    /// The memory verdict.
    pub memory: MemoryVerdict,
    /// Client CPU seconds over the run.
    pub client_cpu_s: f64,
    /// Server child CPU seconds over the run.
    pub server_cpu_s: f64,
    /// Wall seconds from start to the end of teardown.
    pub wall_s: f64,
    /// The server's counters after teardown.
    pub server_after: TrickleServerStats,
    /// Open connections on the server after teardown (the admin call's own included).
    pub server_connections_after: usize,
    /// Client before the streams and after teardown.
    pub client_before: ProcSample,
    /// The shared H.264 encoder pool after teardown (sessions that reused an encoder).
    pub encoders: PoolStats,
    /// Client after teardown.
    pub client_after: ProcSample,
    /// Tokio tasks alive before the streams / after teardown.
    pub tasks_before: usize,
    /// Tokio tasks alive after teardown.
    pub tasks_after: usize,
    /// Every failed check.
    pub failures: Vec<String>,
}

/// Runs the soak against the server child.
pub fn run(server: &ServerProcess, config: SoakConfig) -> anyhow::Result<SoakReport> {
    raise_fd_limit();
    anyhow::ensure!(config.streams >= 1, "at least one stream");
    anyhow::ensure!(config.seconds >= 10.0, "a soak lasts at least 10 s");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let server_cpu0 = server.cpu_seconds();
    let report = rt.block_on(run_async(&server.addrs, config))?;
    let mut report = report;
    report.server_cpu_s = server.cpu_seconds() - server_cpu0;
    drop(rt);
    Ok(report)
}

async fn run_async(addrs: &ServerAddrs, config: SoakConfig) -> anyhow::Result<SoakReport> {
    let faults = schedule(config.seed, config.streams, config.seconds);
    let pattern = TestPattern::new(WIDTH, HEIGHT, Rational::new(FPS, 1))?;
    let control = reqwest::Client::builder().pool_max_idle_per_host(4).build()?;
    // The media runtime's threads are fixed for the process (sized by cores), not per stream:
    // start it first so the leak check below counts them in the baseline.
    gateway_actors::media::start_media_runtime()?;
    let tasks_before = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let client_before = proc_sample(0.0);
    let started = Instant::now() + Duration::from_millis(100);
    let ctx = Arc::new(Ctx {
        base: addrs.trickle_base(),
        admin: format!("http://{}{ADMIN_PATH}", addrs.trickle),
        control: control.clone(),
        clip: (0..u64::from(FPS) * 2).map(|i| pattern.frame(i)).collect(),
        started,
        deadline: started + Duration::from_secs_f64(config.seconds),
        current: Mutex::new(vec![None; config.streams]),
        slow_until_ms: (0..config.streams).map(|_| AtomicU64::new(0)).collect(),
    });

    // One sample a second on a plain thread, so a busy runtime does not skew the timing.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, t0) = (sampling.clone(), std::time::Instant::now());
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                out.push(proc_sample(t0.elapsed().as_secs_f64()));
                std::thread::sleep(Duration::from_secs(1));
            }
            out
        })
    };
    let cpu0 = cpu_seconds();
    let injector = tokio::spawn(inject(ctx.clone(), faults.clone()));
    let mut slots = Vec::with_capacity(config.streams);
    for slot in 0..config.streams {
        let ctx = ctx.clone();
        // Staggered over the first second, so segment boundaries do not line up.
        let delay = Duration::from_secs(1).mul_f64(slot as f64 / config.streams as f64);
        slots.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            run_slot(ctx, slot).await
        }));
    }
    let mut failures = Vec::new();
    let mut sessions = Vec::new();
    let bound = ctx.deadline + FINISH_BOUND + SUBSCRIBER_BOUND + Duration::from_secs(20);
    for (slot, task) in slots.into_iter().enumerate() {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(bound, task).await {
            Ok(Ok(records)) => sessions.extend(records),
            Ok(Err(e)) => failures.push(format!("slot {slot}: task failed: {e}")),
            Err(_) => {
                abort.abort();
                failures.push(format!(
                    "slot {slot}: still running {:?} after the deadline",
                    bound - ctx.deadline
                ));
            }
        }
    }
    let injected = injector.await.unwrap_or_default();
    let client_cpu_s = cpu_seconds() - cpu0;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let memory = memory_verdict(&samples, config.seconds, config.rss_tolerance_mib);

    // Teardown checks: the server must have nothing open...
    let stats_url = format!("{}stats", ctx.admin);
    let connections_url = format!("http://{}{CONNECTIONS_PATH}", addrs.trickle);
    let settle_by = Instant::now() + Duration::from_secs(20);
    let (mut server_after, mut server_connections_after);
    loop {
        // A fresh client per look, so its own connection is the only one it adds.
        let look = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
        server_after = match look.get(&stats_url).send().await {
            Ok(r) => r.json::<TrickleServerStats>().await.unwrap_or_default(),
            Err(_) => TrickleServerStats::default(),
        };
        server_connections_after = match look.get(&connections_url).send().await {
            Ok(r) => r.text().await.ok().and_then(|t| t.trim().parse().ok()).unwrap_or(usize::MAX),
            Err(_) => usize::MAX,
        };
        let settled = server_after.channels == 0
            && server_after.active_posts == 0
            && server_after.active_gets == 0
            && server_connections_after <= 1 + CONTROL_POOL;
        if settled || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // ...the server's view of every session, now that nothing is in flight...
    for s in &mut sessions {
        let url = format!("{}{}/totals", ctx.admin, s.channel);
        match control.get(&url).send().await {
            Ok(r) => match r.json::<ChannelTotals>().await {
                Ok(t) => s.server = t,
                Err(e) => s.errors.push(format!("no server totals: {e}")),
            },
            Err(e) => s.errors.push(format!("no server totals: {e}")),
        }
    }

    // ...and the client must have nothing left running once the soak's own clients are gone.
    let wall_s = ctx.started.elapsed().as_secs_f64();
    drop(ctx);
    drop(control);
    let settle_by = Instant::now() + Duration::from_secs(20);
    let (mut tasks_after, mut client_after);
    loop {
        tasks_after = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        client_after = proc_sample(wall_s);
        let settled = tasks_after <= tasks_before
            && client_after.threads <= client_before.threads + THREAD_SLACK
            && client_after.fds <= client_before.fds + FD_SLACK;
        if settled || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for s in &sessions {
        failures.extend(s.problems());
    }
    if !memory.flat() {
        failures.push(format!(
            "client RSS grew from {:.1} MiB to {:.1} MiB (allowed {:.1} MiB)",
            memory.first_mib, memory.last_mib, memory.allowed_mib
        ));
    }
    let mut leak = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    leak(server_after.channels == 0, format!("{} channel(s) left open on the server", server_after.channels));
    leak(
        server_after.active_posts == 0,
        format!("{} POST(s) still open on the server", server_after.active_posts),
    );
    leak(
        server_after.active_gets == 0,
        format!("{} GET(s) still open on the server", server_after.active_gets),
    );
    leak(
        server_connections_after <= 1 + CONTROL_POOL,
        format!(
            "{server_connections_after} connection(s) still open on the server (at most {} are the soak's own)",
            1 + CONTROL_POOL
        ),
    );
    leak(
        tasks_after <= tasks_before,
        format!("{tasks_after} tokio task(s) alive after teardown, {tasks_before} before"),
    );
    leak(
        client_after.threads <= client_before.threads + THREAD_SLACK,
        format!("{} thread(s) after teardown, {} before", client_after.threads, client_before.threads),
    );
    leak(
        client_after.fds <= client_before.fds + FD_SLACK,
        format!("{} open descriptor(s) after teardown, {} before", client_after.fds, client_before.fds),
    );
    let applied: u64 = injected.applied.values().sum();
    leak(applied > 0 || faults.is_empty(), "no fault was applied".into());

    Ok(SoakReport {
        streams: config.streams,
        seconds: config.seconds,
        seed: config.seed,
        fingerprint: fingerprint(&faults),
        scheduled: count_by_kind(&faults),
        injected,
        sessions,
        samples,
        memory,
        client_cpu_s,
        server_cpu_s: 0.0,
        wall_s,
        server_after,
        server_connections_after,
        client_before,
        encoders: H264EncoderPool::shared().stats(),
        client_after,
        tasks_before,
        tasks_after,
        failures,
    })
}

/// Idle connections the soak's control client may keep.
const CONTROL_POOL: usize = 4;
/// Threads allowed above the start (tokio's blocking pool keeps idle threads for 10 s).
const THREAD_SLACK: u64 = 2;
/// Descriptors allowed above the start.
const FD_SLACK: u64 = 2;

// ---------------------------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------------------------

impl SoakReport {
    /// The markdown summary; ends with `soak: PASS` or `soak: FAIL (n)`.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let frame: Vec<&SessionRecord> = self.sessions.iter().filter(|s| !s.segment_stream).collect();
        let seg: Vec<&SessionRecord> = self.sessions.iter().filter(|s| s.segment_stream).collect();
        let media =
            |f: fn(&MediaStats) -> u64| frame.iter().filter_map(|s| s.media.as_ref()).map(f).sum::<u64>();
        let sum = |v: &[&SessionRecord], f: fn(&SessionRecord) -> u64| v.iter().map(|s| f(s)).sum::<u64>();
        let _ = writeln!(
            o,
            "## Soak: {} streams, {:.0} s, seed {}\n\nschedule fingerprint {:016x}; wall {:.0} s including teardown\n",
            self.streams, self.seconds, self.seed, self.fingerprint, self.wall_s
        );
        let _ = writeln!(
            o,
            "Load: {} frame streams ({WIDTH}x{HEIGHT} @ {FPS} fps, H.264 {} kbit/s, VideoPublisher) and {} segment streams ({CHUNKS_PER_SEGMENT} x {CHUNK_BYTES} B per 1 s segment, TricklePublisher); a subscriber on every 4th slot; stall timeout {:?}.\n",
            (0..self.streams).filter(|s| !is_segment_stream(*s)).count(),
            BITRATE / 1000,
            (0..self.streams).filter(|s| is_segment_stream(*s)).count(),
            STALL_TIMEOUT
        );
        let rows: Vec<Vec<String>> = FaultKind::ALL
            .iter()
            .map(|k| {
                vec![
                    k.name().to_owned(),
                    self.scheduled.get(k).copied().unwrap_or(0).to_string(),
                    self.injected.applied.get(k).copied().unwrap_or(0).to_string(),
                    self.injected.skipped.get(k).copied().unwrap_or(0).to_string(),
                ]
            })
            .collect();
        let _ = writeln!(
            o,
            "Faults:\n\n{}",
            table(&["fault", "scheduled", "applied", "skipped (slot between sessions)"], &rows)
        );
        let ends: BTreeMap<String, u64> = self.sessions.iter().fold(BTreeMap::new(), |mut m, s| {
            let reason: String = s.end.chars().take(60).collect();
            *m.entry(if reason.is_empty() { "setup failed".into() } else { reason }).or_insert(0) += 1;
            m
        });
        let subs: Vec<&SubscriberRecord> =
            self.sessions.iter().filter_map(|s| s.subscriber.as_ref()).collect();
        let mut totals = vec![
            vec![
                "sessions (frame / segment streams)".to_owned(),
                format!("{} ({} / {})", self.sessions.len(), frame.len(), seg.len()),
            ],
            vec!["frames submitted".into(), sum(&frame, |s| s.frames_submitted).to_string()],
            vec!["frames encoded".into(), media(|m| m.frames_encoded).to_string()],
            vec![
                "frames dropped (overflow / debt / non-monotonic / encode failed / stream ended)".into(),
                format!(
                    "{} ({} / {} / {} / {} / {})",
                    media(|m| m.frames_dropped),
                    media(|m| m.drops.overflow),
                    media(|m| m.drops.debt),
                    media(|m| m.drops.non_monotonic),
                    media(|m| m.drops.encode_failed),
                    media(|m| m.drops.stream_ended)
                ),
            ],
            vec![
                "frame streams: segments published / failed".into(),
                format!("{} / {}", media(|m| m.segments_published), media(|m| m.segments_failed)),
            ],
            vec![
                "frame streams: bytes encoded = published + drained".into(),
                format!(
                    "{} = {} + {}",
                    media(|m| m.bytes_encoded),
                    media(|m| m.bytes_published),
                    media(|m| m.bytes_drained)
                ),
            ],
            vec![
                "frame streams: writer restarts".into(),
                media(|m| u64::from(m.writer_restarts)).to_string(),
            ],
            vec![
                "H.264 encoders built / reused / dropped / idle at the end".into(),
                format!(
                    "{} / {} / {} / {}",
                    self.encoders.created, self.encoders.reused, self.encoders.dropped, self.encoders.idle
                ),
            ],
            vec![
                "segment streams: segments ok / failed".into(),
                format!("{} / {}", sum(&seg, |s| s.segments_ok), sum(&seg, |s| s.segments_failed)),
            ],
            vec![
                "segment streams: bytes written = delivered + failed".into(),
                format!(
                    "{} = {} + {}",
                    sum(&seg, |s| s.bytes_written),
                    sum(&seg, |s| s.bytes_delivered),
                    sum(&seg, |s| s.bytes_failed)
                ),
            ],
            vec![
                "server: completed segments / bytes in them".into(),
                format!(
                    "{} / {}",
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.segments_completed),
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.bytes_completed)
                ),
            ],
            vec![
                "server: failed POSTs / refused requests".into(),
                format!(
                    "{} / {}",
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.posts_failed),
                    sum(&self.sessions.iter().collect::<Vec<_>>(), |s| s.server.requests_refused)
                ),
            ],
            vec![
                "subscribers: sessions / segments / bytes read / ended with error".into(),
                format!(
                    "{} / {} / {} / {}",
                    subs.len(),
                    subs.iter().map(|s| s.segments).sum::<u64>(),
                    subs.iter().map(|s| s.bytes).sum::<u64>(),
                    subs.iter().filter(|s| s.error.is_some()).count()
                ),
            ],
        ];
        let m = &self.memory;
        totals.push(vec![
            "client RSS: start / first window / last window / max MiB".into(),
            format!(
                "{:.1} / {:.1} / {:.1} / {:.1} (windows of {:.0} s after {:.0} s warm-up; allowed growth {:.1}; slope {:+.2} MiB/min)",
                self.client_before.rss_kib as f64 / 1024.0,
                m.first_mib,
                m.last_mib,
                m.max_mib,
                m.window_s,
                m.warmup_s,
                m.allowed_mib,
                m.slope_mib_per_min
            ),
        ]);
        let step = (self.seconds / 10.0).ceil().max(1.0);
        let timeline: Vec<String> = (0..=10)
            .filter_map(|i| {
                let t = i as f64 * step;
                self.samples.iter().find(|s| s.t >= t).map(|s| format!("{:.0}", s.rss_kib as f64 / 1024.0))
            })
            .collect();
        totals.push(vec![format!("client RSS every {step:.0} s, MiB"), timeline.join(", ")]);
        totals.push(vec![
            "client peak RSS (VmHWM) MiB".into(),
            format!("{:.1}", peak_rss_kib().unwrap_or(0) as f64 / 1024.0),
        ]);
        totals.push(vec![
            "CPU, cores (client / server child)".into(),
            format!("{:.2} / {:.2}", self.client_cpu_s / self.seconds, self.server_cpu_s / self.seconds),
        ]);
        totals.push(vec![
            "after teardown: server channels / POSTs / GETs / connections".into(),
            format!(
                "{} / {} / {} / {}",
                self.server_after.channels,
                self.server_after.active_posts,
                self.server_after.active_gets,
                self.server_connections_after
            ),
        ]);
        totals.push(vec![
            "client before -> after: tokio tasks / threads / fds".into(),
            format!(
                "{} -> {} / {} -> {} / {} -> {}",
                self.tasks_before,
                self.tasks_after,
                self.client_before.threads,
                self.client_after.threads,
                self.client_before.fds,
                self.client_after.fds
            ),
        ]);
        let _ = writeln!(o, "Totals:\n\n{}", table(&["", "value"], &totals));
        let end_rows: Vec<Vec<String>> = ends.into_iter().map(|(k, v)| vec![k, v.to_string()]).collect();
        let _ = writeln!(o, "Sessions ended by:\n\n{}", table(&["reason", "sessions"], &end_rows));
        if self.failures.is_empty() {
            let _ = writeln!(o, "soak: PASS");
        } else {
            let _ = writeln!(o, "Failed checks:\n");
            for f in self.failures.iter().take(50) {
                let _ = writeln!(o, "- {f}");
            }
            if self.failures.len() > 50 {
                let _ = writeln!(o, "- ... and {} more", self.failures.len() - 50);
            }
            let _ = writeln!(o, "\nsoak: FAIL ({})", self.failures.len());
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use gateway_actors::media::FrameDrops;

    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = schedule(42, 100, 60.0);
        assert_eq!(a, schedule(42, 100, 60.0));
        assert_ne!(fingerprint(&a), fingerprint(&schedule(43, 100, 60.0)));
        // About one fault per stream every 20 s, between 3 s and the quiet tail.
        assert!((200..400).contains(&a.len()), "{}", a.len());
        assert!(a.iter().all(|f| f.at >= FAULTS_FROM && f.at.as_secs_f64() < 56.0 && f.slot < 100));
        let kinds = count_by_kind(&a);
        assert_eq!(kinds.len(), FaultKind::ALL.len(), "every kind appears: {kinds:?}");
        assert!(a.iter().filter(|f| f.kind.for_readers()).all(|f| has_subscriber(f.slot)));
    }

    #[test]
    fn accounting_names_the_session_and_the_broken_equation() {
        let media = MediaStats {
            frames_in: 10,
            frames_encoded: 9,
            frames_dropped: 1,
            drops: FrameDrops { overflow: 1, ..Default::default() },
            bytes_encoded: 100,
            bytes_published: 70,
            bytes_drained: 30,
            ..Default::default()
        };
        let mut rec = SessionRecord {
            channel: "c".into(),
            frames_submitted: 10,
            media: Some(media.clone()),
            server: ChannelTotals { bytes_completed: 70, bytes_received: 80, ..Default::default() },
            ..Default::default()
        };
        assert_eq!(rec.problems(), Vec::<String>::new());
        rec.server.bytes_completed = 69;
        rec.media = Some(MediaStats { bytes_drained: 29, ..media });
        let problems = rec.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.starts_with("c: ")));

        let seg = SessionRecord {
            channel: "s".into(),
            segment_stream: true,
            bytes_written: 10,
            bytes_delivered: 6,
            bytes_failed: 4,
            publisher: Some(PublisherStats { bytes_sent: 8, bytes_failed: 2, ..Default::default() }),
            server: ChannelTotals { bytes_completed: 6, bytes_received: 9, ..Default::default() },
            subscriber: Some(SubscriberRecord { bytes: 10, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(seg.problems().len(), 1, "the subscriber read more than the server received");
    }

    #[test]
    fn memory_is_judged_on_windows_after_warm_up() {
        let flat: Vec<ProcSample> = (0..60)
            .map(|t| ProcSample {
                t: t as f64,
                rss_kib: if t < 10 { 1024 } else { 40 * 1024 },
                ..Default::default()
            })
            .collect();
        let v = memory_verdict(&flat, 60.0, RSS_TOLERANCE_MIB);
        assert!(v.flat() && v.first_mib == 40.0 && v.slope_mib_per_min.abs() < 1e-9, "{v:?}");
        let growing: Vec<ProcSample> = (0..60)
            .map(|t| ProcSample { t: t as f64, rss_kib: 40 * 1024 + t * 1024, ..Default::default() })
            .collect();
        let v = memory_verdict(&growing, 60.0, RSS_TOLERANCE_MIB);
        assert!(!v.flat(), "{v:?}");
        assert!((v.slope_mib_per_min - 60.0).abs() < 1.0, "{v:?}");
    }
}
