//! The trickle server double: go-livepeer's `/ai/trickle/` pub/sub server, in memory, with fault
//! injection.
//!
//! Every test, benchmark and the demo talk to this server instead of a real orchestrator, and the
//! official Python SDK and go-livepeer's trickle client must work against it, so it follows
//! go-livepeer's `trickle/trickle_server.go` wire behaviour rule by rule (see
//! `/work/shared/reference/go-livepeer-protocol.md` §1). All protocol facts (paths, headers,
//! status 470, ring size, default timings) come from [`gateway_core::trickle`].
//!
//! State per channel: a ring of [`SERVER_RING_SIZE`] segment slots (slot = `seq % 5`),
//! `nextWrite` (advanced to `seq + 1` by a segment's first body byte, or by an empty POST), the
//! mime type, a closed flag and the last write time for the idle sweep. A segment is an
//! append-only list of chunks; readers see each chunk as soon as it is appended and are never
//! throttled against the writer. Evicted segments are freed when their last reader lets go.
//!
//! Routes (all under [`BASE_PATH`]):
//! - `POST {chan}`: create (only if it exists or `autocreate`; mime from `Expect-Content`).
//! - `POST {chan}/{seq}`: publish a segment (`-1` = nextWrite); the response comes after the body.
//! - `GET {chan}/{seq}`: subscribe (`-1` next, `-2` current); headers wait for the first byte.
//! - `GET {chan}/next`: the next write index.
//! - `DELETE {chan}` and `DELETE {chan}/{seq}`: close a channel or one segment.
//!
//! Where this double knowingly differs from go-livepeer:
//! - No unsolicited `100 Continue` keepalives while a POST waits for its first byte: hyper cannot
//!   send interim responses from a handler cheaply. Clients must tolerate them but not need them.
//! - Go crashes on negative indices other than `-1`/`-2` (and on `-2` for POST); here they are
//!   answered `400 Invalid idx`, as are indices that do not fit or whose successor would not fit
//!   in an `i64` (the `Lp-Trickle-Latest` header must stay parseable).
//! - A GET that precreates a segment closes the slot's previous occupant, like a POST does, so a
//!   reader stuck on an abandoned segment five indices back is released (Go leaves it hanging).
//! - `DELETE {chan}/-1` and `-2` resolve like a GET instead of crashing.
//!
//! Faults ([`TrickleFault`]) are kept per channel *name*, so they can be set before the channel
//! exists and survive its re-creation; [`TrickleServer::clear_faults`] removes them.
//!
//! In-process access ([`LocalSubscriber`], [`LocalPublisher`]) mirrors go-livepeer's local
//! pub/sub, which the orchestrator uses to read and write channels without HTTP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::{Bytes, BytesMut};
use gateway_core::trickle::{
    SeqSpec, BASE_PATH, CLOSED_VALUE, ENTRY_NOT_FOUND_BODY, HEADER_CLOSED, HEADER_EXPECT_CONTENT,
    HEADER_LATEST, HEADER_RESET, HEADER_SEQ, NEXT_PATH, SERVER_IDLE_TIMEOUT, SERVER_RING_SIZE,
    SERVER_SWEEP_INTERVAL, STATUS_SEGMENT_NOT_AVAILABLE,
};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Path prefix of [`TrickleServer::admin_router`].
pub const ADMIN_PATH: &str = "/admin/trickle/";

/// Error bodies go-livepeer sends (through Go's `http.Error`, which appends a newline).
const STREAM_NOT_FOUND: &str = "Stream not found";
const INVALID_IDX: &str = "Invalid idx";
const INVALID_STREAM: &str = "Invalid stream";
const NONEXISTENT_SEGMENT: &str = "Nonexistent segment";
const SERVER_ERROR: &str = "Server error";

/// Configuration of a [`TrickleServer`].
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
    fn matches(self, method: FaultMethod) -> bool {
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
/// [`TrickleServer::forget_channel_totals`]. A channel re-created under the same name adds to
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

/// The trickle server. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct TrickleServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TrickleServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrickleServer").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner {
    config: TrickleConfig,
    channels: Mutex<HashMap<String, Arc<Channel>>>,
    faults: Mutex<HashMap<String, ChannelFaults>>,
    /// Per channel name, what it received (see [`ChannelTotals`]).
    totals: Mutex<HashMap<String, ChannelTotals>>,
    /// Woken whenever faults change, so stalled POSTs re-check theirs.
    faults_changed: Notify,
    counters: Arc<Counters>,
    /// `true` stops the sweeper; dropping it (last server clone gone) stops it too.
    stop_sweeper: watch::Sender<bool>,
}

#[derive(Default)]
struct Counters {
    active_posts: AtomicUsize,
    active_gets: AtomicUsize,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    segments_completed: AtomicU64,
    buffered_bytes: AtomicU64,
}

#[derive(Default, Clone)]
struct ChannelFaults {
    stall_after: Option<u64>,
    drop_after: Option<u64>,
    delay_first_byte: Option<Duration>,
    respond: Vec<RespondRule>,
    stall_segments: Option<CountedByteFault>,
    drop_segments: Option<CountedByteFault>,
}

#[derive(Clone, Copy)]
struct CountedByteFault {
    after_bytes: u64,
    remaining: u32,
}

#[derive(Clone)]
struct RespondRule {
    method: FaultMethod,
    status: u16,
    remaining: u32,
}

/// Locks a mutex; a panic elsewhere must not turn every later request into a panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn slot_of(idx: u64) -> usize {
    (idx % SERVER_RING_SIZE as u64) as usize
}

/// Parses a `{seq}` path element: `-1`, `-2` or an index whose successor still fits an `i64`.
fn parse_seq(raw: &str) -> Option<SeqSpec> {
    match raw.parse::<i64>().ok().and_then(SeqSpec::from_wire)? {
        SeqSpec::At(n) if n >= i64::MAX as u64 => None,
        spec => Some(spec),
    }
}

