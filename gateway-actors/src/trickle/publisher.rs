//! The trickle publisher: one chunked `POST {channel}/{seq}` per segment, the next one always
//! preconnected, and a stall timeout instead of request timeouts.
//!
//! Rules (go-livepeer's publisher and the Python SDK, hardened):
//! - The start index comes from `GET {channel}/next`, falling back to 0 on servers without it;
//!   the first segment carries `Lp-Trickle-Reset` so subscribers stuck on a previous publisher's
//!   half-written segment are released.
//! - Every chunk goes to the network as soon as it is written (reqwest streams chunked bodies
//!   without coalescing).
//! - A write that cannot be handed to the POST within the stall timeout fails the segment: the
//!   POST is aborted, `DELETE {channel}/{seq}` releases its readers, and the caller gets a
//!   [`TrickleError::Segment`] while the publisher stays usable for the next segment. Any other
//!   non-terminal failure of a segment (a dropped connection, no answer) deletes it too, since
//!   the server may keep it open; [`TricklePublisher::settled`] waits for those DELETEs.
//! - A POST that failed before it was handed any body byte is retried once, with every byte;
//!   after that, never.
//! - 404 is terminal (the channel is gone); so are 3 failed segments in a row.
//! - `close` deletes the channel, which ends the stream for every subscriber, and only then
//!   drops the preconnected POST (see [`TricklePublisher::close`]).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use futures_util::task::AtomicWaker;
use gateway_core::error::{SegmentFailure, TrickleError};
use gateway_core::trickle::{
    self, classify_post, next_url, parse_next_body, segment_url, SeqSpec, TrickleHeaders, HEADER_RESET,
    MAX_CONSECUTIVE_FAILURES, MIME_MPEGTS, SEGMENT_WRITE_STALL_TIMEOUT,
};
use tokio::task::JoinHandle;

use super::chunk_queue::{chunk_queue, ChunkReceiver, ChunkSender};
use crate::http::{read_body_capped, StreamingPost, JSON_CALL_TIMEOUT};

/// Chunks buffered between a writer and its POST before back-pressure starts.
const CHUNK_QUEUE: usize = 16;

/// How a publisher behaves.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// `Content-Type` of every segment.
    pub mime: String,
    /// A write that makes no progress for this long fails its segment.
    pub stall_timeout: Duration,
    /// Failed segments in a row before the publisher gives up.
    pub max_consecutive_failures: u32,
    /// Start at this index instead of asking the server.
    pub start_seq: Option<u64>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            mime: MIME_MPEGTS.to_owned(),
            stall_timeout: SEGMENT_WRITE_STALL_TIMEOUT,
            max_consecutive_failures: MAX_CONSECUTIVE_FAILURES,
            start_seq: None,
        }
    }
}

/// Counters of one publisher; every byte a caller wrote is either `bytes_sent` or
/// `bytes_failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Segments handed out.
    pub segments_started: u64,
    /// Segments the server confirmed.
    pub segments_completed: u64,
    /// Segments that failed (stall, error status, transport error).
    pub segments_failed: u64,
    /// Bytes accepted into segments that completed or are in flight.
    pub bytes_sent: u64,
    /// Bytes refused because their segment had failed.
    pub bytes_failed: u64,
    /// POSTs retried because no body byte had been consumed.
    pub post_retries: u64,
    /// Writes that hit the stall timeout.
    pub stall_timeouts: u64,
    /// Failed segments in a row right now.
    pub consecutive_failures: u32,
}

