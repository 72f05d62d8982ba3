//! The `StreamSupervisor` actor: drives one video stream from the frame queue through the
//! encoder to the segment writer, and keeps it alive through network trouble.
//!
//! - One frame in flight to the encoder at a time; the next is pulled from the bounded
//!   [`FrameQueue`] (drop-oldest, debt skipping), so the encoder's unbounded SyncArbiter queue
//!   never grows.
//! - Segment events go to the [`SegmentWriter`] in order. A failed segment (stall timeout,
//!   error status) is drained: its remaining bytes are consumed and counted, never sent, so the
//!   encoder is never blocked or killed; the writer restarts itself under its `Supervisor`, and
//!   the next media segment (which starts with a keyframe) rolls into the next sequence number.
//!   Those rules and the byte counts are [`SegmentLedger`]'s, shared with
//!   [`SegmentedPublisher`](crate::trickle::SegmentedPublisher).
//! - A trickle segment stays open at least [`MIN_SEGMENT_WALLCLOCK`]: shorter media segments are
//!   joined into it.
//! - With no media bytes for [`IDLE_CUTOVER`] the open segment is closed and a fresh one opened
//!   (or, mid-segment, the rest of the media segment is drained), staying under load-balancer
//!   idle timeouts.
//! - Every frame and byte is counted where it is published, drained or dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use gateway_core::error::TrickleError;
use gateway_core::trickle::{IDLE_CUTOVER, MIN_SEGMENT_WALLCLOCK};
use gateway_media::segmenter::SegmentEvent;
use gateway_media::FrameQueue;
use tokio::sync::oneshot;

use crate::encoder::{EncodeFrame, FlushEncoder, FrameEncoder};
use crate::trickle::{Route, SegmentLedger};
use crate::writer::{BeginSegment, EndSegment, SegmentWriter, Settle, WriteChunk, WriterStats};

/// Timing rules of a stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamTiming {
    /// Minimum wall-clock length of a trickle segment.
    pub min_segment_wallclock: Duration,
    /// Idle time after which the open segment is cut over.
    pub idle_cutover: Duration,
}

impl Default for StreamTiming {
    fn default() -> Self {
        StreamTiming { min_segment_wallclock: MIN_SEGMENT_WALLCLOCK, idle_cutover: IDLE_CUTOVER }
    }
}

/// Why frames were dropped before encoding; the fields add up to [`MediaStats::frames_dropped`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameDrops {
    /// The queue was full: its oldest frame went.
    pub overflow: u64,
    /// Encoding fell behind real time (debt skipping).
    pub debt: u64,
    /// The pts did not increase.
    pub non_monotonic: u64,
    /// The encoder refused the frame.
    pub encode_failed: u64,
    /// Still queued when the stream ended for good (a terminal error): never encoded.
    pub stream_ended: u64,
}

impl FrameDrops {
    /// All drops.
    pub fn total(&self) -> u64 {
        self.overflow + self.debt + self.non_monotonic + self.encode_failed + self.stream_ended
    }
}

/// Where every frame and byte of a stream went. Once a stream is finished, `frames_in =
/// frames_encoded + frames_dropped` and `bytes_encoded = bytes_published + bytes_drained`.
#[derive(Debug, Clone, Default, PartialEq, Eq, MessageResponse)]
pub struct MediaStats {
    /// Frames offered.
    pub frames_in: u64,
    /// Frames dropped before encoding (queue overflow, debt, non-increasing pts, bad frames,
    /// still queued when the stream ended for good); by reason in `drops`.
    pub frames_dropped: u64,
    /// `frames_dropped` by reason.
    pub drops: FrameDrops,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Trickle segments the server confirmed.
    pub segments_published: u64,
    /// Trickle segments that failed (their bytes are drained).
    pub segments_failed: u64,
    /// Media segments joined into a longer trickle segment (minimum wall-clock rule).
    pub segments_joined: u64,
    /// Idle cutovers.
    pub idle_cutovers: u64,
    /// Times the segment writer was restarted after a failed segment.
    pub writer_restarts: u32,
    /// Bytes the segmenter produced (each is published or drained).
    pub bytes_encoded: u64,
    /// Bytes of confirmed segments.
    pub bytes_published: u64,
    /// Bytes of failed segments.
    pub bytes_drained: u64,
    /// Why the stream stopped for good, if it did.
    pub terminal_error: Option<String>,
}

