//! The rules of one video stream, as a state machine with no I/O and no clock reads.
//!
//! Events go in (a frame was encoded, the writer answered, time passed, the caller finished),
//! with the time `now` given by the caller; commands come out: what the encoder should do next
//! ([`StreamPlan::encoder_ready`], [`StreamPlan::flush_due`]), what the segment writer should do
//! next ([`StreamPlan::poll_writer`]), and when to look again ([`StreamPlan::next_deadline`]).
//! The [`driver`](super::driver) runs the commands; tests run them against synthetic time.
//!
//! The rules:
//! - One writer command at a time, in media order, so chunks reach the network in order.
//! - A trickle segment stays open at least `min_segment_wallclock`: shorter media segments are
//!   joined into it.
//! - A failed segment (stall, error status) is drained: the rest of its media segment is
//!   counted, never sent, and the next media segment (which starts with a keyframe) rolls into
//!   the next sequence number. Those rules and the byte counts are [`SegmentLedger`]'s.
//! - With no media bytes for `idle_cutover`, the open segment is closed and a fresh one opened;
//!   mid media segment, the rest of it is drained instead, as a segment must start on a keyframe.
//! - On finish: everything queued is encoded, the encoder flushed, the last segment closed.
//! - After bytes were lost (drained), the first chunk of the next media segment is marked as a
//!   discontinuity (MPEG-TS: [`mark_discontinuity`]), so readers joining the segments take the
//!   jump in continuity counters as intended rather than as corruption.
//! - A terminal channel error ends the stream ([`ChannelLoss::EndStream`]), or, with
//!   [`ChannelLoss::AwaitReplacement`], leaves it running without a channel: frames are still
//!   encoded and every media segment is drained until a new channel comes.
//! - When the stream moves to a new channel ([`StreamPlan::channel_replaced`]), the old
//!   channel's open segment and pending command are given up (their bytes drained), a keyframe
//!   is asked for, and the next media segment (it starts with that keyframe) opens the first
//!   segment on the new channel, marked as a discontinuity. That segment is cut short: a
//!   second keyframe is asked for `first_segment_after_swap` after it opened, so the new
//!   orchestrator holds a complete segment within about that time. Answers from the old channel's
//!   writer come back tagged with its channel number and are ignored.
//! - [`ChannelHealth`] follows every writer answer, per channel.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_media::frame_queue::FrameQueueStats;
use gateway_media::segmenter::SegmentEvent;
#[cfg(doc)]
use gateway_media::ts::discontinuity::mark_discontinuity;

use super::stats::{AudioCounts, AudioQueueCounts, ChannelHealth, ChannelLoss, MediaStats, StreamTiming};
use crate::trickle::{Route, SegmentLedger};

/// What the segment writer should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriterCommand {
    /// Open the next segment.
    Begin,
    /// Append this chunk to the open segment.
    Write(Bytes),
    /// Complete the open segment and wait for the server's answer.
    End,
}

/// Work waiting for the writer.
#[derive(Debug)]
enum Step {
    Media(SegmentEvent),
    /// Cut the open segment over if it is still idle.
    Cutover,
    /// Open the segment after an idle cutover closed the last one at a media-segment boundary.
    Reopen,
}

/// What follows the end of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterEnd {
    Nothing,
    /// An idle cutover at a media-segment boundary: open the next segment at once.
    Reopen,
    /// An idle cutover mid media segment: drain the rest of it.
    DrainRest,
}

/// The writer command being carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Begin,
    Write(u64),
    End(AfterEnd),
}

/// One stream's rules and counts.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    timing: StreamTiming,
    steps: VecDeque<Step>,
    pending: Option<Pending>,
    /// Open segment, drain state, and the segment and byte counts.
    ledger: SegmentLedger,
    opened_at: Instant,
    last_bytes: Instant,
    encoding: bool,
    flushed: bool,
    finishing: bool,
    /// Frame and segment counts the ledger and the queue do not keep.
    stats: MediaStats,
    /// How the container marks a discontinuity, if it can.
    marker: Option<DiscontinuityMarker>,
    /// Drained bytes already answered by a discontinuity mark.
    drained_marked: u64,
    /// The next chunk starts a media segment that follows lost bytes.
    mark_next_chunk: bool,
    /// What a terminal channel error does to the stream.
    on_loss: ChannelLoss,
    /// The channel's health; its `generation` numbers the channel.
    health: ChannelHealth,
    /// The encoder must make its next frame a keyframe (the stream moved to a new channel).
    keyframe_wanted: bool,
    /// The next media segment is the first on a new channel: mark it as a discontinuity.
    mark_after_swap: bool,
    /// The segment being opened is the first on a new channel: cut it short once open.
    first_after_swap_opening: bool,
    /// When to ask for the keyframe that ends the first segment on a new channel.
    cut_first_at: Option<Instant>,
    /// Access units the caller handed in already encoded (passthrough), counted as frames in.
    passed_units: u64,
}