impl TrickleServer {
    /// A server with no channels. Spawns the idle sweeper, which stops on [`shutdown`] or when
    /// the last clone (including the one inside a [`router`]) is dropped.
    ///
    /// # Panics
    /// When called outside a tokio runtime (the sweeper is a tokio task).
    ///
    /// [`shutdown`]: TrickleServer::shutdown
    /// [`router`]: TrickleServer::router
    pub fn new(config: TrickleConfig) -> TrickleServer {
        let (stop_sweeper, stop_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            channels: Mutex::new(HashMap::new()),
            faults: Mutex::new(HashMap::new()),
            totals: Mutex::new(HashMap::new()),
            faults_changed: Notify::new(),
            counters: Arc::new(Counters::default()),
            stop_sweeper,
        });
        tokio::spawn(run_sweeper(Arc::downgrade(&inner), stop_rx));
        TrickleServer { inner }
    }

    /// The HTTP routes, under [`BASE_PATH`], with this server as state; merge it into a bigger
    /// axum app or serve it alone.
    pub fn router(&self) -> Router {
        let channel_path = format!("{BASE_PATH}{{channel}}");
        let segment_path = format!("{BASE_PATH}{{channel}}/{{seq}}");
        Router::new()
            .route(&channel_path, post(http_create_channel).delete(http_delete_channel))
            .route(&segment_path, get(http_get_segment).post(http_post_segment).delete(http_delete_segment))
            .with_state(self.inner.clone())
    }

    /// A small admin API for a server run on its own (a benchmark's server process), under
    /// [`ADMIN_PATH`]: `POST {channel}/faults` (a [`TrickleFault`] in JSON; `400` if invalid),
    /// `DELETE {channel}/faults`, `GET {channel}/totals` ([`ChannelTotals`]) and `GET stats`
    /// ([`TrickleServerStats`]). The local network has its own admin API (per orchestrator).
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route(
                &format!("{ADMIN_PATH}{{channel}}/faults"),
                post(admin_set_fault).delete(admin_clear_faults),
            )
            .route(&format!("{ADMIN_PATH}{{channel}}/totals"), get(admin_totals))
            .route(&format!("{ADMIN_PATH}stats"), get(admin_stats))
            .with_state(self.clone())
    }

    /// Creates channel `name` with mime type `mime`; `false` if it already existed (unchanged).
    pub fn create_channel(&self, name: &str, mime: &str) -> bool {
        let mut channels = lock(&self.inner.channels);
        if channels.contains_key(name) {
            return false;
        }
        channels.insert(name.to_owned(), Arc::new(Channel::new(name, mime)));
        true
    }

    /// Closes and removes channel `name`, waking its readers and waiting publishers, like
    /// `DELETE {chan}`; `false` if it did not exist.
    pub fn close_channel(&self, name: &str) -> bool {
        self.inner.close_channel(name)
    }

    /// Whether channel `name` exists.
    pub fn has_channel(&self, name: &str) -> bool {
        lock(&self.inner.channels).contains_key(name)
    }

    /// Names of all channels, sorted.
    pub fn channel_names(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.channels).keys().cloned().collect();
        names.sort();
        names
    }

    /// Injects `fault` into the HTTP traffic of channel `channel` (existing or not yet created).
    /// Takes effect immediately, also for requests in flight where it can (byte faults).
    pub fn set_fault(&self, channel: &str, fault: TrickleFault) {
        {
            let mut faults = lock(&self.inner.faults);
            let f = faults.entry(channel.to_owned()).or_default();
            match fault {
                TrickleFault::StallAfterBytes(n) => f.stall_after = Some(n),
                TrickleFault::DropAfterBytes(n) => f.drop_after = Some(n),
                TrickleFault::DelayFirstByte(d) => f.delay_first_byte = Some(d),
                TrickleFault::RespondStatus { method, status, count } => {
                    f.respond.retain(|r| r.method != method);
                    if count > 0 {
                        f.respond.push(RespondRule { method, status, remaining: count });
                    }
                }
                TrickleFault::StallSegments { after_bytes, count } => {
                    f.stall_segments =
                        (count > 0).then_some(CountedByteFault { after_bytes, remaining: count });
                }
                TrickleFault::DropSegments { after_bytes, count } => {
                    f.drop_segments =
                        (count > 0).then_some(CountedByteFault { after_bytes, remaining: count });
                }
            }
        }
        self.inner.faults_changed.notify_waiters();
    }

    /// Removes every fault of channel `channel`; stalled POSTs resume reading.
    pub fn clear_faults(&self, channel: &str) {
        lock(&self.inner.faults).remove(channel);
        self.inner.faults_changed.notify_waiters();
    }

    /// What channel name `channel` has received so far (zeros if nothing).
    pub fn channel_totals(&self, channel: &str) -> ChannelTotals {
        lock(&self.inner.totals).get(channel).copied().unwrap_or_default()
    }

    /// Drops the totals kept for channel name `channel`.
    pub fn forget_channel_totals(&self, channel: &str) {
        lock(&self.inner.totals).remove(channel);
    }

    /// Current counters.
    pub fn stats(&self) -> TrickleServerStats {
        let c = &self.inner.counters;
        TrickleServerStats {
            channels: lock(&self.inner.channels).len(),
            active_posts: c.active_posts.load(Ordering::Relaxed),
            active_gets: c.active_gets.load(Ordering::Relaxed),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            segments_completed: c.segments_completed.load(Ordering::Relaxed),
            buffered_bytes: c.buffered_bytes.load(Ordering::Relaxed),
        }
    }

    /// An in-process subscriber of channel `channel` starting at `start`; `None` if the channel
    /// does not exist. It follows the channel it was created on, not a later one of that name.
    pub fn local_subscriber(&self, channel: &str, start: SeqSpec) -> Option<LocalSubscriber> {
        let channel = self.inner.channel(channel)?;
        Some(LocalSubscriber { channel, counters: self.inner.counters.clone(), next: start })
    }

    /// An in-process publisher of channel `channel`, writing at the channel's next write index;
    /// `None` if the channel does not exist.
    pub fn local_publisher(&self, channel: &str) -> Option<LocalPublisher> {
        let channel = self.inner.channel(channel)?;
        Some(LocalPublisher { channel, counters: self.inner.counters.clone(), last: None })
    }

    /// Closes all channels (waking every reader and waiting publisher) and stops the sweeper.
    /// The server stays usable: channels can be created again, but are no longer swept.
    pub fn shutdown(&self) {
        self.inner.stop_sweeper.send_replace(true);
        let drained: Vec<Arc<Channel>> = lock(&self.inner.channels).drain().map(|(_, c)| c).collect();
        for channel in drained {
            channel.close();
        }
    }
}

