//! The bounded queue in front of the encoder. It decides which frames are *not* encoded, and
//! counts each of them by reason:
//!
//! * **overflow**: the queue is full; the oldest frame goes (fresh frames matter more live);
//! * **non-monotonic pts**: a frame not after the last one queued would break the stream;
//! * **debt**: encoding runs slower than real time. The Python SDK's rule, unchanged: after
//!   each encode, `debt = max(0, debt + encode_duration - media_advance)`; a dequeued frame is
//!   accepted only if it advances media time (since the last encoded frame) by at least the
//!   current debt, otherwise it is dropped in favour of the next *immediately available* frame.
//!   If none is queued the candidate is taken anyway: the queue never waits.
//!
//! No clock is read here: the caller passes each encode's duration, so tests are exact.

use std::collections::VecDeque;
use std::time::Duration;

use thiserror::Error;

use crate::frame::VideoFrame;
use crate::time::{duration_to_ticks_90k, ticks_90k_to_duration};

/// The Python SDK's video queue size.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8;

/// Why a frame was not encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was full and this was the oldest frame.
    Overflow,
    /// Its pts was not after the previous frame's.
    NonMonotonicPts,
    /// Encoding was behind real time and a later frame was available.
    Debt,
}

/// What happened to a pushed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued.
    Queued,
    /// Queued, and the oldest queued frame was dropped to make room.
    QueuedDroppedOldest,
    /// Not queued: its pts does not advance.
    DroppedNonMonotonic,
}

/// A queue that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameQueueError {
    /// Capacity of zero.
    #[error("frame queue capacity is 0; it must hold at least one frame")]
    ZeroCapacity,
}

/// Counters, plain numbers a caller can print.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameQueueStats {
    /// Frames offered to [`FrameQueue::push`].
    pub frames_in: u64,
    /// Frames handed out by [`FrameQueue::pop`].
    pub frames_out: u64,
    /// Dropped because the queue was full.
    pub dropped_overflow: u64,
    /// Dropped because their pts did not advance.
    pub dropped_non_monotonic: u64,
    /// Dropped by debt skipping.
    pub dropped_debt: u64,
    /// Frames queued now.
    pub depth: usize,
    /// Current media-time debt: how far encoding is behind real time.
    pub time_debt: Duration,
    /// Media time buffered: last queued pts minus last dequeued pts.
    pub queue_media_time: Duration,
    /// Media time dequeued so far: last minus first dequeued pts.
    pub media_time_processed: Duration,
}

impl FrameQueueStats {
    /// Frames dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Overflow => self.dropped_overflow,
            DropReason::NonMonotonicPts => self.dropped_non_monotonic,
            DropReason::Debt => self.dropped_debt,
        }
    }
}

/// Bounded, drop-oldest frame queue with debt skipping; see the module docs.
#[derive(Debug)]
pub struct FrameQueue {
    capacity: usize,
    debt_skip: bool,
    frames: VecDeque<VideoFrame>,
    last_pushed_pts: Option<i64>,
    last_encoded_pts: Option<i64>,
    first_out_pts: Option<i64>,
    last_out_pts: Option<i64>,
    debt_90k: i64,
    stats: FrameQueueStats,
}

impl FrameQueue {
    /// A queue of `capacity` frames with debt skipping on.
    pub fn new(capacity: usize) -> Result<Self, FrameQueueError> {
        if capacity == 0 {
            return Err(FrameQueueError::ZeroCapacity);
        }
        Ok(Self {
            capacity,
            debt_skip: true,
            frames: VecDeque::with_capacity(capacity),
            last_pushed_pts: None,
            last_encoded_pts: None,
            first_out_pts: None,
            last_out_pts: None,
            debt_90k: 0,
            stats: FrameQueueStats::default(),
        })
    }

    /// Turns debt skipping on or off (off = plain FIFO; debt is then not tracked).
    pub fn set_debt_skip(&mut self, on: bool) {
        self.debt_skip = on;
        if !on {
            self.debt_90k = 0;
        }
    }