#[derive(Debug, Default)]
struct Shared {
    segments_started: AtomicU64,
    segments_completed: AtomicU64,
    segments_failed: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_failed: AtomicU64,
    post_retries: AtomicU64,
    stall_timeouts: AtomicU64,
    consecutive_failures: AtomicU32,
    closed: AtomicBool,
    terminal: Mutex<Option<TrickleError>>,
    /// DELETEs of abandoned segments still being sent (see [`TricklePublisher::settled`]).
    deletes: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn terminal(&self) -> Option<TrickleError> {
        self.terminal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record_outcome(&self, result: &Result<(), TrickleError>, max_failures: u32) {
        match result {
            Ok(()) => {
                self.segments_completed.fetch_add(1, Ordering::Relaxed);
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
            Err(e) => {
                self.segments_failed.fetch_add(1, Ordering::Relaxed);
                let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let terminal = if e.is_terminal() {
                    Some(e.clone())
                } else if n >= max_failures {
                    Some(TrickleError::Terminal { consecutive_failures: n })
                } else {
                    None
                };
                if let Some(t) = terminal {
                    self.terminal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(t);
                }
            }
        }
    }
}

/// A POST that is open (or being opened) for one segment index.
struct PendingPost {
    seq: u64,
    tx: ChunkSender,
    task: JoinHandle<Result<(), TrickleError>>,
}

/// Publishes segments to one trickle channel.
pub struct TricklePublisher {
    /// The runtime it was started on: every POST and DELETE of the channel runs there,
    /// whichever thread or actor drives the publisher.
    runtime: tokio::runtime::Handle,
    /// For `/next` and DELETEs.
    http: reqwest::Client,
    /// For segment POSTs, the hot path (see [`StreamingPost`]).
    transport: Arc<dyn StreamingPost>,
    url: String,
    config: PublisherConfig,
    next_seq: u64,
    reset_pending: bool,
    pending: Option<PendingPost>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TricklePublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TricklePublisher")
            .field("url", &gateway_core::error::redact_url(&self.url))
            .field("next_seq", &self.next_seq)
            .finish()
    }
}

impl TricklePublisher {
    /// Connects to `channel_url`: resolves the start index and preconnects the first POST.
    pub async fn start(
        http: reqwest::Client,
        channel_url: &str,
        config: PublisherConfig,
    ) -> TricklePublisher {
        let transport = Arc::new(http.clone());
        Self::with_transport(http, transport, channel_url, config).await
    }

    /// Like [`TricklePublisher::start`], with segment POSTs sent through `transport` (another
    /// HTTP stack, e.g. for a comparison benchmark).
    pub async fn with_transport(
        http: reqwest::Client,
        transport: Arc<dyn StreamingPost>,
        channel_url: &str,
        config: PublisherConfig,
    ) -> TricklePublisher {
        let start = match config.start_seq {
            Some(s) => s,
            None => fetch_next(&http, channel_url).await.unwrap_or(0),
        };
        let mut p = TricklePublisher {
            runtime: tokio::runtime::Handle::current(),
            http,
            transport,
            url: channel_url.trim_end_matches('/').to_owned(),
            config,
            next_seq: start,
            reset_pending: true,
            pending: None,
            shared: Arc::default(),
        };
        p.preconnect();
        p
    }

    /// The channel URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The index the next segment will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Counters.
    pub fn stats(&self) -> PublisherStats {
        let s = &self.shared;
        PublisherStats {
            segments_started: s.segments_started.load(Ordering::Relaxed),
            segments_completed: s.segments_completed.load(Ordering::Relaxed),
            segments_failed: s.segments_failed.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            bytes_failed: s.bytes_failed.load(Ordering::Relaxed),
            post_retries: s.post_retries.load(Ordering::Relaxed),
            stall_timeouts: s.stall_timeouts.load(Ordering::Relaxed),
            consecutive_failures: s.consecutive_failures.load(Ordering::Relaxed),
        }
    }