async fn run_sweeper(inner: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let Some(period) = inner.upgrade().map(|i| i.config.sweep_interval.max(Duration::from_millis(1))) else {
        return;
    };
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => match inner.upgrade() {
                Some(inner) => inner.sweep(),
                None => return,
            },
            changed = stop.changed() => {
                // Err: the server is gone.
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

impl Inner {
    fn channel(&self, name: &str) -> Option<Arc<Channel>> {
        lock(&self.channels).get(name).cloned()
    }

    fn close_channel(&self, name: &str) -> bool {
        let removed = lock(&self.channels).remove(name);
        match removed {
            Some(channel) => {
                channel.close();
                true
            }
            None => false,
        }
    }

    /// Closes channels idle for longer than the idle timeout; `_`-prefixed names are internal.
    fn sweep(&self) {
        let now = Instant::now();
        let candidates: Vec<Arc<Channel>> =
            lock(&self.channels).values().filter(|c| !c.name.starts_with('_')).cloned().collect();
        for channel in candidates {
            let idle = now.saturating_duration_since(channel.state().write_time);
            if idle > self.config.idle_timeout {
                let mut channels = lock(&self.channels);
                // Only if it is still the same channel, not a new one with that name.
                if channels.get(&channel.name).is_some_and(|c| Arc::ptr_eq(c, &channel)) {
                    channels.remove(&channel.name);
                    drop(channels);
                    channel.close();
                    tracing::debug!(channel = %channel.name, ?idle, "trickle: swept idle channel");
                }
            }
        }
    }

    fn channel_or_autocreate(&self, name: &str, mime: &str) -> Option<Arc<Channel>> {
        let mut channels = lock(&self.channels);
        if let Some(c) = channels.get(name) {
            return Some(c.clone());
        }
        if !self.config.autocreate {
            return None;
        }
        let channel = Arc::new(Channel::new(name, mime));
        channels.insert(name.to_owned(), channel.clone());
        Some(channel)
    }

    fn faults(&self, channel: &str) -> ChannelFaults {
        lock(&self.faults).get(channel).cloned().unwrap_or_default()
    }

    /// Consumes one matching `RespondStatus` request, if any.
    fn take_respond_status(&self, channel: &str, method: FaultMethod) -> Option<u16> {
        let status = {
            let mut faults = lock(&self.faults);
            let f = faults.get_mut(channel)?;
            let pos = f.respond.iter().position(|r| r.method.matches(method))?;
            let rule = &mut f.respond[pos];
            let status = rule.status;
            rule.remaining = rule.remaining.saturating_sub(1);
            if rule.remaining == 0 {
                f.respond.remove(pos);
            }
            status
        };
        self.add_totals(channel, |t| t.requests_refused += 1);
        Some(status)
    }

    /// Consumes one use of a counted byte fault (`StallSegments` or `DropSegments`) whose limit
    /// a POST at `total` bytes, about to store `len` more, crosses; answers the limit.
    fn take_counted(&self, channel: &str, stall: bool, total: u64, len: u64) -> Option<u64> {
        let mut faults = lock(&self.faults);
        let f = faults.get_mut(channel)?;
        let slot = if stall { &mut f.stall_segments } else { &mut f.drop_segments };
        let fault = slot.as_mut()?;
        if total.saturating_add(len) <= fault.after_bytes {
            return None;
        }
        let limit = fault.after_bytes;
        fault.remaining = fault.remaining.saturating_sub(1);
        if fault.remaining == 0 {
            *slot = None;
        }
        Some(limit)
    }

    fn add_totals(&self, channel: &str, update: impl FnOnce(&mut ChannelTotals)) {
        update(lock(&self.totals).entry(channel.to_owned()).or_default());
    }
}

// ---------------------------------------------------------------------------------------------
// Channels and segments
// ---------------------------------------------------------------------------------------------

struct Channel {
    name: String,
    state: Mutex<ChannelState>,
    /// Woken on every change a waiting local subscriber could care about.
    changed: Notify,
}

struct ChannelState {
    slots: [Option<Arc<Segment>>; SERVER_RING_SIZE],
    next_write: u64,
    write_time: Instant,
    mime: String,
    closed: bool,
}

/// What a read request found.
struct ReadSlot {
    idx: u64,
    segment: Option<Arc<Segment>>,
    next_write: u64,
    closed: bool,
}

impl Channel {
    fn new(name: &str, mime: &str) -> Channel {
        Channel {
            name: name.to_owned(),
            state: Mutex::new(ChannelState {
                slots: std::array::from_fn(|_| None),
                next_write: 0,
                write_time: Instant::now(),
                mime: mime.to_owned(),
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, ChannelState> {
        lock(&self.state)
    }

    /// The segment a POST for `idx` (`None` = `-1`) writes into: the slot's occupant if it has
    /// that index (a precreated or preconnected one), else a fresh one replacing (and closing)
    /// whatever was there.
    fn segment_for_write(&self, idx: Option<u64>, counters: &Arc<Counters>) -> Arc<Segment> {
        let mut st = self.state();
        let idx = idx.unwrap_or(st.next_write);
        let slot = &mut st.slots[slot_of(idx)];
        if let Some(seg) = slot.as_ref().filter(|s| s.idx == idx) {
            return seg.clone();
        }
        let seg = Arc::new(Segment::new(idx, counters.clone()));
        if let Some(old) = slot.replace(seg.clone()) {
            old.close();
        }
        drop(st);
        self.changed.notify_waiters();
        seg
    }

    /// Resolves `spec`, precreates the segment a reader may wait for, and reports what exists.
    fn segment_for_read(&self, spec: SeqSpec, counters: &Arc<Counters>) -> ReadSlot {
        let mut st = self.state();
        let idx = match spec {
            SeqSpec::Next => st.next_write,
            SeqSpec::Current => st.next_write.saturating_sub(1),
            SeqSpec::At(n) => n,
        };
        let slot = slot_of(idx);
        let exists = st.slots[slot].as_ref().is_some_and(|s| s.idx == idx);
        let mut precreated = false;
        if !exists && (idx == st.next_write || (st.next_write == 0 && idx == 1)) && !st.closed {
            // The reader is just ahead of the writer: let it wait on the segment to come.
            let seg = Arc::new(Segment::new(idx, counters.clone()));
            if let Some(old) = st.slots[slot].replace(seg) {
                old.close();
            }
            precreated = true;
        }
        let segment = st.slots[slot].as_ref().filter(|s| s.idx == idx).cloned();
        let read = ReadSlot { idx, segment, next_write: st.next_write, closed: st.closed };
        drop(st);
        if precreated {
            self.changed.notify_waiters();
        }
        read
    }

    /// Records a segment's first byte (or an empty POST): `nextWrite = idx + 1`, even backwards.
    fn mark_written(&self, idx: u64) {
        {
            let mut st = self.state();
            st.next_write = idx.saturating_add(1);
            st.write_time = Instant::now();
        }
        self.changed.notify_waiters();
    }

    /// Closes every segment with a lower index (publisher restart); later ones are preconnects.
    fn reset_below(&self, idx: u64) {
        let st = self.state();
        for seg in st.slots.iter().flatten().filter(|s| s.idx < idx) {
            seg.close();
        }
    }

    fn segment_at(&self, idx: u64) -> Option<Arc<Segment>> {
        self.state().slots[slot_of(idx)].as_ref().filter(|s| s.idx == idx).cloned()
    }

    fn close(&self) {
        let segments: Vec<Arc<Segment>> = {
            let mut st = self.state();
            st.closed = true;
            st.slots.iter_mut().filter_map(Option::take).collect()
        };
        for seg in segments {
            seg.close();
        }
        self.changed.notify_waiters();
    }

    fn is_closed(&self) -> bool {
        self.state().closed
    }
}

/// One segment: append-only chunks, readable while being written.
struct Segment {
    idx: u64,
    state: Mutex<SegmentState>,
    /// Woken on every append and on close.
    changed: Notify,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct SegmentState {
    chunks: Vec<Bytes>,
    len: u64,
    closed: bool,
}

/// What a reader at a chunk position gets.
enum ChunkRead {
    Data(Bytes),
    End,
}

impl Segment {
    fn new(idx: u64, counters: Arc<Counters>) -> Segment {
        Segment { idx, state: Mutex::new(SegmentState::default()), changed: Notify::new(), counters }
    }

    fn state(&self) -> MutexGuard<'_, SegmentState> {
        lock(&self.state)
    }

    /// Appends a chunk. Like go-livepeer, a closed segment still takes data (a writer whose
    /// segment was evicted keeps going); readers that already saw the end do not get it.
    fn append(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let n = chunk.len() as u64;
        {
            let mut st = self.state();
            st.len += n;
            st.chunks.push(chunk);
        }
        self.counters.bytes_in.fetch_add(n, Ordering::Relaxed);
        self.counters.buffered_bytes.fetch_add(n, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn close(&self) {
        let was_open = !std::mem::replace(&mut self.state().closed, true);
        if was_open {
            self.changed.notify_waiters();
        }
    }

    fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Waits for chunk `pos`, or the end of the segment.
    async fn read_chunk(&self, pos: usize) -> ChunkRead {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so an append between the look and the wait is not lost.
            notified.as_mut().enable();
            {
                let st = self.state();
                if let Some(chunk) = st.chunks.get(pos) {
                    return ChunkRead::Data(chunk.clone());
                }
                if st.closed {
                    return ChunkRead::End;
                }
            }
            notified.await;
        }
    }

    async fn wait_closed(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let len = self.state.get_mut().unwrap_or_else(PoisonError::into_inner).len;
        self.counters.buffered_bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers
// ---------------------------------------------------------------------------------------------

/// Counts a request as active while it lives (it moves into streamed bodies).
struct ActiveGuard {
    counters: Arc<Counters>,
    post: bool,
}

impl ActiveGuard {
    fn new(counters: &Arc<Counters>, post: bool) -> ActiveGuard {
        let counter = if post { &counters.active_posts } else { &counters.active_gets };
        counter.fetch_add(1, Ordering::Relaxed);
        ActiveGuard { counters: counters.clone(), post }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let counter = if self.post { &self.counters.active_posts } else { &self.counters.active_gets };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sets a header; names are protocol constants and values numbers or stored mime types, so a
/// value that is not a valid header (a mime type from a client) is left out rather than fail.
fn set_header(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Like Go's `http.Error`: plain text, message plus newline.
fn text_error(status: StatusCode, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    set_header(&mut headers, "Content-Type", "text/plain; charset=utf-8");
    set_header(&mut headers, "X-Content-Type-Options", "nosniff");
    (status, headers, format!("{message}\n")).into_response()
}

fn status_470() -> StatusCode {
    StatusCode::from_u16(STATUS_SEGMENT_NOT_AVAILABLE).unwrap_or(StatusCode::NOT_FOUND)
}

/// "Segment missing" for an existing channel: 470 while open, 200 + Closed once closed.
fn entry_not_found(idx: u64, next_write: u64, closed: bool) -> Response {
    let mut headers = HeaderMap::new();
    set_header(&mut headers, HEADER_LATEST, &next_write.to_string());
    set_header(&mut headers, HEADER_SEQ, &idx.to_string());
    set_header(&mut headers, "Content-Type", "text/plain; charset=utf-8");
    let status = if closed {
        set_header(&mut headers, HEADER_CLOSED, CLOSED_VALUE);
        StatusCode::OK
    } else {
        status_470()
    };
    (status, headers, ENTRY_NOT_FOUND_BODY).into_response()
}

/// A response whose body fails at once: hyper then drops the connection without writing the
/// (still buffered) head, which is how a mid-body network failure looks to the client.
fn abort_connection() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault",
        ))
    });
    Response::new(Body::from_stream(failing))
}

/// The answer to a request caught by a `RespondStatus` fault.
fn injected_status(inner: &Inner, channel: &str, seq: &str, status: u16, method: FaultMethod) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| !s.is_informational())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let chan = inner.channel(channel);
    let next_write = chan.as_ref().map_or(0, |c| c.state().next_write);
    let idx = match parse_seq(seq) {
        Some(SeqSpec::At(n)) => n,
        Some(SeqSpec::Current) => next_write.saturating_sub(1),
        Some(SeqSpec::Next) | None => next_write,
    };
    let mut response = match status.as_u16() {
        STATUS_SEGMENT_NOT_AVAILABLE => entry_not_found(idx, next_write, false),
        404 => text_error(status, STREAM_NOT_FOUND),
        500 => text_error(status, SERVER_ERROR),
        200 => {
            let mut headers = HeaderMap::new();
            set_header(&mut headers, HEADER_SEQ, &idx.to_string());
            (status, headers).into_response()
        }
        _ => text_error(status, status.canonical_reason().unwrap_or("Injected fault")),
    };
    if method == FaultMethod::Post {
        // The body is not read; the connection cannot be reused (and a 404 must wake
        // preconnected publishers, as go-livepeer's does).
        set_header(response.headers_mut(), "Connection", "close");
    }
    response
}

/// `POST {chan}`: create, only if it exists already or autocreate is on.
async fn http_create_channel(
    State(inner): State<Arc<Inner>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mime = header_str(&headers, HEADER_EXPECT_CONTENT).unwrap_or("");
    match inner.channel_or_autocreate(&channel, mime) {
        Some(_) => StatusCode::OK.into_response(),
        None => text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND),
    }
}

/// `DELETE {chan}`: 400 (not 404) when missing, as go-livepeer answers.
async fn http_delete_channel(State(inner): State<Arc<Inner>>, Path(channel): Path<String>) -> Response {
    if inner.close_channel(&channel) {
        StatusCode::OK.into_response()
    } else {
        text_error(StatusCode::BAD_REQUEST, INVALID_STREAM)
    }
}

/// `DELETE {chan}/{seq}`: close one segment, releasing its readers.
async fn http_delete_segment(
    State(inner): State<Arc<Inner>>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    let Some(chan) = inner.channel(&channel) else {
        return text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
    };
    let Some(spec) = parse_seq(&seq) else {
        return text_error(StatusCode::BAD_REQUEST, INVALID_IDX);
    };
    let idx = {
        let st = chan.state();
        match spec {
            SeqSpec::Next => st.next_write,
            SeqSpec::Current => st.next_write.saturating_sub(1),
            SeqSpec::At(n) => n,
        }
    };
    match chan.segment_at(idx) {
        Some(seg) => {
            seg.close();
            StatusCode::OK.into_response()
        }
        None => text_error(StatusCode::BAD_REQUEST, NONEXISTENT_SEGMENT),
    }
}

/// How reading a POST body ended.
enum BodyEnd {
    /// EOF, or the segment was closed before the first byte (a woken preconnect).
    Eof,
    /// The body failed (client gone): 500, segment left open.
    ReadError,
    /// A `DropAfterBytes` fault fired.
    Abort,
    /// A stall was ended by the segment closing.
    StallReleased,
}

/// `POST {chan}/{seq}`: publish one segment.
async fn http_post_segment(
    State(inner): State<Arc<Inner>>,
    Path((channel, seq)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _active = ActiveGuard::new(&inner.counters, true);
    if let Some(status) = inner.take_respond_status(&channel, FaultMethod::Post) {
        return injected_status(&inner, &channel, &seq, status, FaultMethod::Post);
    }
    let mime = header_str(&headers, "Content-Type").unwrap_or("");
    let Some(chan) = inner.channel_or_autocreate(&channel, mime) else {
        // `Connection: close` wakes preconnected Go publishers.
        let mut response = text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
        set_header(response.headers_mut(), "Connection", "close");
        return response;
    };
    let idx = match parse_seq(&seq) {
        Some(SeqSpec::At(n)) => Some(n),
        Some(SeqSpec::Next) => None,
        Some(SeqSpec::Current) | None => return text_error(StatusCode::BAD_REQUEST, INVALID_IDX),
    };
    let segment = chan.segment_for_write(idx, &inner.counters);
    if header_str(&headers, HEADER_RESET).is_some_and(|v| !v.is_empty()) {
        chan.reset_below(segment.idx);
    }

    // hyper may drop this handler mid-body (the client hung up): the tally still counts it.
    let mut tally = PostTally { inner: &inner, channel: &chan.name, settled: false };
    let (end, total) = read_post_body(&inner, &chan, &segment, body).await;
    tally.settle(&end, total);
    match end {
        BodyEnd::ReadError | BodyEnd::StallReleased => {
            tracing::debug!(channel = %chan.name, seq = segment.idx, total, "trickle: POST body failed");
            text_error(StatusCode::INTERNAL_SERVER_ERROR, SERVER_ERROR)
        }
        BodyEnd::Abort => abort_connection(),
        BodyEnd::Eof => {
            let mut out = HeaderMap::new();
            set_header(&mut out, HEADER_SEQ, &segment.idx.to_string());
            if total == 0 {
                // Advance anyway so clients do not fail on the next index; the connection is
                // closed because an unread preconnected body may still be pending.
                chan.mark_written(segment.idx);
                if chan.is_closed() {
                    set_header(&mut out, HEADER_CLOSED, CLOSED_VALUE);
                }
                set_header(&mut out, "Connection", "close");
            } else {
                inner.counters.segments_completed.fetch_add(1, Ordering::Relaxed);
            }
            segment.close();
            (StatusCode::OK, out).into_response()
        }
    }
}

/// Streams a POST body into `segment`, applying the channel's byte faults. Returns how it ended
/// and how many bytes were stored.
async fn read_post_body(inner: &Inner, chan: &Channel, segment: &Segment, mut body: Body) -> (BodyEnd, u64) {
    let mut total: u64 = 0;
    loop {
        let frame = if total == 0 {
            // Before the first byte, closing the segment (channel delete, slot reuse) releases
            // a preconnected publisher.
            tokio::select! {
                biased;
                frame = body.frame() => frame,
                _ = segment.wait_closed() => return (BodyEnd::Eof, 0),
            }
        } else {
            body.frame().await
        };
        let mut data = match frame {
            None => return (BodyEnd::Eof, total),
            Some(Err(_)) => return (BodyEnd::ReadError, total),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => data,
                Err(_) => continue, // trailers carry nothing for trickle
            },
        };
        while !data.is_empty() {
            let len = data.len() as u64;
            if let Some(limit) = inner.take_counted(&chan.name, false, total, len) {
                let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                return (BodyEnd::Abort, total);
            }
            if let Some(limit) = inner.take_counted(&chan.name, true, total, len) {
                let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                // Held until the segment closes: this fault is never lifted by time.
                segment.wait_closed().await;
                return (BodyEnd::StallReleased, total);
            }
            let faults = inner.faults(&chan.name);
            if let Some(limit) = faults.drop_after {
                if total.saturating_add(data.len() as u64) > limit {
                    let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                    store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                    return (BodyEnd::Abort, total);
                }
            }
            if let Some(limit) = faults.stall_after {
                if total.saturating_add(data.len() as u64) > limit {
                    let keep = usize::try_from(limit.saturating_sub(total)).unwrap_or(usize::MAX);
                    store(inner, chan, segment, &mut total, data.split_to(keep.min(data.len())));
                    if !wait_stall_released(inner, &chan.name, segment, total).await {
                        return (BodyEnd::StallReleased, total);
                    }
                    continue; // faults changed: re-check them for the rest of this chunk
                }
            }
            store(inner, chan, segment, &mut total, std::mem::take(&mut data));
        }
    }
}

/// Settles a POST in its channel's [`ChannelTotals`] once, even if the handler is dropped.
struct PostTally<'a> {
    inner: &'a Inner,
    channel: &'a str,
    settled: bool,
}

impl PostTally<'_> {
    fn settle(&mut self, end: &BodyEnd, total: u64) {
        self.settled = true;
        self.inner.add_totals(self.channel, |t| match end {
            BodyEnd::Eof if total > 0 => {
                t.segments_completed += 1;
                t.bytes_completed += total;
            }
            BodyEnd::Eof => {}
            BodyEnd::ReadError | BodyEnd::Abort | BodyEnd::StallReleased => t.posts_failed += 1,
        });
    }
}

impl Drop for PostTally<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.inner.add_totals(self.channel, |t| t.posts_failed += 1);
        }
    }
}

