//! The segment store: channels, each a ring of segments, and segments, append-only chunk lists
//! that readers follow while they are written.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use gateway_core::trickle::{SeqSpec, SERVER_RING_SIZE};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{lock, Counters};

fn slot_of(idx: u64) -> usize {
    (idx % SERVER_RING_SIZE as u64) as usize
}

pub(super) struct Channel {
    pub(super) name: String,
    state: Mutex<ChannelState>,
    /// Woken on every change a waiting local subscriber could care about.
    pub(super) changed: Notify,
}

pub(super) struct ChannelState {
    slots: [Option<Arc<Segment>>; SERVER_RING_SIZE],
    pub(super) next_write: u64,
    pub(super) write_time: Instant,
    pub(super) mime: String,
    pub(super) closed: bool,
}

/// What a read request found.
pub(super) struct ReadSlot {
    pub(super) idx: u64,
    pub(super) segment: Option<Arc<Segment>>,
    pub(super) next_write: u64,
    pub(super) closed: bool,
}

impl Channel {
    pub(super) fn new(name: &str, mime: &str) -> Channel {
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

    pub(super) fn state(&self) -> MutexGuard<'_, ChannelState> {
        lock(&self.state)
    }

    /// The segment a POST for `idx` (`None` = `-1`) writes into: the slot's occupant if it has
    /// that index (a precreated or preconnected one), else a fresh one replacing (and closing)
    /// whatever was there.
    pub(super) fn segment_for_write(&self, idx: Option<u64>, counters: &Arc<Counters>) -> Arc<Segment> {
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
    pub(super) fn segment_for_read(&self, spec: SeqSpec, counters: &Arc<Counters>) -> ReadSlot {
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
    pub(super) fn mark_written(&self, idx: u64) {
        {
            let mut st = self.state();
            st.next_write = idx.saturating_add(1);
            st.write_time = Instant::now();
        }
        self.changed.notify_waiters();
    }

    /// Closes every segment with a lower index (publisher restart); later ones are preconnects.
    pub(super) fn reset_below(&self, idx: u64) {
        let st = self.state();
        for seg in st.slots.iter().flatten().filter(|s| s.idx < idx) {
            seg.close();
        }
    }

    pub(super) fn segment_at(&self, idx: u64) -> Option<Arc<Segment>> {
        self.state().slots[slot_of(idx)].as_ref().filter(|s| s.idx == idx).cloned()
    }

    pub(super) fn close(&self) {
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

    pub(super) fn is_closed(&self) -> bool {
        self.state().closed
    }
}

/// One segment: append-only chunks, readable while being written.
pub(super) struct Segment {
    pub(super) idx: u64,
    state: Mutex<SegmentState>,
    /// Woken on every append and on close.
    changed: Notify,
    counters: Arc<Counters>,
}

#[derive(Default)]
pub(super) struct SegmentState {
    chunks: Vec<Bytes>,
    len: u64,
    closed: bool,
}

/// What a reader at a chunk position gets.
pub(super) enum ChunkRead {
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
    pub(super) fn append(&self, chunk: Bytes) {
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

    pub(super) fn close(&self) {
        let was_open = !std::mem::replace(&mut self.state().closed, true);
        if was_open {
            self.changed.notify_waiters();
        }
    }

    fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Waits for chunk `pos`, or the end of the segment.
    pub(super) async fn read_chunk(&self, pos: usize) -> ChunkRead {
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

    pub(super) async fn wait_closed(&self) {
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