/// Marks a chunk that starts a media segment as a discontinuity; `None` leaves it as it is.
pub(crate) type DiscontinuityMarker = fn(&[u8]) -> Option<Vec<u8>>;

impl StreamPlan {
    /// A stream starting at `now`.
    pub(crate) fn new(timing: StreamTiming, now: Instant) -> StreamPlan {
        StreamPlan {
            timing,
            steps: VecDeque::new(),
            pending: None,
            ledger: SegmentLedger::new(),
            opened_at: now,
            last_bytes: now,
            encoding: false,
            flushed: false,
            finishing: false,
            stats: MediaStats::default(),
            marker: None,
            drained_marked: 0,
            mark_next_chunk: false,
            on_loss: ChannelLoss::EndStream,
            health: ChannelHealth::default(),
            keyframe_wanted: false,
            mark_after_swap: false,
            first_after_swap_opening: false,
            cut_first_at: None,
            passed_units: 0,
        }
    }

    /// What a terminal channel error does to the stream (by default it ends it).
    pub(crate) fn with_channel_loss(mut self, on_loss: ChannelLoss) -> StreamPlan {
        self.on_loss = on_loss;
        self
    }

    /// Marks the first chunk after lost bytes with `marker` (the container's discontinuity).
    pub(crate) fn with_discontinuity_marker(mut self, marker: DiscontinuityMarker) -> StreamPlan {
        self.marker = Some(marker);
        self
    }

    // ---- the encoder side ----

    /// Whether the encoder may take the next frame: it is idle and the stream goes on.
    pub(crate) fn encoder_ready(&self) -> bool {
        !self.encoding && self.stats.terminal_error.is_none() && !self.flushed
    }

    /// A frame went to the encoder.
    pub(crate) fn frame_sent(&mut self) {
        self.encoding = true;
    }

    /// The encoder answered a frame with these segment events.
    pub(crate) fn frame_encoded(&mut self, events: Vec<SegmentEvent>) {
        self.encoding = false;
        self.stats.frames_encoded += 1;
        self.steps.extend(events.into_iter().map(Step::Media));
    }

    /// Audio frames alone went to the encoder.
    pub(crate) fn audio_sent(&mut self) {
        self.encoding = true;
    }

    /// The encoder answered audio (alone, or with a video frame it refused) with these events.
    pub(crate) fn audio_encoded(&mut self, events: Vec<SegmentEvent>) {
        self.encoding = false;
        self.steps.extend(events.into_iter().map(Step::Media));
    }

    /// What became of the audio frames of one encoder job (with a video frame or alone).
    pub(crate) fn audio_counted(&mut self, counts: AudioCounts) {
        self.stats.audio.frames_encoded += counts.frames_encoded;
        self.stats.audio.frames_refused += counts.frames_refused;
    }

    /// The encoder's audio packet totals so far: made, and dropped by its segmenter (read
    /// whenever the encoder is back from a job).
    pub(crate) fn audio_packets(&mut self, encoded: u64, dropped: u64) {
        self.stats.audio.packets_encoded = encoded;
        self.stats.audio.packets_dropped = dropped;
    }

    /// Media already encoded and cut (passthrough): `units` access units as segment events,
    /// taken as frames in and encoded.
    pub(crate) fn media_passed(&mut self, events: Vec<SegmentEvent>, units: u64) {
        self.passed_units += units;
        self.stats.frames_encoded += units;
        self.steps.extend(events.into_iter().map(Step::Media));
    }

    /// Media bytes waiting for the writer.
    pub(crate) fn queued_bytes(&self) -> u64 {
        let chunk = |s: &Step| match s {
            Step::Media(SegmentEvent::Chunk(b)) => b.len() as u64,
            _ => 0,
        };
        self.steps.iter().map(chunk).sum()
    }