    /// Waits until the DELETEs of failed or abandoned segments have been sent (each bounded by
    /// the JSON call timeout). Call it before stopping the runtime the publisher runs on: a
    /// DELETE lost there leaves the server holding the segment open and its readers blocked.
    pub fn settled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            let deletes = std::mem::take(&mut *shared.deletes.lock().unwrap_or_else(|e| e.into_inner()));
            for d in deletes {
                let _ = d.await;
            }
        }
    }

    /// The terminal error, once the publisher has given up.
    pub fn terminal_error(&self) -> Option<TrickleError> {
        self.shared.terminal()
    }

    /// Opens the next segment (using the preconnected POST) and preconnects the one after.
    pub fn next_segment(&mut self) -> Result<SegmentSink, TrickleError> {
        if let Some(t) = self.shared.terminal() {
            return Err(t);
        }
        if self.shared.closed.load(Ordering::Relaxed) {
            return Err(TrickleError::EndOfStream);
        }
        let post = match self.pending.take() {
            Some(p) if p.seq == self.next_seq => p,
            other => {
                if let Some(p) = other {
                    p.task.abort();
                }
                self.open_post(self.next_seq)
            }
        };
        self.next_seq += 1;
        self.shared.segments_started.fetch_add(1, Ordering::Relaxed);
        self.preconnect();
        Ok(SegmentSink {
            runtime: self.runtime.clone(),
            seq: post.seq,
            tx: Some(post.tx),
            task: Some(post.task),
            stall_timeout: self.config.stall_timeout,
            url: segment_url(&self.url, SeqSpec::At(post.seq)),
            http: self.http.clone(),
            failed: None,
            bytes: 0,
            shared: self.shared.clone(),
            max_failures: self.config.max_consecutive_failures,
        })
    }

    /// Starts over after a failure (the writer was restarted): the preconnected POST is
    /// re-opened carrying `Lp-Trickle-Reset`, so subscribers stuck on the abandoned segment are
    /// released by the server.
    pub fn restart(&mut self) {
        if let Some(p) = self.pending.take() {
            p.task.abort();
        }
        self.reset_pending = true;
        self.preconnect();
    }

    /// Publishes one whole segment.
    pub async fn write_segment(&mut self, data: Bytes) -> Result<u64, TrickleError> {
        let mut sink = self.next_segment()?;
        let seq = sink.seq();
        sink.write(data).await?;
        sink.finish().await?;
        Ok(seq)
    }

    /// Ends the stream: deletes the channel, then drops the preconnected POST.
    ///
    /// The order matters (go-livepeer's publisher deletes first too): dropping the preconnect
    /// ends its body, and a server that sees that end before the DELETE completes it as an
    /// empty segment, so subscribers would get a trailing 0-byte segment and then a 404
    /// instead of a clean end. Deleted first, the server answers the preconnect itself (end of
    /// stream) and its readers see the channel closed.
    pub async fn close(mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(JSON_CALL_TIMEOUT, self.http.delete(&self.url).send()).await;
        if let Some(p) = self.pending.take() {
            p.task.abort();
            // A preconnected POST that left after the DELETE would, on a server that creates
            // channels on POST, bring the channel back: once it is surely gone, delete again
            // (a 404 then is the normal answer).
            if p.task.await.is_err() {
                let _ = tokio::time::timeout(JSON_CALL_TIMEOUT, self.http.delete(&self.url).send()).await;
            }
        }
    }

    /// Closes the channel without holding the caller up: [`close`](Self::close) runs on the
    /// publisher's runtime, given up after `within` (a dead server must not hold a stream that
    /// moved to another channel, nor leave a task behind for long).
    pub fn close_in_background(self, within: Duration) {
        let runtime = self.runtime.clone();
        runtime.spawn(async move {
            let _ = tokio::time::timeout(within, self.close()).await;
        });
    }

    fn preconnect(&mut self) {
        if self.shared.terminal().is_some() {
            return;
        }
        let post = self.open_post(self.next_seq);
        self.pending = Some(post);
    }

    fn open_post(&mut self, seq: u64) -> PendingPost {
        let (tx, rx) = chunk_queue(CHUNK_QUEUE);
        let reset = std::mem::take(&mut self.reset_pending);
        let task = self.runtime.spawn(run_post(
            self.transport.clone(),
            segment_url(&self.url, SeqSpec::At(seq)),
            seq,
            self.config.mime.clone(),
            reset,
            rx,
            self.shared.clone(),
        ));
        PendingPost { seq, tx, task }
    }
}

impl Drop for TricklePublisher {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.task.abort();
        }
    }
}

/// Asks the server for the next write index.
async fn fetch_next(http: &reqwest::Client, channel_url: &str) -> Option<u64> {
    let resp =
        tokio::time::timeout(JSON_CALL_TIMEOUT, http.get(next_url(channel_url)).send()).await.ok()?.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = read_body_capped(resp, 64).await.ok()?;
    parse_next_body(&body).ok()
}

