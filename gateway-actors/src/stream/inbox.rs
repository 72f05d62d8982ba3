//! The frame inbox: the bounded queue between a caller's frames and the stream's encoder.
//!
//! The caller's handle pushes without blocking (the [`FrameQueue`] drops the oldest frame when
//! full, and counts it); the stream's driver pops one frame at a time. Two wake-ups cross
//! between them, both without polling: the driver is told once that frames arrived (a flag
//! coalesces the messages, so its mailbox never holds more than one), and a producer waiting
//! for room is woken whenever the driver takes a frame or stops.
//!
//! Audio frames wait in a FIFO of their own beside it (the Python SDK's rule: bounded, the
//! oldest dropped and counted when full), under the same wake-up flag; the driver takes all of
//! them each time it feeds the encoder.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use gateway_media::AudioFrame;

use gateway_media::frame_queue::FrameQueueStats;
use gateway_media::{FrameQueue, PushOutcome, VideoFrame};
use tokio::sync::Notify;

use super::stats::AudioQueueCounts;

/// Audio frames waiting, and their counters.
#[derive(Debug, Default)]
struct AudioQueue {
    frames: VecDeque<AudioFrame>,
    capacity: usize,
    frames_in: u64,
    dropped: u64,
}

/// Frames waiting for one stream's encoder. Shared by the handle and the driver.
#[derive(Debug)]
pub(crate) struct FrameInbox {
    queue: Mutex<FrameQueue>,
    audio: Mutex<AudioQueue>,
    capacity: usize,
    /// Set when the driver has been told frames are waiting and has not looked yet.
    wake_sent: AtomicBool,
    /// Producers waiting for room.
    room: Notify,
    /// Set once the driver has stopped: no frame will be taken again.
    closed: AtomicBool,
}

impl FrameInbox {
    /// An inbox around `queue`, holding up to `audio_capacity` audio frames.
    pub(crate) fn new(queue: FrameQueue, audio_capacity: usize) -> FrameInbox {
        let capacity = queue.capacity();
        FrameInbox {
            queue: Mutex::new(queue),
            audio: Mutex::new(AudioQueue { capacity: audio_capacity.max(1), ..AudioQueue::default() }),
            capacity,
            wake_sent: AtomicBool::new(false),
            room: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, FrameQueue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame. `true` if the driver must be told (it was not already).
    pub(crate) fn push(&self, frame: VideoFrame) -> bool {
        let outcome = self.queue().push(frame);
        outcome != PushOutcome::DroppedNonMonotonic && !self.wake_sent.swap(true, Ordering::SeqCst)
    }

    fn audio(&self) -> std::sync::MutexGuard<'_, AudioQueue> {
        self.audio.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an audio frame, dropping the oldest when full. `true` if the driver must be told.
    pub(crate) fn push_audio(&self, frame: AudioFrame) -> bool {
        {
            let mut q = self.audio();
            q.frames_in += 1;
            if q.frames.len() >= q.capacity {
                q.frames.pop_front();
                q.dropped += 1;
            }
            q.frames.push_back(frame);
        }
        !self.wake_sent.swap(true, Ordering::SeqCst)
    }

    /// Takes every queued audio frame. Call after [`Self::pop`], which clears the wake-up flag
    /// only when no video is left: audio queued after this call sends a new wake-up.
    pub(crate) fn take_audio(&self) -> Vec<AudioFrame> {
        self.audio().frames.drain(..).collect()
    }

    /// Audio frames offered and dropped for overflow so far.
    pub(crate) fn audio_counts(&self) -> AudioQueueCounts {
        let q = self.audio();
        AudioQueueCounts { frames_in: q.frames_in, dropped_overflow: q.dropped }
    }

    /// Takes the next frame for the encoder, waking a producer waiting for room.
    pub(crate) fn pop(&self) -> Option<VideoFrame> {
        let frame = {
            let mut q = self.queue();
            match q.pop() {
                Some(f) => Some(f),
                None => {
                    // Clear the flag first, then look again, so a frame pushed in between
                    // sends a new wake-up.
                    self.wake_sent.store(false, Ordering::SeqCst);
                    q.pop()
                }
            }
        };
        if frame.is_some() {
            self.room.notify_waiters();
        }
        frame
    }

    /// Feeds the encoder's time for a frame back into the queue's debt rule.
    pub(crate) fn record_encode(&self, pts_90k: i64, took: std::time::Duration) {
        self.queue().record_encode(pts_90k, took);
    }

    /// Empties the queues (the stream ended for good); answers how many video and audio
    /// frames were in them.
    pub(crate) fn abandon(&self) -> (u64, u64) {
        let mut q = self.queue();
        let mut n = 0;
        while q.pop().is_some() {
            n += 1;
        }
        let audio = self.take_audio().len() as u64;
        (n, audio)
    }

    /// Frames waiting now.
    pub(crate) fn len(&self) -> usize {
        self.queue().len()
    }

    /// The queue's counters.
    pub(crate) fn stats(&self) -> FrameQueueStats {
        self.queue().stats()
    }

    /// The driver has stopped: wakes every waiting producer for good.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    /// Waits until the queue has room. `false` if the driver stopped first.
    pub(crate) async fn wait_for_room(&self) -> bool {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before looking, so a pop between the look and the wait still wakes us.
            notified.as_mut().enable();
            if self.closed.load(Ordering::SeqCst) {
                return false;
            }
            if self.len() < self.capacity {
                return true;
            }
            notified.await;
        }
    }
}