    /// The encoder refused a frame (counted as dropped).
    pub(crate) fn frame_refused(&mut self) {
        self.encoding = false;
        self.stats.drops.encode_failed += 1;
    }

    /// The encoder is gone: the stream ends for good.
    pub(crate) fn encoder_lost(&mut self) {
        self.encoding = false;
        self.stats.terminal_error.get_or_insert_with(|| "the encoder stopped".into());
    }

    /// Whether to flush the encoder now: finishing, every frame encoded (the caller has just
    /// found the queue empty), not flushed yet.
    pub(crate) fn flush_due(&self) -> bool {
        self.finishing && self.encoder_ready()
    }

    /// The flush went to the encoder.
    pub(crate) fn flush_sent(&mut self) {
        self.flushed = true;
        self.encoding = true;
    }

    /// The flush's last segment events (none if it failed).
    pub(crate) fn flushed(&mut self, events: Vec<SegmentEvent>) {
        self.encoding = false;
        self.steps.extend(events.into_iter().map(Step::Media));
    }

    /// Whether the frame sent at `now` must be a keyframe; asking clears the request, so the
    /// caller passes it on to the encoder with that frame.
    pub(crate) fn take_keyframe_request(&mut self, now: Instant) -> bool {
        let cut_first = self.cut_first_at.is_some_and(|at| now >= at);
        if cut_first {
            self.cut_first_at = None;
        }
        std::mem::take(&mut self.keyframe_wanted) || cut_first
    }

    /// Frames still queued when the stream ended for good (never encoded): `video` frames
    /// and `audio` frames.
    pub(crate) fn frames_abandoned(&mut self, video: u64, audio: u64) {
        self.stats.drops.stream_ended += video;
        self.stats.audio.frames_refused += audio;
    }

    // ---- the writer side ----

    /// The next writer command, if the writer is free and has work. Steps that need no I/O
    /// (a joined segment start, a drained chunk, a cutover no longer due) are settled here.
    pub(crate) fn poll_writer(&mut self, now: Instant) -> Option<WriterCommand> {
        if self.pending.is_some() {
            return None;
        }
        while let Some(step) = self.steps.pop_front() {
            if let Some(cmd) = self.step(step, now) {
                return Some(cmd);
            }
        }
        if self.finishing && !self.encoding && self.ledger.is_open() && self.encoder_done() {
            // A segment kept open by the minimum wall-clock rule: close it now.
            return Some(self.send(Pending::End(AfterEnd::Nothing), WriterCommand::End));
        }
        None
    }

    fn step(&mut self, step: Step, now: Instant) -> Option<WriterCommand> {
        let young = now.saturating_duration_since(self.opened_at) < self.timing.min_segment_wallclock;
        match step {
            Step::Media(SegmentEvent::SegmentStart { .. }) => {
                let drained = self.ledger.totals().bytes_drained;
                let swapped = std::mem::take(&mut self.mark_after_swap);
                self.mark_next_chunk = swapped || drained > self.drained_marked;
                self.drained_marked = drained;
                if self.awaiting_channel() {
                    // No channel to open a segment on: the whole media segment is drained.
                    self.ledger.start_piece();
                    self.ledger.began(false);
                    None
                } else if self.ledger.is_open() {
                    if young {
                        self.stats.segments_joined += 1;
                    }
                    None // joined, or still open after a join: keep writing into it
                } else {
                    self.ledger.start_piece();
                    self.first_after_swap_opening = swapped;
                    Some(self.send(Pending::Begin, WriterCommand::Begin))
                }
            }
            Step::Media(SegmentEvent::Chunk(bytes)) => {
                let len = bytes.len() as u64;
                self.last_bytes = now;
                let mark = std::mem::take(&mut self.mark_next_chunk);
                match self.ledger.route(len) {
                    Route::Drain => None,
                    Route::Write => {
                        let bytes = match (mark, self.marker) {
                            (true, Some(marker)) => marker(&bytes).map_or(bytes, Bytes::from),
                            _ => bytes,
                        };
                        Some(self.send(Pending::Write(len), WriterCommand::Write(bytes)))
                    }
                }
            }
            Step::Media(SegmentEvent::SegmentEnd(_)) => {
                // A failed segment's media segment is over: the next rolls into the next seq.
                let drained = self.ledger.end_drain();
                let too_short = young && !self.finishing; // the next media segment joins it
                if drained || !self.ledger.is_open() || too_short {
                    None
                } else {
                    Some(self.send(Pending::End(AfterEnd::Nothing), WriterCommand::End))
                }
            }
            Step::Cutover => {
                if !self.ledger.is_open() || !self.idle(now) {
                    return None;
                }
                self.stats.idle_cutovers += 1;
                let after = if self.ledger.in_flight() > 0 { AfterEnd::DrainRest } else { AfterEnd::Reopen };
                Some(self.send(Pending::End(after), WriterCommand::End))
            }
            Step::Reopen if self.awaiting_channel() => None,
            Step::Reopen => Some(self.send(Pending::Begin, WriterCommand::Begin)),
        }
    }