/// Runs the POST of one segment: streams whatever the sink sends, retries once if the request
/// failed before it was handed a byte.
///
/// The attempts take chunks from the sink's queue in turn, each through a gate that closes the
/// moment it is answered. A server may answer early (a `5xx` before the body) and keep the
/// connection open, so an answered request can still be polled for its body; without the gate
/// it would take chunks meant for the retry, and the retry would complete a short segment that
/// the client counts as whole. Gate and queue share one lock that no poll holds across an await.
async fn run_post(
    transport: Arc<dyn StreamingPost>,
    url: String,
    seq: u64,
    mime: String,
    reset: bool,
    rx: ChunkReceiver,
    shared: Arc<Shared>,
) -> Result<(), TrickleError> {
    let queue = Arc::new(Mutex::new(rx));
    // However this ends, the sink's next write fails at once instead of filling the queue.
    let _close = CloseOnExit(queue.clone());
    let seq_i = seq as i64;
    for attempt in 0..2 {
        let gate = Arc::new(AtomicBool::new(true));
        let gate_waker = Arc::new(AtomicWaker::new());
        let handed = Arc::new(AtomicU64::new(0));
        let body = {
            let (queue, gate, gate_waker, handed) =
                (queue.clone(), gate.clone(), gate_waker.clone(), handed.clone());
            stream::poll_fn(move |cx| {
                gate_waker.register(cx.waker());
                let mut rx = queue.lock().unwrap_or_else(|e| e.into_inner());
                if !gate.load(Ordering::Acquire) {
                    return Poll::Ready(None);
                }
                rx.poll_recv(cx).map(|chunk| {
                    let chunk = chunk?;
                    handed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Some(Ok::<Bytes, std::io::Error>(chunk))
                })
            })
        };
        let mut headers = vec![("content-type", mime.as_str())];
        if reset {
            headers.push((HEADER_RESET, "1"));
        }
        let outcome = transport.post_stream_classified(&url, &headers, Box::pin(body)).await;
        let handed_over = {
            // Under the queue's lock: no chunk is being taken, and none will be after this.
            let _queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            gate.store(false, Ordering::Release);
            handed.load(Ordering::Relaxed) > 0
        };
        // An answered request still polling for its body ends it now (its connection is then
        // free again) instead of waiting on the queue, whose wake-ups go to the next attempt.
        gate_waker.wake();
        match outcome {
            Ok(answer) => {
                let trickle_headers = TrickleHeaders::parse(|n| answer.header(n)).unwrap_or_default();
                if attempt == 0 && answer.status >= 500 && !handed_over {
                    shared.post_retries.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                return classify_post(seq_i, answer.status, &trickle_headers, &url, &answer.body);
            }
            Err(failed) if attempt == 0 && !handed_over => {
                tracing::debug!(seq, error = %failed.reason, "trickle POST failed before any body byte; retrying once");
                shared.post_retries.fetch_add(1, Ordering::Relaxed);
            }
            Err(failed) => {
                return Err(TrickleError::Segment { seq: seq_i, reason: failed.reason, failure: failed.kind })
            }
        }
    }
    Err(TrickleError::Segment {
        seq: seq_i,
        reason: "POST failed twice before sending any byte".into(),
        failure: SegmentFailure::Other,
    })
}

/// Closes a segment's chunk queue when its POST task ends, even while an answered request
/// still holds a reference to it.
struct CloseOnExit(Arc<Mutex<ChunkReceiver>>);

impl Drop for CloseOnExit {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).close();
    }
}

/// One segment being written. Call [`SegmentSink::finish`] to complete it; dropping it
/// unfinished abandons the segment (the POST is aborted and the segment deleted), so a
/// half-written segment never looks complete.
pub struct SegmentSink {
    runtime: tokio::runtime::Handle,
    seq: u64,
    tx: Option<ChunkSender>,
    task: Option<JoinHandle<Result<(), TrickleError>>>,
    stall_timeout: Duration,
    url: String,
    http: reqwest::Client,
    failed: Option<TrickleError>,
    bytes: u64,
    shared: Arc<Shared>,
    max_failures: u32,
}

impl std::fmt::Debug for SegmentSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentSink").field("seq", &self.seq).field("bytes", &self.bytes).finish()
    }
}