enum Step {
    Media(SegmentEvent),
    Cutover,
    /// Close a segment kept open by the minimum wall-clock rule (end of stream).
    Close,
}

enum Outcome {
    Began(Result<u64, TrickleError>),
    Wrote(u64, Result<(), TrickleError>),
    Ended(Result<(), TrickleError>),
    CutoverDone(Result<(), TrickleError>, Result<u64, TrickleError>),
}

/// The supervisor actor of one stream.
pub struct StreamSupervisor {
    encoder: Addr<FrameEncoder>,
    writer: Addr<SegmentWriter>,
    queue: Arc<Mutex<FrameQueue>>,
    notified: Arc<AtomicBool>,
    timing: StreamTiming,
    stats: MediaStats,
    encoding: bool,
    flushed: bool,
    finishing: Option<oneshot::Sender<MediaStats>>,
    steps: VecDeque<Step>,
    writing: bool,
    /// Open segment, drain state and the segment and byte counts of `stats`.
    ledger: SegmentLedger,
    opened_at: Instant,
    last_bytes: Instant,
}

impl StreamSupervisor {
    /// A supervisor pulling frames from `queue` (the handle sets `notified` and sends
    /// [`FramesAvailable`] when it queues a frame).
    pub fn new(
        encoder: Addr<FrameEncoder>,
        writer: Addr<SegmentWriter>,
        queue: Arc<Mutex<FrameQueue>>,
        notified: Arc<AtomicBool>,
        timing: StreamTiming,
    ) -> StreamSupervisor {
        StreamSupervisor {
            encoder,
            writer,
            queue,
            notified,
            timing,
            stats: MediaStats::default(),
            encoding: false,
            flushed: false,
            finishing: None,
            steps: VecDeque::new(),
            writing: false,
            ledger: SegmentLedger::new(),
            opened_at: Instant::now(),
            last_bytes: Instant::now(),
        }
    }

    fn snapshot(&self) -> MediaStats {
        let mut s = self.stats.clone();
        let q = self.queue.lock().unwrap_or_else(|e| e.into_inner()).stats();
        s.frames_in = q.frames_in;
        s.drops.overflow = q.dropped_overflow;
        s.drops.debt = q.dropped_debt;
        s.drops.non_monotonic = q.dropped_non_monotonic;
        s.frames_dropped = s.drops.total();
        let t = self.ledger.totals();
        s.segments_published = t.segments_published;
        s.segments_failed = t.segments_failed;
        s.bytes_encoded = t.bytes_in;
        s.bytes_published = t.bytes_published;
        s.bytes_drained = t.bytes_drained;
        s
    }