/// Stores a chunk of a POST body; its bytes count as received at once (the handler may never
/// finish, see [`PostTally`]).
fn store(inner: &Inner, chan: &Channel, segment: &Segment, total: &mut u64, data: Bytes) {
    if data.is_empty() {
        return;
    }
    inner.add_totals(&chan.name, |t| t.bytes_received += data.len() as u64);
    if *total == 0 {
        chan.mark_written(segment.idx);
    }
    *total += data.len() as u64;
    segment.append(data);
}

/// Waits while the stall fault holds at `total` bytes. `true`: it no longer holds (keep
/// reading); `false`: the segment was closed meanwhile.
async fn wait_stall_released(inner: &Inner, channel: &str, segment: &Segment, total: u64) -> bool {
    loop {
        let notified = inner.faults_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if inner.faults(channel).stall_after.is_none_or(|limit| limit > total) {
            return true;
        }
        tokio::select! {
            _ = notified => {}
            _ = segment.wait_closed() => return false,
        }
    }
}

/// `GET {chan}/{seq}` and `GET {chan}/next`.
async fn http_get_segment(
    State(inner): State<Arc<Inner>>,
    Path((channel, seq)): Path<(String, String)>,
) -> Response {
    if seq == NEXT_PATH {
        return http_next(&inner, &channel);
    }
    let active = ActiveGuard::new(&inner.counters, false);
    if let Some(status) = inner.take_respond_status(&channel, FaultMethod::Get) {
        return injected_status(&inner, &channel, &seq, status, FaultMethod::Get);
    }
    let Some(chan) = inner.channel(&channel) else {
        return text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
    };
    let Some(spec) = parse_seq(&seq) else {
        return text_error(StatusCode::BAD_REQUEST, INVALID_IDX);
    };
    let read = chan.segment_for_read(spec, &inner.counters);
    let Some(segment) = read.segment else {
        return entry_not_found(read.idx, read.next_write, read.closed);
    };

    // Headers wait for the first byte (or the end of the segment).
    let first = match segment.read_chunk(0).await {
        ChunkRead::Data(chunk) => chunk,
        ChunkRead::End => {
            let (next_write, closed) = {
                let st = chan.state();
                (st.next_write, st.closed)
            };
            let mut headers = HeaderMap::new();
            set_header(&mut headers, HEADER_SEQ, &segment.idx.to_string());
            set_header(&mut headers, HEADER_LATEST, &next_write.to_string());
            if closed {
                set_header(&mut headers, HEADER_CLOSED, CLOSED_VALUE);
            }
            return (StatusCode::OK, headers).into_response();
        }
    };
    if let Some(delay) = inner.faults(&channel).delay_first_byte {
        tokio::time::sleep(delay).await;
    }
    let mut headers = HeaderMap::new();
    if segment.idx != read.next_write {
        set_header(&mut headers, HEADER_LATEST, &read.next_write.to_string());
    }
    set_header(&mut headers, HEADER_SEQ, &segment.idx.to_string());
    let mime = chan.state().mime.clone();
    set_header(&mut headers, "Content-Type", &mime);

    let counters = inner.counters.clone();
    let stream = futures_util::stream::unfold(
        (segment, 0usize, Some(first), active),
        move |(segment, pos, pending, active)| {
            let counters = counters.clone();
            async move {
                let chunk = match pending {
                    Some(chunk) => chunk,
                    None => match segment.read_chunk(pos).await {
                        ChunkRead::Data(chunk) => chunk,
                        ChunkRead::End => return None,
                    },
                };
                counters.bytes_out.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Some((Ok::<Bytes, Infallible>(chunk), (segment, pos + 1, None, active)))
            }
        },
    );
    (StatusCode::OK, headers, Body::from_stream(stream)).into_response()
}

