//! The `SegmentReader`: one trickle subscriber fanned out to any number of consumers, so
//! several readers of a job's output (bytes to a file, frames to a decoder, stats) cost one
//! GET per segment.
//!
//! A task owns the [`TrickleSubscriber`] and broadcasts [`OutputEvent`]s. The broadcast buffer
//! is bounded: a consumer that falls more than `capacity` events behind is told how many it
//! missed (`Lagged`) and continues from the oldest event still buffered, so one slow consumer
//! never slows the others or grows memory.

use bytes::Bytes;
use gateway_core::error::TrickleError;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::trickle::TrickleSubscriber;

/// Events buffered per consumer before it lags.
pub(crate) const DEFAULT_FANOUT_CAPACITY: usize = 1024;

/// What consumers receive, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// A segment begins.
    SegmentStart {
        /// Its index.
        seq: i64,
    },
    /// Bytes of the current segment.
    Chunk(Bytes),
    /// The current segment is complete.
    SegmentEnd {
        /// Its index.
        seq: i64,
    },
    /// The stream ended (`None`) or failed (the reason).
    End(Option<String>),
}

/// Reads a channel once and fans it out.
#[derive(Debug)]
pub struct SegmentReader {
    tx: broadcast::Sender<OutputEvent>,
    task: JoinHandle<()>,
}

impl SegmentReader {
    /// Starts reading with `subscriber`. Subscribe before the first segment arrives to see it.
    pub fn start(mut subscriber: TrickleSubscriber, capacity: usize) -> SegmentReader {
        let (tx, _) = broadcast::channel(capacity.max(1));
        let out = tx.clone();
        let task = tokio::spawn(async move {
            let end = loop {
                match subscriber.next_segment().await {
                    Ok(Some(mut segment)) => {
                        let seq = segment.seq();
                        let _ = out.send(OutputEvent::SegmentStart { seq });
                        loop {
                            match segment.chunk().await {
                                Ok(Some(c)) => {
                                    let _ = out.send(OutputEvent::Chunk(c));
                                }
                                Ok(None) => break,
                                // A broken segment ends here; the next one is read as usual.
                                Err(e) => {
                                    tracing::debug!(error = %e, "output segment cut short");
                                    break;
                                }
                            }
                        }
                        let _ = out.send(OutputEvent::SegmentEnd { seq });
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(error_text(&e)),
                }
            };
            let _ = out.send(OutputEvent::End(end));
        });
        SegmentReader { tx, task }
    }

    /// A new consumer; it sees events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<OutputEvent> {
        self.tx.subscribe()
    }

    /// Stops reading.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for SegmentReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error_text(e: &TrickleError) -> String {
    e.to_string()
}