    /// Sends the next queued frame to the encoder if it is idle.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.encoding || self.stats.terminal_error.is_some() {
            return;
        }
        let frame = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            match q.pop() {
                Some(f) => Some(f),
                None => {
                    // Clear the flag first, then look again, so a frame pushed in between wakes us.
                    self.notified.store(false, Ordering::SeqCst);
                    q.pop()
                }
            }
        };
        let Some(frame) = frame else {
            self.maybe_flush(ctx);
            return;
        };
        self.encoding = true;
        ctx.spawn(self.encoder.send(EncodeFrame(frame)).into_actor(self).map(|res, act, ctx| {
            act.encoding = false;
            match res {
                Ok(Ok(encoded)) => {
                    act.queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_encode(&encoded.frame, encoded.took);
                    act.stats.frames_encoded += 1;
                    act.steps.extend(encoded.events.into_iter().map(Step::Media));
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "frame not encoded");
                    act.stats.drops.encode_failed += 1;
                }
                Err(_) => act.stats.terminal_error = Some("the encoder stopped".into()),
            }
            act.drive(ctx);
            act.pump(ctx);
        }));
    }

    /// When finishing and every frame is encoded, flushes the encoder once.
    fn maybe_flush(&mut self, ctx: &mut Context<Self>) {
        if self.finishing.is_none() || self.flushed || self.encoding {
            return;
        }
        self.flushed = true;
        self.encoding = true;
        ctx.spawn(self.encoder.send(FlushEncoder).into_actor(self).map(|res, act, ctx| {
            act.encoding = false;
            if let Ok(Ok(events)) = res {
                act.steps.extend(events.into_iter().map(Step::Media));
            }
            act.drive(ctx);
        }));
    }

    /// Hands the next step to the writer; one at a time, in order.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        while !self.writing {
            let Some(step) = self.steps.pop_front() else {
                self.maybe_done(ctx);
                return;
            };
            let fut: Option<ResponseActFuture<Self, Outcome>> = match step {
                Step::Media(SegmentEvent::SegmentStart { .. }) => {
                    if self.ledger.is_open() {
                        if self.opened_at.elapsed() < self.timing.min_segment_wallclock {
                            self.stats.segments_joined += 1; // join it to the open segment
                        }
                        None // (or still open after a join: keep writing into it)
                    } else {
                        self.ledger.start_piece();
                        Some(Box::pin(
                            self.writer
                                .send(BeginSegment)
                                .into_actor(self)
                                .map(|r, _, _| Outcome::Began(flatten(r))),
                        ))
                    }
                }
                Step::Media(SegmentEvent::Chunk(bytes)) => {
                    let len = bytes.len() as u64;
                    self.last_bytes = Instant::now();
                    match self.ledger.route(len) {
                        Route::Drain => None,
                        Route::Write => Some(Box::pin(
                            self.writer
                                .send(WriteChunk(bytes))
                                .into_actor(self)
                                .map(move |r, _, _| Outcome::Wrote(len, flatten(r))),
                        )),
                    }
                }
                Step::Media(SegmentEvent::SegmentEnd(_)) => {
                    // A failed segment's media segment is over: the next rolls into the next.
                    let drained = self.ledger.end_drain();
                    // Too short: the next media segment joins it.
                    let too_short = self.opened_at.elapsed() < self.timing.min_segment_wallclock
                        && self.finishing.is_none();
                    if drained || !self.ledger.is_open() || too_short {
                        None
                    } else {
                        Some(Box::pin(
                            self.writer
                                .send(EndSegment)
                                .into_actor(self)
                                .map(|r, _, _| Outcome::Ended(flatten(r))),
                        ))
                    }
                }
                Step::Close if self.ledger.is_open() => Some(Box::pin(
                    self.writer.send(EndSegment).into_actor(self).map(|r, _, _| Outcome::Ended(flatten(r))),
                )),
                Step::Close => None,
                Step::Cutover => {
                    if !self.ledger.is_open() || self.last_bytes.elapsed() < self.timing.idle_cutover {
                        None
                    } else {
                        self.stats.idle_cutovers += 1;
                        let mid_segment = self.ledger.in_flight() > 0;
                        let writer = self.writer.clone();
                        Some(Box::pin(
                            async move {
                                let ended = flatten(writer.send(EndSegment).await);
                                // Mid-segment, the rest of the media segment must not start a new
                                // trickle segment without its keyframe: drain it instead.
                                let began = if mid_segment {
                                    Err(TrickleError::Segment {
                                        seq: -1,
                                        reason: "cut over mid-segment".into(),
                                    })
                                } else {
                                    flatten(writer.send(BeginSegment).await)
                                };
                                Outcome::CutoverDone(ended, began)
                            }
                            .into_actor(self),
                        ))
                    }
                }
            };
            if let Some(fut) = fut {
                self.writing = true;
                ctx.spawn(fut.map(|outcome, act, ctx| {
                    act.writing = false;
                    act.apply(outcome);
                    act.drive(ctx);
                }));
            }
        }
    }

    fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Began(Ok(_)) => self.opened(),
            Outcome::Began(Err(e)) => self.begin_failed(e),
            Outcome::Wrote(len, Ok(())) => self.ledger.wrote(len, true),
            Outcome::Wrote(len, Err(e)) => {
                tracing::warn!(error = %e, "segment failed; draining the rest of it");
                self.ledger.wrote(len, false);
                self.note_terminal(&e);
            }
            Outcome::Ended(r) => self.ended(r),
            Outcome::CutoverDone(ended, began) => {
                let mid = self.ledger.in_flight() > 0;
                self.ended(ended);
                match began {
                    Ok(_) => self.opened(),
                    Err(_) if mid => self.ledger.drain_rest(),
                    Err(e) => self.begin_failed(e),
                }
            }
        }
    }

    fn opened(&mut self) {
        self.ledger.began(true);
        self.opened_at = Instant::now();
        self.last_bytes = Instant::now();
    }

    fn begin_failed(&mut self, e: TrickleError) {
        self.ledger.began(false);
        self.note_terminal(&e);
    }

    fn note_terminal(&mut self, e: &TrickleError) {
        if e.is_terminal() {
            self.stats.terminal_error = Some(e.to_string());
        }
    }

    fn ended(&mut self, r: Result<(), TrickleError>) {
        self.ledger.ended(r.is_ok());
        if let Err(e) = r {
            tracing::warn!(error = %e, "segment failed at its end");
            self.note_terminal(&e);
        }
    }

    /// Completes a `Finish` once everything is encoded and written.
    fn maybe_done(&mut self, ctx: &mut Context<Self>) {
        if self.finishing.is_none() || self.encoding || self.writing || !self.steps.is_empty() {
            return;
        }
        if !self.flushed && self.stats.terminal_error.is_none() {
            self.pump(ctx);
            return;
        }
        if self.ledger.is_open() {
            // A segment kept open by the minimum wall-clock rule: close it now.
            self.steps.push_back(Step::Close);
            self.drive(ctx);
            return;
        }
        if self.stats.terminal_error.is_some() {
            // The stream ended for good, so queued frames will never be encoded: count them,
            // or they would be in nobody's total.
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            while queue.pop().is_some() {
                self.stats.drops.stream_ended += 1;
            }
        }
        let writer = self.writer.clone();
        let snapshot = self.snapshot();
        if let Some(tx) = self.finishing.take() {
            ctx.spawn(
                async move {
                    // The caller stops this runtime once answered: let failed segments'
                    // DELETEs reach the server first, or it keeps them (and readers) open.
                    let _ = writer.send(Settle).await;
                    let restarts = writer.send(WriterStats).await.map(|r| r.restarts).unwrap_or(0);
                    let _ = tx.send(MediaStats { writer_restarts: restarts, ..snapshot });
                }
                .into_actor(self),
            );
        }
    }
}

