//! The trickle subscriber: `GET {channel}/{seq}` segment after segment, the next one always
//! preconnected.
//!
//! Rules (go-livepeer's subscriber and the Python SDK, hardened):
//! - Start at `-2` (the segment being written, from its start), `-1` (the next one) or an
//!   absolute index; afterwards follow `Lp-Trickle-Seq + 1`.
//! - 470 with `Lp-Trickle-Latest` at or below the requested index means we are ahead of the live
//!   edge: wait briefly and ask for the same index again (jumping would rewind timestamps), for
//!   at most [`SubscriberConfig::ahead_timeout`]. Behind the window: jump to `Latest`, counting
//!   the segments skipped, or fail as go-livepeer's subscriber does
//!   ([`SubscriberConfig::behind_window`]). Waiting does not use up the retry budget. Callers
//!   that tell a user about either can take [`TrickleSubscriber::notices`].
//! - 404 or `Lp-Trickle-Closed` is the end of the stream.
//! - A preconnected GET that has no response headers after 20 s is re-issued (servers and load
//!   balancers drop long idle requests).
//! - Other failures are retried a bounded number of times with a pause.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gateway_core::error::{SegmentFailure, TrickleError};
use gateway_core::trickle::{
    classify_get, segment_url, GetOutcome, SeqSpec, TrickleHeaders, HEADER_SEQ, SUBSCRIBER_AHEAD_PAUSE,
    SUBSCRIBER_MAX_RETRIES, SUBSCRIBER_PRECONNECT_REFRESH, SUBSCRIBER_RETRY_PAUSE,
};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::follow::{ChannelKind, ChannelRoutes, Follow, ReaderSignals};
use crate::http::segment_get::{SegmentGetClient, SegmentResponse};

/// How long a subscriber waits by default for an index ahead of the live edge.
pub(crate) const DEFAULT_AHEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Most 470 "jump to latest" answers for one segment: an honest server needs one; a hostile or
/// broken one could keep moving the live edge forever.
const MAX_JUMPS: u32 = 8;

/// How a subscriber behaves.
#[derive(Debug, Clone)]
pub struct SubscriberConfig {
    /// Where to start.
    pub start: SeqSpec,
    /// Attempts per segment for failures other than 470.
    pub max_retries: u32,
    /// Re-issue a GET without response headers after this long.
    pub preconnect_refresh: Duration,
    /// Refuse segments larger than this.
    pub max_segment_bytes: Option<usize>,
    /// What to do when the wanted segment has fallen out of the server's window.
    pub behind_window: BehindWindow,
    /// How long to wait for an index ahead of the live edge before failing with
    /// [`TrickleError::AheadOfLiveEdge`]; zero fails at the first such answer, as go-livepeer's
    /// subscriber does.
    pub ahead_timeout: Duration,
}

/// What a subscriber does when the segment it wants has fallen out of the server's window
/// (the server keeps the last few segments only, so a slow reader or an old `start` falls out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BehindWindow {
    /// Jump to the live edge and go on, counting the segments skipped
    /// ([`SubscriberStats::segments_skipped`], [`SubscriberNotice::Skipped`]).
    #[default]
    Skip,
    /// Fail with [`TrickleError::FellBehind`], as go-livepeer's subscriber does.
    Fail,
}

/// News a caller may pass on to its user, from [`TrickleSubscriber::notices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberNotice {
    /// The requested index is ahead of the live edge: waiting for it, `timeout` at most.
    WaitingAhead {
        /// The requested index.
        requested: i64,
        /// The server's next write index, if it said.
        latest: Option<i64>,
        /// How long the subscriber will wait.
        timeout: Duration,
    },
    /// Segments `first..=last` fell out of the server's window and were skipped.
    Skipped {
        /// First index skipped.
        first: i64,
        /// Last index skipped.
        last: i64,
    },
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            start: SeqSpec::Current,
            max_retries: SUBSCRIBER_MAX_RETRIES,
            preconnect_refresh: SUBSCRIBER_PRECONNECT_REFRESH,
            max_segment_bytes: None,
            behind_window: BehindWindow::Skip,
            ahead_timeout: DEFAULT_AHEAD_TIMEOUT,
        }
    }
}

/// Why a subscriber stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The server said the channel is closed.
    Closed,
    /// The channel does not exist (any more).
    NotFound,
}