    /// Maximum frames held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames held now.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame is queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Offers a frame. Frames whose 90 kHz pts is not after the last queued one are dropped;
    /// a full queue drops its oldest frame.
    pub fn push(&mut self, frame: VideoFrame) -> PushOutcome {
        self.stats.frames_in += 1;
        let pts = frame.pts_90k();
        if self.last_pushed_pts.is_some_and(|last| pts <= last) {
            self.stats.dropped_non_monotonic += 1;
            return PushOutcome::DroppedNonMonotonic;
        }
        self.last_pushed_pts = Some(pts);
        let outcome = if self.frames.len() >= self.capacity {
            if let Some(old) = self.frames.pop_front() {
                self.stats.dropped_overflow += 1;
                // The dropped frame still counts as consumed media time.
                self.note_out(old.pts_90k());
            }
            PushOutcome::QueuedDroppedOldest
        } else {
            PushOutcome::Queued
        };
        self.frames.push_back(frame);
        outcome
    }

    /// The next frame to encode, applying debt skipping; `None` when empty. Never waits.
    pub fn pop(&mut self) -> Option<VideoFrame> {
        let mut candidate = self.frames.pop_front()?;
        loop {
            let pts = candidate.pts_90k();
            if self.accepts(pts) {
                break;
            }
            let Some(next) = self.frames.pop_front() else {
                // No replacement right now: keep the pipeline moving with this one.
                break;
            };
            self.stats.dropped_debt += 1;
            self.note_out(pts);
            candidate = next;
        }
        self.stats.frames_out += 1;
        self.note_out(candidate.pts_90k());
        Some(candidate)
    }

    /// Reports that the frame with presentation time `pts_90k` (just popped) took
    /// `encode_duration` to encode; updates the debt. Only the pts is needed, so the frame
    /// itself can go on to the encoder and never come back.
    pub fn record_encode(&mut self, pts_90k: i64, encode_duration: Duration) {
        if !self.debt_skip {
            return;
        }
        let pts = pts_90k;
        match self.last_encoded_pts {
            None => self.debt_90k = 0,
            Some(last) => {
                let advance = (pts - last).max(0);
                self.debt_90k = (self.debt_90k + duration_to_ticks_90k(encode_duration) - advance).max(0);
            }
        }
        self.last_encoded_pts = Some(pts);
    }

    /// Current counters.
    pub fn stats(&self) -> FrameQueueStats {
        let mut s = self.stats.clone();
        s.depth = self.frames.len();
        s.time_debt = ticks_90k_to_duration(self.debt_90k);
        s.queue_media_time = match (self.last_pushed_pts, self.last_out_pts) {
            (Some(put), Some(got)) => ticks_90k_to_duration(put - got),
            _ => Duration::ZERO,
        };
        s.media_time_processed = match (self.first_out_pts, self.last_out_pts) {
            (Some(first), Some(last)) => ticks_90k_to_duration(last - first),
            _ => Duration::ZERO,
        };
        s
    }

    fn accepts(&self, pts: i64) -> bool {
        if !self.debt_skip {
            return true;
        }
        match self.last_encoded_pts {
            None => true,
            Some(last) => pts - last >= self.debt_90k,
        }
    }

