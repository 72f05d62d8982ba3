//! The trickle server double: go-livepeer's `/ai/trickle/` pub/sub server, in memory, with fault
//! injection.
//!
//! Every test, benchmark and the demo talk to this server instead of a real orchestrator, and the
//! official Python SDK and go-livepeer's trickle client must work against it, so it follows
//! go-livepeer's `trickle/trickle_server.go` wire behaviour rule by rule. All protocol facts (paths, headers,
//! status 470, ring size, default timings) come from [`livepeer_gateway_core::trickle`](gateway_core::trickle).
//!
//! State per channel: a ring of [`SERVER_RING_SIZE`](gateway_core::trickle::SERVER_RING_SIZE) segment slots (slot = `seq % 5`),
//! `nextWrite` (advanced to `seq + 1` by a segment's first body byte, or by an empty POST), the
//! mime type, a closed flag and the last write time for the idle sweep. A segment is an
//! append-only list of chunks; readers see each chunk as soon as it is appended and are never
//! throttled against the writer. Evicted segments are freed when their last reader lets go.
//!
//! Routes (all under [`BASE_PATH`](gateway_core::trickle::BASE_PATH)):
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

mod admin;
mod config;
mod http;
mod local;
mod store;

pub use admin::ADMIN_PATH;
pub use config::{
    ChannelTotals, FaultMethod, TrickleConfig, TrickleFault, TrickleServerError, TrickleServerStats,
};
pub use local::{LocalPublisher, LocalSegment, LocalSegmentWriter, LocalSubscriber};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use gateway_core::trickle::SeqSpec;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use config::{ChannelFaults, CountedByteFault, RespondRule};
use store::Channel;

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

/// Locks a mutex; a panic elsewhere must not turn every later request into a panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use bytes::Bytes;
    use gateway_core::trickle::{
        CLOSED_VALUE, ENTRY_NOT_FOUND_BODY, HEADER_CLOSED, HEADER_LATEST, HEADER_SEQ, SERVER_RING_SIZE,
    };
    use http_body_util::BodyExt;

    use super::http::{entry_not_found, parse_seq};
    use super::store::ChunkRead;
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