    fn send(&mut self, pending: Pending, cmd: WriterCommand) -> WriterCommand {
        self.pending = Some(pending);
        cmd
    }

    /// The number of the channel the writer commands go to now (0 for the first, +1 per
    /// [`channel_replaced`](Self::channel_replaced)); the caller hands it back with the answer.
    pub(crate) fn channel(&self) -> u32 {
        self.health.generation
    }

    /// The answer of channel `channel`'s writer to the command it was sent: ignored when the
    /// stream has moved to another channel since (that command was given up then).
    pub(crate) fn writer_done_on(&mut self, channel: u32, result: Result<(), TrickleError>, now: Instant) {
        if channel == self.channel() {
            self.writer_done(result, now);
        } else {
            tracing::debug!(channel, ?result, "a replaced channel's writer answered late; ignored");
        }
    }

    /// The writer's answer to the last command, at `now`.
    pub(crate) fn writer_done(&mut self, result: Result<(), TrickleError>, now: Instant) {
        let Some(pending) = self.pending.take() else { return };
        match (pending, result) {
            (Pending::Begin, Ok(())) => {
                self.ledger.began(true);
                self.opened_at = now;
                self.last_bytes = now;
                if std::mem::take(&mut self.first_after_swap_opening) {
                    // Not before the minimum, or the cut media segment would only be joined.
                    let after = self.timing.first_segment_after_swap.max(self.timing.min_segment_wallclock);
                    self.cut_first_at = Some(now + after);
                }
            }
            (Pending::Begin, Err(e)) => {
                // Opening fails only once the publisher has given up: the failures that made
                // it give up were counted when they happened.
                self.ledger.began(false);
                self.note_terminal(&e);
            }
            (Pending::Write(len), Ok(())) => {
                self.ledger.wrote(len, true);
                self.health.last_sent = Some(now);
            }
            (Pending::Write(len), Err(e)) => {
                tracing::warn!(error = %e, "segment failed; draining the rest of it");
                self.ledger.wrote(len, false);
                self.note_failure(&e);
            }
            (Pending::End(after), r) => {
                self.ledger.ended(r.is_ok());
                match r {
                    Ok(()) => self.note_accepted(now),
                    Err(e) => {
                        tracing::warn!(error = %e, "segment failed at its end");
                        self.note_failure(&e);
                    }
                }
                match after {
                    AfterEnd::Nothing => {}
                    AfterEnd::DrainRest => self.ledger.drain_rest(),
                    AfterEnd::Reopen => self.steps.push_front(Step::Reopen),
                }
            }
        }
    }

    fn note_accepted(&mut self, now: Instant) {
        let h = &mut self.health;
        h.segments_accepted += 1;
        h.consecutive_failed = 0;
        h.first_accepted.get_or_insert(now);
    }

    fn note_failure(&mut self, e: &TrickleError) {
        if !matches!(e, TrickleError::Terminal { .. }) {
            // "Gave up after n failures" is a verdict, not a failure: the last real one stays.
            self.health.consecutive_failed += 1;
            self.health.last_failure = Some(e.segment_failure());
        }
        self.note_terminal(e);
    }

    fn note_terminal(&mut self, e: &TrickleError) {
        if !e.is_terminal() {
            return;
        }
        self.health.lost.get_or_insert_with(|| e.clone());
        if self.on_loss == ChannelLoss::EndStream {
            self.stats.terminal_error.get_or_insert_with(|| e.to_string());
        }
    }