/// Counters of one subscriber.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// GETs sent.
    pub get_attempts: u64,
    /// Segments delivered.
    pub segments_delivered: u64,
    /// 470 answers that made us wait for the live edge.
    pub waits_ahead: u64,
    /// 470 answers that made us jump forward.
    pub jumps: u64,
    /// Failed GETs retried.
    pub retries: u64,
    /// Preconnects re-issued after the refresh interval.
    pub preconnect_refreshes: u64,
    /// Delivered segments whose index was not the one expected.
    pub seq_gaps: u64,
    /// Segments skipped: fallen out of the server's window, or jumped over by the server.
    pub segments_skipped: u64,
    /// Latest index the server reported.
    pub latest_seq: Option<i64>,
    /// Times a live stream's reader moved to the channel of a new orchestrator.
    pub channel_moves: u32,
}

type PendingGet = JoinHandle<Result<SegmentResponse, String>>;

/// Reads segments of one trickle channel.
pub struct TrickleSubscriber {
    http: SegmentGetClient,
    url: String,
    config: SubscriberConfig,
    next: i64,
    preconnect: Option<(i64, PendingGet)>,
    ended: Option<EndReason>,
    stats: SubscriberStats,
    notices: Option<mpsc::UnboundedSender<SubscriberNotice>>,
    /// Set for a live stream's reader: the channel it moves to when the stream swaps.
    follow: Option<Follow>,
}

impl std::fmt::Debug for TrickleSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrickleSubscriber")
            .field("url", &gateway_core::error::redact_url(&self.url))
            .field("next", &self.next)
            .finish()
    }
}

impl TrickleSubscriber {
    /// A subscriber of `channel_url`; nothing is sent until the first `next_segment`. Pass a
    /// [`SegmentGetClient::bounded`] (memory bounded behind a slow reader) or a reqwest client.
    pub fn new(
        http: impl Into<SegmentGetClient>,
        channel_url: &str,
        config: SubscriberConfig,
    ) -> TrickleSubscriber {
        TrickleSubscriber {
            http: http.into(),
            url: channel_url.trim_end_matches('/').to_owned(),
            next: config.start.wire_value(),
            config,
            preconnect: None,
            ended: None,
            stats: SubscriberStats::default(),
            notices: None,
            follow: None,
        }
    }

    /// A reader of a live stream's `kind` channel that moves with the stream: when the stream
    /// swaps orchestrators, it leaves the old channel for the new one's first segment, and the
    /// first segment read there says [`IncomingSegment::discontinuity`]. The end of a channel
    /// (or its failure) is the end of the stream only once the stream itself has ended.
    pub(crate) fn following(
        http: impl Into<SegmentGetClient>,
        routes: watch::Receiver<ChannelRoutes>,
        kind: ChannelKind,
        config: SubscriberConfig,
        signals: Option<Arc<ReaderSignals>>,
    ) -> TrickleSubscriber {
        let (url, generation) = {
            let r = routes.borrow();
            (r.channels.url(kind).unwrap_or_default().to_owned(), r.generation)
        };
        let mut subscriber = TrickleSubscriber::new(http, &url, config);
        if url.is_empty() {
            subscriber.ended = Some(EndReason::NotFound);
        }
        subscriber.follow = Some(Follow { routes, kind, generation, discontinuity: false, signals });
        subscriber
    }