impl SegmentSink {
    /// The segment index.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Whether the segment has failed (later writes are refused and counted as failed bytes).
    pub fn has_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Hands a chunk to the network; fails the segment if the body's queue stays full for the
    /// stall timeout (the server took nothing in that time). A server that stops reading part
    /// way is reported within two stall timeouts of its last read (see `chunk_queue`).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), TrickleError> {
        if let Some(e) = &self.failed {
            self.shared.bytes_failed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            return Err(e.clone());
        }
        if chunk.is_empty() {
            return Ok(());
        }
        let len = chunk.len() as u64;
        let Some(tx) = &self.tx else {
            return Err(self.fail_now("segment already finished".into(), SegmentFailure::Other));
        };
        match tokio::time::timeout(self.stall_timeout, tx.send(chunk)).await {
            Ok(Ok(())) => {
                self.bytes += len;
                self.shared.bytes_sent.fetch_add(len, Ordering::Relaxed);
                Ok(())
            }
            Ok(Err(_)) => {
                // The POST ended before the body did: its outcome says why.
                self.shared.bytes_failed.fetch_add(len, Ordering::Relaxed);
                let err = match self.task.take() {
                    Some(task) => match task.await {
                        Ok(Err(e)) => e,
                        // The POST ended without an error of its own while the body went on:
                        // the server hung up on it.
                        _ => TrickleError::Segment {
                            seq: self.seq as i64,
                            reason: "server ended the segment early".into(),
                            failure: SegmentFailure::Reset,
                        },
                    },
                    None => TrickleError::Segment {
                        seq: self.seq as i64,
                        reason: "segment closed".into(),
                        failure: SegmentFailure::Other,
                    },
                };
                Err(self.fail_with(err))
            }
            Err(_) => {
                self.shared.bytes_failed.fetch_add(len, Ordering::Relaxed);
                self.shared.stall_timeouts.fetch_add(1, Ordering::Relaxed);
                let reason = format!("stalled: no progress for {:?}", self.stall_timeout);
                Err(self.fail_now(reason, SegmentFailure::Stalled))
            }
        }
    }

    /// Ends the segment and waits for the server's answer (bounded by the stall timeout).
    pub async fn finish(mut self) -> Result<(), TrickleError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        self.tx = None; // end of body
        let Some(task) = self.task.take() else {
            return Err(TrickleError::Segment {
                seq: self.seq as i64,
                reason: "segment already finished".into(),
                failure: SegmentFailure::Other,
            });
        };
        let abort = task.abort_handle();
        let result = match tokio::time::timeout(self.stall_timeout, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(TrickleError::Segment {
                seq: self.seq as i64,
                reason: "POST task ended unexpectedly".into(),
                failure: SegmentFailure::Other,
            }),
            Err(_) => {
                abort.abort();
                self.shared.stall_timeouts.fetch_add(1, Ordering::Relaxed);
                Err(TrickleError::Segment {
                    seq: self.seq as i64,
                    reason: "no answer after the segment ended".into(),
                    failure: SegmentFailure::Stalled,
                })
            }
        };
        if matches!(&result, Err(e) if !e.is_terminal()) {
            // The server may keep a broken segment open (dropped connection, no answer):
            // release its readers.
            self.delete_segment();
        }
        self.shared.record_outcome(&result, self.max_failures);
        result
    }

    fn fail_now(&mut self, reason: String, failure: SegmentFailure) -> TrickleError {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.tx = None;
        self.fail_with(TrickleError::Segment { seq: self.seq as i64, reason, failure })
    }

    fn fail_with(&mut self, err: TrickleError) -> TrickleError {
        self.tx = None;
        if !err.is_terminal() {
            // Stalled, or the POST ended early (e.g. a dropped connection): the server may
            // keep the segment open, so release its readers.
            self.delete_segment();
        }
        let result = Err(err.clone());
        self.shared.record_outcome(&result, self.max_failures);
        self.failed = Some(err.clone());
        err
    }

    /// Releases readers blocked on an abandoned segment (the server keeps it open otherwise).
    fn delete_segment(&self) {
        let http = self.http.clone();
        let url = self.url.clone();
        let task = self.runtime.spawn(async move {
            let _ = tokio::time::timeout(JSON_CALL_TIMEOUT, http.delete(url).send()).await;
        });
        let mut deletes = self.shared.deletes.lock().unwrap_or_else(|e| e.into_inner());
        deletes.retain(|d| !d.is_finished());
        deletes.push(task);
    }
}

impl Drop for SegmentSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Unfinished: abort instead of ending the body, so the segment is not mistaken for
            // a complete one, then release its readers.
            task.abort();
            if self.failed.is_none() {
                let result = Err(TrickleError::Segment {
                    seq: self.seq as i64,
                    reason: "abandoned".into(),
                    failure: SegmentFailure::Other,
                });
                self.shared.record_outcome(&result, self.max_failures);
            }
            self.delete_segment();
        }
    }
}

/// Re-exported for callers that build URLs.
pub use trickle::channel_url;