    /// The channel is lost for good and the stream waits for a new one.
    fn awaiting_channel(&self) -> bool {
        self.on_loss == ChannelLoss::AwaitReplacement && self.health.lost.is_some()
    }

    // ---- channels ----

    /// The stream moves to a new channel at `now`; refused (with the reason) once it has ended
    /// for good.
    ///
    /// Whatever the old channel still held is given up and counted as drained: the open
    /// segment, and the command out with its writer (its late answer is ignored, see
    /// [`writer_done_on`](Self::writer_done_on)). The rest of the current media segment is
    /// drained too, since a segment must start with a keyframe; one is asked for now, so the
    /// first segment on the new channel starts within a frame or two.
    pub(crate) fn channel_replaced(&mut self, now: Instant) -> Result<(), String> {
        if let Some(e) = &self.stats.terminal_error {
            return Err(format!("the stream has ended: {e}"));
        }
        match self.pending.take() {
            Some(Pending::Begin) => self.ledger.began(false),
            Some(Pending::Write(len)) => self.ledger.wrote(len, false),
            Some(Pending::End(_)) => self.ledger.ended(false),
            None => self.ledger.abandon(),
        }
        self.ledger.drain_rest();
        // Cutovers and reopens were meant for the old channel's segments.
        self.steps.retain(|step| matches!(step, Step::Media(_)));
        self.health =
            ChannelHealth { generation: self.health.generation.wrapping_add(1), ..Default::default() };
        self.stats.channel_swaps += 1;
        self.keyframe_wanted = true;
        self.mark_after_swap = true;
        self.first_after_swap_opening = false;
        self.cut_first_at = None;
        self.opened_at = now;
        self.last_bytes = now;
        Ok(())
    }

    /// The health of the channel in use.
    pub(crate) fn health(&self) -> &ChannelHealth {
        &self.health
    }

    // ---- time ----

    fn idle(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_bytes) >= self.timing.idle_cutover
    }

    /// When the plan next wants [`on_deadline`](Self::on_deadline): the idle cutover of an open
    /// segment, while the writer is free.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        (self.ledger.is_open() && self.pending.is_none() && self.steps.is_empty())
            .then(|| self.last_bytes + self.timing.idle_cutover)
    }

    /// Time has passed: cuts an idle segment over (the command comes from `poll_writer`).
    pub(crate) fn on_deadline(&mut self, now: Instant) {
        if self.ledger.is_open() && self.pending.is_none() && self.idle(now) {
            self.steps.push_back(Step::Cutover);
        }
    }

    // ---- the end ----

    /// The caller asked to finish: encode what is queued, flush, publish the rest.
    pub(crate) fn finish(&mut self) {
        self.finishing = true;
    }

    /// Whether the stream has ended for good (a terminal error).
    pub(crate) fn is_terminal(&self) -> bool {
        self.stats.terminal_error.is_some()
    }

    /// The encoder has nothing more to give: flushed, or the stream ended for good.
    fn encoder_done(&self) -> bool {
        self.flushed || self.is_terminal()
    }

    /// Finishing, and nothing is left to encode or write.
    pub(crate) fn is_done(&self) -> bool {
        self.finishing
            && !self.encoding
            && self.encoder_done()
            && self.pending.is_none()
            && self.steps.is_empty()
            && !self.ledger.is_open()
    }

    /// The totals so far, with the frame queue's and the audio queue's counts.
    pub(crate) fn stats(&self, queue: &FrameQueueStats, audio: AudioQueueCounts) -> MediaStats {
        let mut s = self.stats.clone();
        s.audio.frames_in = audio.frames_in;
        s.audio.frames_dropped_overflow = audio.dropped_overflow;
        s.frames_in = queue.frames_in + self.passed_units;
        s.drops.overflow = queue.dropped_overflow;
        s.drops.debt = queue.dropped_debt;
        s.drops.non_monotonic = queue.dropped_non_monotonic;
        s.frames_dropped = s.drops.total();
        let t = self.ledger.totals();
        s.segments_published = t.segments_published;
        s.segments_failed = t.segments_failed;
        s.bytes_encoded = t.bytes_in;
        s.bytes_published = t.bytes_published;
        s.bytes_drained = t.bytes_drained;
        s
    }
}

#[cfg(test)]
mod tests;
