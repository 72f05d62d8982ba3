//! In-process publishers and subscribers, which read and write channels without HTTP like
//! go-livepeer's local pub/sub.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gateway_core::trickle::SeqSpec;

use super::config::TrickleServerError;
use super::store::{Channel, ChunkRead, Segment};
use super::Counters;

/// Reads a channel in process, segment after segment, like an HTTP subscriber: behind the
/// window it jumps to the live edge, ahead of it it waits.
pub struct LocalSubscriber {
    pub(super) channel: Arc<Channel>,
    pub(super) counters: Arc<Counters>,
    pub(super) next: SeqSpec,
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
    pub(super) channel: Arc<Channel>,
    pub(super) counters: Arc<Counters>,
    /// The last index this publisher began, so two segments begun before either has data do
    /// not land on the same index.
    pub(super) last: Option<u64>,
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