    fn note_out(&mut self, pts: i64) {
        self.first_out_pts.get_or_insert(pts);
        self.last_out_pts = Some(pts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Rational;

    /// A tiny frame whose pts is `i` thirtieths of a second (3000 ticks per step).
    fn f(i: i64) -> VideoFrame {
        VideoFrame::from_i420(2, 2, i, Rational::new(1, 30), vec![0u8; 6]).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fifo_when_encoding_keeps_up() {
        let mut q = FrameQueue::new(8).unwrap();
        for i in 0..5 {
            assert_eq!(q.push(f(i)), PushOutcome::Queued);
        }
        for i in 0..5 {
            let frame = q.pop().unwrap();
            assert_eq!(frame.pts(), i);
            // 10 ms per 33 ms frame: never behind.
            q.record_encode(frame.pts_90k(), ms(10));
        }
        assert!(q.pop().is_none());
        let s = q.stats();
        assert_eq!((s.frames_in, s.frames_out, s.dropped_debt), (5, 5, 0));
        assert_eq!(s.time_debt, Duration::ZERO);
        assert_eq!(s.media_time_processed, Duration::from_nanos(133_333_333));
    }

    #[test]
    fn overflow_drops_the_oldest() {
        let mut q = FrameQueue::new(3).unwrap();
        for i in 0..3 {
            q.push(f(i));
        }
        assert_eq!(q.push(f(3)), PushOutcome::QueuedDroppedOldest);
        assert_eq!(q.push(f(4)), PushOutcome::QueuedDroppedOldest);
        let left: Vec<i64> = std::iter::from_fn(|| q.pop()).map(|f| f.pts()).collect();
        assert_eq!(left, vec![2, 3, 4]);
        assert_eq!(q.stats().dropped(DropReason::Overflow), 2);
    }

    #[test]
    fn non_monotonic_pts_is_dropped() {
        let mut q = FrameQueue::new(8).unwrap();
        q.push(f(5));
        assert_eq!(q.push(f(5)), PushOutcome::DroppedNonMonotonic);
        assert_eq!(q.push(f(4)), PushOutcome::DroppedNonMonotonic);
        assert_eq!(q.push(f(6)), PushOutcome::Queued);
        let s = q.stats();
        assert_eq!((s.dropped_non_monotonic, s.depth, s.frames_in), (2, 2, 4));
    }

    #[test]
    fn debt_follows_the_python_rule() {
        let mut q = FrameQueue::new(16).unwrap();
        for i in 0..10 {
            q.push(f(i));
        }
        // Frame 0: the first encode only sets the reference, debt stays 0.
        let a = q.pop().unwrap();
        q.record_encode(a.pts_90k(), ms(100));
        assert_eq!(q.stats().time_debt, Duration::ZERO);
        // Frame 1 advances 33.3 ms >= debt 0: accepted. 100 ms encode -> debt 66.7 ms.
        let b = q.pop().unwrap();
        assert_eq!(b.pts(), 1);
        q.record_encode(b.pts_90k(), ms(100));
        assert_eq!(q.stats().time_debt, Duration::from_nanos(66_666_666));
        // Frame 2 advances 33 ms < 66.7: dropped; frame 3 advances 66.7 ms >= debt: taken.
        let c = q.pop().unwrap();
        assert_eq!(c.pts(), 3);
        assert_eq!(q.stats().dropped_debt, 1);
        // Encode of 10 ms, advance 66.7 ms -> debt 66.7 + 10 - 66.7 = 10 ms.
        q.record_encode(c.pts_90k(), ms(10));
        assert_eq!(q.stats().time_debt, ms(10));
        // Frame 4 advances 33 ms >= 10 ms: accepted.
        assert_eq!(q.pop().unwrap().pts(), 4);
    }

    #[test]
    fn debt_candidate_is_kept_when_nothing_else_is_queued() {
        let mut q = FrameQueue::new(4).unwrap();
        q.push(f(0));
        let a = q.pop().unwrap();
        q.record_encode(a.pts_90k(), ms(0));
        q.push(f(1));
        let b = q.pop().unwrap();
        q.record_encode(b.pts_90k(), ms(500));
        // Debt is now ~467 ms; frame 2 advances only 33 ms but is the only one queued.
        q.push(f(2));
        assert_eq!(q.pop().unwrap().pts(), 2);
        assert_eq!(q.stats().dropped_debt, 0);
        // With several queued, all but the one that repays the debt are skipped.
        for i in 3..20 {
            q.push(f(i));
        }
        // Capacity 4: frames 16..19 remain. Last encoded pts is frame 1 (frame 2 was never
        // recorded); debt 466.7 ms needs pts >= 1 + 14 = 15 frames: frame 16 qualifies first.
        assert_eq!(q.pop().unwrap().pts(), 16);
        assert_eq!(q.stats().dropped_debt, 0);
        assert_eq!(q.stats().dropped_overflow, 13);
    }

    #[test]
    fn debt_skip_off_is_plain_fifo() {
        let mut q = FrameQueue::new(4).unwrap();
        q.set_debt_skip(false);
        for i in 0..4 {
            q.push(f(i));
        }
        let a = q.pop().unwrap();
        q.record_encode(a.pts_90k(), Duration::from_secs(5));
        assert_eq!(q.pop().unwrap().pts(), 1);
        assert_eq!(q.stats().time_debt, Duration::ZERO);
    }

    #[test]
    fn zero_capacity_is_an_error() {
        assert_eq!(FrameQueue::new(0).unwrap_err(), FrameQueueError::ZeroCapacity);
    }
}