/// `GET {chan}/next`: the next write index, as body and `Lp-Trickle-Latest`.
fn http_next(inner: &Inner, channel: &str) -> Response {
    let Some(chan) = inner.channel(channel) else {
        return text_error(StatusCode::NOT_FOUND, STREAM_NOT_FOUND);
    };
    let (next_write, closed) = {
        let st = chan.state();
        (st.next_write, st.closed)
    };
    let next = next_write.to_string();
    let mut headers = HeaderMap::new();
    set_header(&mut headers, HEADER_LATEST, &next);
    set_header(&mut headers, "Content-Type", "text/plain; charset=utf-8");
    if closed {
        set_header(&mut headers, HEADER_CLOSED, CLOSED_VALUE);
    }
    (StatusCode::OK, headers, next).into_response()
}

// ---------------------------------------------------------------------------------------------
// Admin API
// ---------------------------------------------------------------------------------------------

async fn admin_set_fault(
    State(server): State<TrickleServer>,
    Path(channel): Path<String>,
    axum::Json(fault): axum::Json<TrickleFault>,
) -> Response {
    match fault.validate() {
        Ok(()) => {
            server.set_fault(&channel, fault);
            StatusCode::OK.into_response()
        }
        Err(e) => text_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

async fn admin_clear_faults(State(server): State<TrickleServer>, Path(channel): Path<String>) -> Response {
    server.clear_faults(&channel);
    StatusCode::OK.into_response()
}

async fn admin_totals(State(server): State<TrickleServer>, Path(channel): Path<String>) -> Response {
    axum::Json(server.channel_totals(&channel)).into_response()
}

async fn admin_stats(State(server): State<TrickleServer>) -> Response {
    axum::Json(server.stats()).into_response()
}

// ---------------------------------------------------------------------------------------------
// In-process pub/sub
// ---------------------------------------------------------------------------------------------

/// Reads a channel in process, segment after segment, like an HTTP subscriber: behind the
/// window it jumps to the live edge, ahead of it it waits.
pub struct LocalSubscriber {
    channel: Arc<Channel>,
    counters: Arc<Counters>,
    next: SeqSpec,
}

impl std::fmt::Debug for LocalSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSubscriber")
            .field("channel", &self.channel.name)
            .field("next", &self.next)
            .finish()
    }
}

