//! The bounded queue between a segment's writer and its POST body: chunks in order, a fixed
//! number of slots, and a waiting writer woken in batches.
//!
//! tokio's bounded mpsc wakes a waiting sender for every slot freed, so a writer that keeps the
//! queue full (any writer faster than the socket) is woken once per chunk, usually on another
//! worker thread. This queue wakes it once the queue has drained to half, so each wake-up refills
//! several slots. A sender that is polled for any other reason still takes any free slot at once.
//!
//! What that costs: a writer waiting with a timeout (the stall timeout) is not told of a single
//! chunk taken from a full queue. If the server reads a few chunks and then stops, the writer
//! sees those free slots only when its timeout fires (it takes them then: the inner future is
//! polled first), so the stall is reported between one and two timeouts after the last read.
//! A timeout that fires on a still-full queue is always a real stall: only the sender fills it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// A queue of at most `capacity` chunks (at least 1) with one sender and one receiver.
pub(crate) fn chunk_queue(capacity: usize) -> (ChunkSender, ChunkReceiver) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        state: Mutex::new(State {
            chunks: VecDeque::with_capacity(capacity.max(1)),
            receiver_closed: false,
            sender_gone: false,
            send_waker: None,
            recv_waker: None,
        }),
    });
    (ChunkSender { shared: shared.clone() }, ChunkReceiver { shared })
}

/// The receiver has closed the queue or is gone: the chunk was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueClosed;

struct Shared {
    capacity: usize,
    state: Mutex<State>,
}

struct State {
    chunks: VecDeque<Bytes>,
    receiver_closed: bool,
    sender_gone: bool,
    send_waker: Option<Waker>,
    recv_waker: Option<Waker>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a waiting sender is worth waking after a chunk left: the queue is at half or less.
    fn low_water(&self, len: usize) -> bool {
        len <= self.capacity / 2
    }
}

/// Hands chunks to the queue; dropping it ends the body once the queued chunks are taken.
pub(crate) struct ChunkSender {
    shared: Arc<Shared>,
}

impl ChunkSender {
    /// Queues `chunk`, waiting while the queue is full; fails if the receiver closed the queue.
    /// Dropping the future before it completes leaves the chunk unqueued.
    pub(crate) fn send(&self, chunk: Bytes) -> SendChunk<'_> {
        SendChunk { shared: &self.shared, chunk: Some(chunk) }
    }
}