    /// Notices of waits ahead of the live edge and of skipped segments, from now on (a second
    /// call replaces the first receiver). Unbounded, but there are few: one per wait, one per
    /// skip.
    pub fn notices(&mut self) -> mpsc::UnboundedReceiver<SubscriberNotice> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.notices = Some(tx);
        rx
    }

    fn notify(&self, notice: SubscriberNotice) {
        if let Some(tx) = &self.notices {
            let _ = tx.send(notice);
        }
    }

    /// Counts `first..=last` as skipped.
    fn skipped(&mut self, first: i64, last: i64) {
        if last >= first {
            let n = u64::try_from(last.saturating_sub(first)).unwrap_or(u64::MAX).saturating_add(1);
            self.stats.segments_skipped = self.stats.segments_skipped.saturating_add(n);
            self.notify(SubscriberNotice::Skipped { first, last });
        }
    }

    /// Counters.
    pub fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// Why the stream ended, once it has.
    pub fn end_reason(&self) -> Option<EndReason> {
        self.ended
    }

    /// The next segment, `Ok(None)` at the end of the stream.
    pub async fn next_segment(&mut self) -> Result<Option<IncomingSegment>, TrickleError> {
        if self.follow.is_none() {
            return self.next_on_channel().await;
        }
        loop {
            let Some(follow) = self.follow.as_mut() else { return Ok(None) };
            if let Some(routes) = follow.newer() {
                self.move_to(&routes);
                continue;
            }
            // A clone sees the same versions: `changed` wakes on the next generation.
            let mut routes = follow.routes.clone();
            let result = tokio::select! {
                biased;
                changed = routes.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return Ok(None), // the stream's driver is gone
                },
                result = self.next_on_channel() => result,
            };
            match result {
                Ok(Some(mut segment)) => {
                    if let Some(f) = self.follow.as_mut() {
                        segment.discontinuity = std::mem::take(&mut f.discontinuity);
                        if let Some(signals) = f.signals.as_ref().filter(|_| f.kind == ChannelKind::Output) {
                            signals.record(f.generation);
                        }
                    }
                    return Ok(Some(segment));
                }
                other => {
                    // This channel is over; so is the reader, unless the stream moves on. A
                    // clean end means the orchestrator ended the stream: the driver hears of it.
                    if let (Ok(None), Some(f), false) = (&other, self.follow.as_ref(), self.url.is_empty()) {
                        if let Some(signals) = &f.signals {
                            signals.channel_closed(f.generation);
                        }
                    }
                    loop {
                        let Some(f) = self.follow.as_mut() else { return other };
                        if f.newer().is_some() {
                            break;
                        }
                        if f.ended() || routes.changed().await.is_err() {
                            return other;
                        }
                    }
                }
            }
        }
    }

    /// Leaves the channel being read for `routes`' channel, from its first segment.
    fn move_to(&mut self, routes: &ChannelRoutes) {
        let Some(follow) = self.follow.as_mut() else { return };
        tracing::debug!(generation = routes.generation, kind = ?follow.kind, "reader moves to the stream's new channel");
        follow.generation = routes.generation;
        follow.discontinuity = true;
        let url = routes.channels.url(follow.kind).unwrap_or_default();
        if let Some((_, task)) = self.preconnect.take() {
            task.abort();
        }
        self.url = url.trim_end_matches('/').to_owned();
        self.next = 0;
        self.stats.channel_moves += 1;
        self.ended = if url.is_empty() { Some(EndReason::NotFound) } else { None };
    }

    /// The next segment of the channel being read.
    async fn next_on_channel(&mut self) -> Result<Option<IncomingSegment>, TrickleError> {
        if self.ended.is_some() {
            return Ok(None);
        }
        let mut failures = 0;
        let mut ahead_since: Option<tokio::time::Instant> = None;
        let mut jumps = 0;
        loop {
            let requested = self.next;
            let resp = match self.response_for(requested).await {
                Ok(r) => r,
                Err(reason) => {
                    failures += 1;
                    self.stats.retries += 1;
                    if failures >= self.config.max_retries {
                        return Err(TrickleError::Segment {
                            seq: requested,
                            reason: format!("giving up after {failures} attempts: {reason}"),
                            failure: SegmentFailure::Other,
                        });
                    }
                    tokio::time::sleep(SUBSCRIBER_RETRY_PAUSE).await;
                    continue;
                }
            };
            let status = resp.status();
            let headers = TrickleHeaders::parse(|n| resp.header(n))?;
            if let Some(l) = headers.latest {
                self.stats.latest_seq = Some(l);
            }
            if status == 200 && !headers.closed {
                // A segment: its body belongs to the caller.
                let seq = headers.seq.unwrap_or(requested.max(0));
                if seq < 0 {
                    // -1 and -2 name positions in requests; a segment always has an index.
                    return Err(TrickleError::InvalidHeader { name: HEADER_SEQ, value: seq.to_string() });
                }
                if requested >= 0 && seq != requested {
                    self.stats.seq_gaps += 1;
                    self.skipped(requested, seq - 1);
                }
                self.next = seq.saturating_add(1);
                self.stats.segments_delivered += 1;
                self.start_preconnect();
                return Ok(Some(IncomingSegment {
                    seq,
                    resp,
                    max_bytes: self.config.max_segment_bytes,
                    received: 0,
                    discontinuity: false,
                }));
            }
            let body = resp.read_capped(4096).await.unwrap_or_default();
            match classify_get(requested, status, &headers, &self.url, &body) {
                // Only a 200 without Closed is a segment, and that was handled above.
                Ok(GetOutcome::Segment { .. }) => {
                    return Err(TrickleError::UnexpectedStatus { status, body: String::new() })
                }
                Ok(GetOutcome::EndOfStream) => {
                    self.ended = Some(EndReason::Closed);
                    return Ok(None);
                }
                Ok(GetOutcome::WaitForSame) => {
                    self.stats.waits_ahead += 1;
                    let timeout = self.config.ahead_timeout;
                    let since = match ahead_since {
                        Some(since) => since,
                        None => {
                            if !timeout.is_zero() {
                                let latest = headers.latest;
                                self.notify(SubscriberNotice::WaitingAhead { requested, latest, timeout });
                            }
                            *ahead_since.insert(tokio::time::Instant::now())
                        }
                    };
                    let waited = since.elapsed();
                    if waited >= timeout {
                        return Err(TrickleError::AheadOfLiveEdge {
                            requested,
                            latest: headers.latest,
                            waited,
                        });
                    }
                    tokio::time::sleep(SUBSCRIBER_AHEAD_PAUSE.min(timeout - waited)).await;
                }
                Ok(GetOutcome::JumpTo(latest)) => {
                    if requested >= 0 && self.config.behind_window == BehindWindow::Fail {
                        return Err(TrickleError::FellBehind { requested, latest });
                    }
                    self.stats.jumps += 1;
                    jumps += 1;
                    if jumps > MAX_JUMPS {
                        return Err(TrickleError::SequenceNotAvailable { requested, latest: Some(latest) });
                    }
                    if requested >= 0 {
                        self.skipped(requested, latest - 1);
                    }
                    self.next = latest;
                }
                Err(TrickleError::ChannelNotFound { .. }) => {
                    self.ended = Some(EndReason::NotFound);
                    return Ok(None);
                }
                Err(e) => {
                    failures += 1;
                    self.stats.retries += 1;
                    if failures >= self.config.max_retries {
                        return Err(e);
                    }
                    tokio::time::sleep(SUBSCRIBER_RETRY_PAUSE).await;
                }
            }
        }
    }

    /// The response for `seq`: the preconnected GET if it is for that index, else a new one;
    /// re-issued whenever no headers arrive within the refresh interval.
    async fn response_for(&mut self, seq: i64) -> Result<SegmentResponse, String> {
        let mut pending = match self.preconnect.take() {
            Some((s, task)) if s == seq => task,
            other => {
                if let Some((_, task)) = other {
                    task.abort();
                }
                self.spawn_get(seq)
            }
        };
        loop {
            let abort = pending.abort_handle();
            match tokio::time::timeout(self.config.preconnect_refresh, &mut pending).await {
                Ok(Ok(Ok(resp))) => return Ok(resp),
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(_)) => return Err("GET task ended unexpectedly".into()),
                Err(_) => {
                    abort.abort();
                    self.stats.preconnect_refreshes += 1;
                    pending = self.spawn_get(seq);
                }
            }
        }
    }

    fn spawn_get(&mut self, seq: i64) -> PendingGet {
        self.stats.get_attempts += 1;
        let url = segment_url(&self.url, SeqSpec::from_wire(seq).unwrap_or(SeqSpec::Next));
        let http = self.http.clone();
        tokio::spawn(async move { http.get(&url).await })
    }

    fn start_preconnect(&mut self) {
        if let Some((_, task)) = self.preconnect.take() {
            task.abort();
        }
        let next = self.next;
        self.preconnect = Some((next, self.spawn_get(next)));
    }

    /// Stops: cancels the preconnected GET. Later calls return `Ok(None)`.
    pub fn close(&mut self) {
        if let Some((_, task)) = self.preconnect.take() {
            task.abort();
        }
        self.ended.get_or_insert(EndReason::Closed);
    }
}