impl LocalSubscriber {
    /// The next segment, once its first byte is there (or it ended empty). `None` once the
    /// channel is closed.
    pub async fn next_segment(&mut self) -> Option<LocalSegment> {
        loop {
            let notified = self.channel.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let read = self.channel.segment_for_read(self.next, &self.counters);
            match read.segment {
                Some(segment) => {
                    // Like the HTTP GET: nothing is handed out before the first byte.
                    let empty = matches!(segment.read_chunk(0).await, ChunkRead::End);
                    if empty && self.channel.is_closed() {
                        return None;
                    }
                    self.next = SeqSpec::At(segment.idx.saturating_add(1));
                    return Some(LocalSegment { segment, pos: 0, counters: self.counters.clone() });
                }
                None if read.closed => return None,
                // Fell out of the window (or -2 on an empty slot): continue from the live edge.
                None if read.idx < read.next_write => self.next = SeqSpec::At(read.next_write),
                // Ahead of the live edge: wait for the writer.
                None => notified.await,
            }
        }
    }
}

/// One segment being read in process.
pub struct LocalSegment {
    segment: Arc<Segment>,
    pos: usize,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for LocalSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSegment").field("seq", &self.segment.idx).field("pos", &self.pos).finish()
    }
}

impl LocalSegment {
    /// The segment's index.
    pub fn seq(&self) -> u64 {
        self.segment.idx
    }