impl Drop for ChunkSender {
    fn drop(&mut self) {
        let waker = {
            let mut st = self.shared.state();
            st.sender_gone = true;
            st.recv_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The future of [`ChunkSender::send`].
pub(crate) struct SendChunk<'a> {
    shared: &'a Shared,
    chunk: Option<Bytes>,
}

impl Future for SendChunk<'_> {
    type Output = Result<(), QueueClosed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared;
        let mut st = shared.state();
        if st.receiver_closed {
            return Poll::Ready(Err(QueueClosed));
        }
        if st.chunks.len() < shared.capacity {
            let Some(chunk) = self.chunk.take() else {
                // Polled again after completing: nothing left to queue.
                return Poll::Ready(Ok(()));
            };
            st.chunks.push_back(chunk);
            let waker = st.recv_waker.take();
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Ok(()));
        }
        match &mut st.send_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Takes chunks in order; see [`ChunkReceiver::poll_recv`].
pub(crate) struct ChunkReceiver {
    shared: Arc<Shared>,
}

impl ChunkReceiver {
    /// The next chunk; `None` once the sender is gone (or the queue closed) and every queued
    /// chunk has been taken.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let shared = &self.shared;
        let mut st = shared.state();
        if let Some(chunk) = st.chunks.pop_front() {
            let waker = if shared.low_water(st.chunks.len()) { st.send_waker.take() } else { None };
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
            return Poll::Ready(Some(chunk));
        }
        if st.sender_gone || st.receiver_closed {
            return Poll::Ready(None);
        }
        match &mut st.recv_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Refuses further chunks (a waiting sender fails at once); chunks already queued can
    /// still be taken.
    pub(crate) fn close(&mut self) {
        let waker = {
            let mut st = self.shared.state();
            st.receiver_closed = true;
            st.send_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for ChunkReceiver {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl CountingWaker {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn poll_send(fut: &mut SendChunk<'_>, waker: &Arc<CountingWaker>) -> Poll<Result<(), QueueClosed>> {
        let w = Waker::from(waker.clone());
        Pin::new(fut).poll(&mut Context::from_waker(&w))
    }

    fn poll_recv(rx: &mut ChunkReceiver, waker: &Arc<CountingWaker>) -> Poll<Option<Bytes>> {
        let w = Waker::from(waker.clone());
        rx.poll_recv(&mut Context::from_waker(&w))
    }

    fn chunk(n: u8) -> Bytes {
        Bytes::from(vec![n; 3])
    }

    #[test]
    fn chunks_come_out_in_order_and_a_full_queue_makes_the_sender_wait() {
        let (tx, mut rx) = chunk_queue(3);
        let (sw, rw) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        for n in 0..3 {
            assert_eq!(poll_send(&mut tx.send(chunk(n)), &sw), Poll::Ready(Ok(())));
        }
        let mut fourth = tx.send(chunk(3));
        assert_eq!(poll_send(&mut fourth, &sw), Poll::Pending, "capacity is 3");
        for n in 0..3 {
            assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(n))));
        }
        assert_eq!(poll_send(&mut fourth, &sw), Poll::Ready(Ok(())));
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(3))));
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Pending, "empty with the sender still there");
        assert_eq!(rw.count(), 0);
        assert_eq!(poll_send(&mut tx.send(chunk(4)), &sw), Poll::Ready(Ok(())));
        assert_eq!(rw.count(), 1, "a chunk wakes a waiting receiver");
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(4))));
    }

    #[test]
    fn a_waiting_sender_is_woken_once_the_queue_drains_to_half() {
        let (tx, mut rx) = chunk_queue(8);
        let (sw, rw) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        for n in 0..8 {
            assert!(poll_send(&mut tx.send(chunk(n)), &sw).is_ready());
        }
        let mut ninth = tx.send(chunk(8));
        assert!(poll_send(&mut ninth, &sw).is_pending());
        for taken in 1..=3 {
            assert!(poll_recv(&mut rx, &rw).is_ready());
            assert_eq!(sw.count(), 0, "not woken with {} of 8 queued", 8 - taken);
        }
        assert!(poll_recv(&mut rx, &rw).is_ready());
        assert_eq!(sw.count(), 1, "woken at 4 of 8 queued");
        // A sender polled before that (its timeout fired) takes a free slot all the same.
        assert_eq!(poll_send(&mut ninth, &sw), Poll::Ready(Ok(())));
    }

    #[test]
    fn a_closed_queue_fails_the_sender_and_keeps_what_was_queued() {
        let (tx, mut rx) = chunk_queue(1);
        let (sw, rw) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        assert!(poll_send(&mut tx.send(chunk(0)), &sw).is_ready());
        let mut waiting = tx.send(chunk(1));
        assert!(poll_send(&mut waiting, &sw).is_pending());
        rx.close();
        assert_eq!(sw.count(), 1, "closing wakes the waiting sender");
        assert_eq!(poll_send(&mut waiting, &sw), Poll::Ready(Err(QueueClosed)));
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(0))));
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(None));
        drop(rx);
        assert_eq!(poll_send(&mut tx.send(chunk(2)), &sw), Poll::Ready(Err(QueueClosed)));
    }

    #[test]
    fn dropping_the_sender_ends_the_body_after_the_queued_chunks() {
        let (tx, mut rx) = chunk_queue(4);
        let (sw, rw) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        assert!(poll_send(&mut tx.send(chunk(0)), &sw).is_ready());
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(0))));
        assert!(poll_recv(&mut rx, &rw).is_pending());
        assert!(poll_send(&mut tx.send(chunk(1)), &sw).is_ready());
        drop(tx);
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(1))));
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(None));
    }

    #[test]
    fn a_send_future_dropped_while_waiting_queues_nothing() {
        let (tx, mut rx) = chunk_queue(1);
        let (sw, rw) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        assert!(poll_send(&mut tx.send(chunk(0)), &sw).is_ready());
        let mut abandoned = tx.send(chunk(1));
        assert!(poll_send(&mut abandoned, &sw).is_pending());
        drop(abandoned);
        drop(tx);
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(Some(chunk(0))));
        assert_eq!(poll_recv(&mut rx, &rw), Poll::Ready(None));
    }
}