fn flatten<T>(r: Result<Result<T, TrickleError>, MailboxError>) -> Result<T, TrickleError> {
    r.unwrap_or_else(|e| {
        Err(TrickleError::Segment { seq: -1, reason: format!("segment writer unavailable: {e}") })
    })
}

impl Actor for StreamSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = (self.timing.idle_cutover / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| {
            if act.ledger.is_open() && !act.writing && act.last_bytes.elapsed() >= act.timing.idle_cutover {
                act.steps.push_back(Step::Cutover);
                act.drive(ctx);
            }
        });
    }
}

/// Frames were queued; pull them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FramesAvailable;

impl Handler<FramesAvailable> for StreamSupervisor {
    type Result = ();
    fn handle(&mut self, _: FramesAvailable, ctx: &mut Context<Self>) {
        self.pump(ctx);
    }
}

/// Encode what is queued, flush, publish the rest, and answer the totals.
#[derive(Debug, Message)]
#[rtype(result = "MediaStats")]
pub struct Finish;

impl Handler<Finish> for StreamSupervisor {
    type Result = ResponseFuture<MediaStats>;
    fn handle(&mut self, _: Finish, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.finishing = Some(tx);
        self.pump(ctx);
        self.maybe_done(ctx);
        let fallback = self.snapshot();
        Box::pin(async move { rx.await.unwrap_or(fallback) })
    }
}

/// Current totals.
#[derive(Debug, Message)]
#[rtype(result = "MediaStats")]
pub struct GetMediaStats;

impl Handler<GetMediaStats> for StreamSupervisor {
    type Result = MediaStats;
    fn handle(&mut self, _: GetMediaStats, _: &mut Context<Self>) -> MediaStats {
        self.snapshot()
    }
}