    /// The next chunk as the writer appended it; `None` once the segment is closed and read.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        match self.segment.read_chunk(self.pos).await {
            ChunkRead::Data(chunk) => {
                self.pos += 1;
                self.counters.bytes_out.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Some(chunk)
            }
            ChunkRead::End => None,
        }
    }

    /// The rest of the segment, waiting for it to close.
    pub async fn read_all(mut self) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await {
            out.extend_from_slice(&chunk);
        }
        out.freeze()
    }
}

/// Writes a channel in process, at the channel's next write index.
pub struct LocalPublisher {
    channel: Arc<Channel>,
    counters: Arc<Counters>,
    /// The last index this publisher began, so two segments begun before either has data do
    /// not land on the same index.
    last: Option<u64>,
}

impl std::fmt::Debug for LocalPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPublisher")
            .field("channel", &self.channel.name)
            .field("last", &self.last)
            .finish()
    }
}

impl LocalPublisher {
    /// Writes `data` as one whole segment; returns its index.
    pub async fn write_segment(&mut self, data: Bytes) -> Result<u64, TrickleServerError> {
        let mut writer = self.begin_segment()?;
        let seq = writer.seq();
        writer.write(data);
        writer.finish();
        Ok(seq)
    }

    /// Starts a segment at the next write index (joining a segment a reader precreated there).
    pub fn begin_segment(&mut self) -> Result<LocalSegmentWriter, TrickleServerError> {
        if self.channel.is_closed() {
            return Err(TrickleServerError::ChannelClosed(self.channel.name.clone()));
        }
        let next_write = self.channel.state().next_write;
        let idx = match self.last {
            Some(last) => next_write.max(last.saturating_add(1)),
            None => next_write,
        };
        self.last = Some(idx);
        let segment = self.channel.segment_for_write(Some(idx), &self.counters);
        Ok(LocalSegmentWriter {
            channel: self.channel.clone(),
            segment,
            counters: self.counters.clone(),
            written: 0,
            ended: false,
        })
    }
}