impl Drop for TrickleSubscriber {
    fn drop(&mut self) {
        if let Some((_, task)) = self.preconnect.take() {
            task.abort();
        }
    }
}

/// One segment arriving; read it chunk by chunk while the publisher is still writing it.
pub struct IncomingSegment {
    seq: i64,
    resp: SegmentResponse,
    max_bytes: Option<usize>,
    received: usize,
    discontinuity: bool,
}

impl std::fmt::Debug for IncomingSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingSegment").field("seq", &self.seq).field("received", &self.received).finish()
    }
}

impl IncomingSegment {
    /// The segment index.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Whether this is the first segment read from a live stream's new channel after a swap:
    /// its timestamps and continuity counters do not follow the previous segment's.
    pub fn discontinuity(&self) -> bool {
        self.discontinuity
    }

    /// The channel's mime type as the server sent it.
    pub fn content_type(&self) -> Option<&str> {
        self.resp.header("content-type")
    }

    /// The next chunk, `Ok(None)` when the segment is complete.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, TrickleError> {
        match self.resp.chunk().await {
            Ok(Some(c)) => {
                self.received += c.len();
                if self.max_bytes.is_some_and(|m| self.received > m) {
                    return Err(TrickleError::Segment {
                        seq: self.seq,
                        reason: "segment exceeds the size limit".into(),
                        failure: SegmentFailure::Other,
                    });
                }
                Ok(Some(c))
            }
            Ok(None) => Ok(None),
            Err(reason) => {
                Err(TrickleError::Segment { seq: self.seq, reason, failure: SegmentFailure::Other })
            }
        }
    }

    /// The whole segment.
    pub async fn read_all(mut self) -> Result<Bytes, TrickleError> {
        let mut buf = BytesMut::new();
        while let Some(c) = self.chunk().await? {
            buf.extend_from_slice(&c);
        }
        Ok(buf.freeze())
    }
}