/// A segment being written in process. Dropping it without [`finish`](Self::finish) also ends
/// the segment, so readers are never left waiting on it.
pub struct LocalSegmentWriter {
    channel: Arc<Channel>,
    segment: Arc<Segment>,
    counters: Arc<Counters>,
    written: u64,
    ended: bool,
}

impl std::fmt::Debug for LocalSegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSegmentWriter")
            .field("seq", &self.segment.idx)
            .field("written", &self.written)
            .finish()
    }
}

impl LocalSegmentWriter {
    /// The segment's index.
    pub fn seq(&self) -> u64 {
        self.segment.idx
    }

    /// Appends a chunk; readers see it at once.
    pub fn write(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if self.written == 0 {
            self.channel.mark_written(self.segment.idx);
        }
        self.written += chunk.len() as u64;
        self.segment.append(chunk);
    }

    /// Ends the segment: its readers reach the end of the body.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        if self.written == 0 {
            // An empty segment still advances the channel, like an empty POST.
            self.channel.mark_written(self.segment.idx);
        } else {
            self.counters.segments_completed.fetch_add(1, Ordering::Relaxed);
        }
        self.segment.close();
    }
}

impl Drop for LocalSegmentWriter {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_parsing_rejects_what_go_would_crash_on() {
        assert_eq!(parse_seq("-1"), Some(SeqSpec::Next));
        assert_eq!(parse_seq("-2"), Some(SeqSpec::Current));
        assert_eq!(parse_seq("7"), Some(SeqSpec::At(7)));
        for bad in ["-3", "x", "", " 1", "9223372036854775807", "99999999999999999999", "1.5"] {
            assert_eq!(parse_seq(bad), None, "{bad:?}");
        }
        assert_eq!(parse_seq("9223372036854775806"), Some(SeqSpec::At(i64::MAX as u64 - 1)));
    }

    #[tokio::test]
    async fn missing_segment_of_a_closed_channel_is_end_of_stream() {
        // HTTP requests cannot normally see a closed channel (it is removed first), so the
        // response for that race is checked here.
        let counters = Arc::new(Counters::default());
        let chan = Channel::new("c", "video/MP2T");
        chan.close();
        let read = chan.segment_for_read(SeqSpec::At(0), &counters);
        assert!(read.segment.is_none(), "a closed channel precreates nothing");
        let resp = entry_not_found(read.idx, read.next_write, read.closed);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[HEADER_CLOSED], CLOSED_VALUE);
        assert_eq!(resp.headers()[HEADER_SEQ], "0");
        assert_eq!(resp.headers()[HEADER_LATEST], "0");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], ENTRY_NOT_FOUND_BODY.as_bytes());
    }

    #[tokio::test]
    async fn evicted_segments_are_freed_when_their_last_reader_lets_go() {
        let counters = Arc::new(Counters::default());
        let chan = Channel::new("c", "video/MP2T");
        let first = chan.segment_for_write(Some(0), &counters);
        first.append(Bytes::from_static(b"hello"));
        first.close();
        let weak = Arc::downgrade(&first);
        for idx in 1..=SERVER_RING_SIZE as u64 {
            chan.segment_for_write(Some(idx), &counters).close();
        }
        // Evicted, but this reader still holds it.
        assert!(weak.upgrade().is_some());
        assert!(matches!(first.read_chunk(0).await, ChunkRead::Data(_)));
        assert_eq!(counters.buffered_bytes.load(Ordering::Relaxed), 5);
        drop(first);
        assert!(weak.upgrade().is_none());
        assert_eq!(counters.buffered_bytes.load(Ordering::Relaxed), 0);
    }
}
