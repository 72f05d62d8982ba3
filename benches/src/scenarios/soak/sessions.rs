//! Stream sessions and their accounting: what each slot runs back to back (frame streams,
//! segment streams, subscribers) and the records whose equations the soak checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gateway_actors::http::HttpClients;
use gateway_actors::media::{MediaStats, VideoPublisher, VideoPublisherConfig};
use gateway_actors::tls::OrchestratorTrust;
use gateway_actors::trickle::{
    PublisherConfig, PublisherStats, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
};
use gateway_core::trickle::{SeqSpec, MIME_MPEGTS};
use gateway_media::{Rational, VideoFrame};
use gateway_testkit::trickle_server::ChannelTotals;
use tokio::time::Instant;

use super::schedule::{has_subscriber, is_segment_stream};
use super::{
    BITRATE, CHUNKS_PER_SEGMENT, CHUNK_BYTES, FINISH_BOUND, FPS, HEIGHT, STALL_TIMEOUT, SUBSCRIBER_BOUND,
    WIDTH,
};

/// The video's accounting equations that do not hold, each as a sentence: frames submitted =
/// frames in = encoded + dropped, dropped = the sum of the reasons, bytes encoded = published +
/// drained.
pub fn media_accounting(frames_submitted: u64, m: &MediaStats) -> Vec<String> {
    let mut out = Vec::new();
    if frames_submitted != m.frames_in {
        out.push(format!("{frames_submitted} frames submitted but {} counted in", m.frames_in));
    }
    if m.frames_in != m.frames_encoded + m.frames_dropped {
        out.push(format!(
            "frames in {} != encoded {} + dropped {}",
            m.frames_in, m.frames_encoded, m.frames_dropped
        ));
    }
    if m.frames_dropped != m.drops.total() {
        out.push(format!("frames dropped {} != the sum of the reasons {:?}", m.frames_dropped, m.drops));
    }
    if m.bytes_encoded != m.bytes_published + m.bytes_drained {
        out.push(format!(
            "bytes encoded {} != published {} + drained {}",
            m.bytes_encoded, m.bytes_published, m.bytes_drained
        ));
    }
    out
}

/// What a subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberRecord {
    /// Segments it started reading.
    pub segments: u64,
    /// Bytes it read.
    pub bytes: u64,
    /// Why it stopped with an error, if it did.
    pub error: Option<String>,
    /// Whether it was still running [`SUBSCRIBER_BOUND`] after its channel was deleted.
    pub hung: bool,
}

/// One session of one slot: its own channel, publisher and counts.
#[derive(Debug, Clone, Default)]
pub struct SessionRecord {
    /// The channel name (the session's id in reports).
    pub channel: String,
    /// Frame stream (`VideoPublisher`) or segment stream (bare `TricklePublisher`).
    pub segment_stream: bool,
    /// Frames the soak handed to `write_frame` and it accepted.
    pub frames_submitted: u64,
    /// The video pipeline's totals (frame streams).
    pub media: Option<MediaStats>,
    /// Bytes the soak wrote into segments (segment streams).
    pub bytes_written: u64,
    /// Bytes of segments whose `finish` succeeded (segment streams).
    pub bytes_delivered: u64,
    /// Bytes of segments that failed (segment streams).
    pub bytes_failed: u64,
    /// Segments that succeeded / failed (segment streams).
    pub segments_ok: u64,
    /// Segments that failed (segment streams).
    pub segments_failed: u64,
    /// The trickle publisher's counters (segment streams).
    pub publisher: Option<PublisherStats>,
    /// The server's totals for the channel (filled in at the end of the run).
    pub server: ChannelTotals,
    /// Why the session ended.
    pub end: String,
    /// Its subscriber, if it had one.
    pub subscriber: Option<SubscriberRecord>,
    /// Problems met while running (hangs, setup failures).
    pub errors: Vec<String>,
}

impl SessionRecord {
    /// Bytes the client says the server confirmed.
    pub fn bytes_confirmed(&self) -> u64 {
        match &self.media {
            Some(m) => m.bytes_published,
            None => self.bytes_delivered,
        }
    }

    /// Every accounting equation that does not hold, as a sentence naming the session.
    ///
    /// Frame streams: frames submitted = frames in (the queue's count) = frames encoded +
    /// frames dropped, frames dropped = the sum of the reasons, and bytes encoded = bytes
    /// published + bytes drained. Segment streams: bytes written = bytes delivered + bytes of
    /// failed segments = the publisher's bytes sent + bytes refused. Both: the server's bytes
    /// in completed segments = the client's confirmed bytes, the server received no more than
    /// was sent, a subscriber read no more than the server received, and nothing hung.
    pub fn problems(&self) -> Vec<String> {
        let id = &self.channel;
        let mut out: Vec<String> = self.errors.iter().map(|e| format!("{id}: {e}")).collect();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(format!("{id}: {what}"));
            }
        };
        let sent = match &self.media {
            Some(m) => {
                for what in media_accounting(self.frames_submitted, m) {
                    check(false, what);
                }
                m.bytes_encoded
            }
            None if self.segment_stream => {
                check(
                    self.bytes_written == self.bytes_delivered + self.bytes_failed,
                    format!(
                        "bytes written {} != delivered {} + failed {}",
                        self.bytes_written, self.bytes_delivered, self.bytes_failed
                    ),
                );
                if let Some(p) = &self.publisher {
                    check(
                        self.bytes_written == p.bytes_sent + p.bytes_failed,
                        format!(
                            "bytes written {} != publisher's sent {} + refused {}",
                            self.bytes_written, p.bytes_sent, p.bytes_failed
                        ),
                    );
                }
                self.bytes_written
            }
            None => {
                check(false, "no stats from the video publisher".into());
                0
            }
        };
        check(
            self.server.bytes_completed == self.bytes_confirmed(),
            format!(
                "server has {} bytes in completed segments, client confirmed {}",
                self.server.bytes_completed,
                self.bytes_confirmed()
            ),
        );
        check(
            self.server.bytes_received <= sent,
            format!("server received {} bytes, client produced only {sent}", self.server.bytes_received),
        );
        if let Some(s) = &self.subscriber {
            check(
                !s.hung,
                format!("subscriber still running {SUBSCRIBER_BOUND:?} after the channel was deleted"),
            );
            check(
                s.bytes <= self.server.bytes_received,
                format!("subscriber read {} bytes, server received {}", s.bytes, self.server.bytes_received),
            );
        }
        out
    }
}

/// What every session task shares.
pub(super) struct Ctx {
    pub(super) base: String,
    pub(super) admin: String,
    pub(super) control: reqwest::Client,
    pub(super) clip: Vec<VideoFrame>,
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    /// The channel each slot's session is using now.
    pub(super) current: Mutex<Vec<Option<String>>>,
    /// Per slot, until when (ms from start) its subscriber reads slowly.
    pub(super) slow_until_ms: Vec<AtomicU64>,
}

impl Ctx {
    fn set_current(&self, slot: usize, channel: Option<String>) {
        self.current.lock().unwrap_or_else(|e| e.into_inner())[slot] = channel;
    }

    pub(super) fn current(&self, slot: usize) -> Option<String> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())[slot].clone()
    }

    fn reading_slowly(&self, slot: usize) -> bool {
        (self.started.elapsed().as_millis() as u64) < self.slow_until_ms[slot].load(Ordering::Relaxed)
    }
}

/// Runs slot `slot`'s sessions until the deadline.
pub(super) async fn run_slot(ctx: Arc<Ctx>, slot: usize) -> Vec<SessionRecord> {
    let mut records = Vec::new();
    let mut n = 0;
    while Instant::now() + Duration::from_secs(1) < ctx.deadline {
        let channel = format!("soak-{}-{slot}-{n}", std::process::id());
        n += 1;
        let record = run_session(&ctx, slot, channel).await;
        let setup_failed = !record.errors.is_empty() && record.media.is_none() && record.publisher.is_none();
        records.push(record);
        if setup_failed {
            // Do not spin on a broken setup.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    records
}

async fn run_session(ctx: &Arc<Ctx>, slot: usize, channel: String) -> SessionRecord {
    let mut rec = SessionRecord {
        channel: channel.clone(),
        segment_stream: is_segment_stream(slot),
        ..Default::default()
    };
    let url = format!("{}{channel}", ctx.base);
    // The channel exists before anyone subscribes (a GET on a missing channel is the end).
    let created = ctx.control.post(&url).header("Expect-Content", MIME_MPEGTS).send().await;
    if !matches!(&created, Ok(r) if r.status().is_success()) {
        rec.errors.push(format!("cannot create the channel: {created:?}"));
        return rec;
    }
    let (http, reader) = match HttpClients::new(OrchestratorTrust::Insecure)
        .and_then(|h| Ok((h.orchestrator(&url)?, h.segment_reader())))
    {
        Ok(clients) => clients,
        Err(e) => {
            rec.errors.push(format!("no HTTP client: {e}"));
            return rec;
        }
    };
    let subscriber =
        has_subscriber(slot).then(|| tokio::spawn(subscribe(ctx.clone(), slot, reader, url.clone())));
    ctx.set_current(slot, Some(channel.clone()));
    let config = PublisherConfig { stall_timeout: STALL_TIMEOUT, ..Default::default() };
    let trickle = TricklePublisher::start(http, &url, config).await;
    if rec.segment_stream {
        segment_session(ctx, &mut rec, trickle).await;
    } else {
        frame_session(ctx, &mut rec, trickle).await;
    }
    ctx.set_current(slot, None);
    // End of the job: delete the channel (it may already be gone), which ends the subscriber.
    let _ = tokio::time::timeout(Duration::from_secs(10), ctx.control.delete(&url).send()).await;
    if let Some(task) = subscriber {
        let abort = task.abort_handle();
        rec.subscriber = Some(match tokio::time::timeout(SUBSCRIBER_BOUND, task).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => SubscriberRecord { error: Some(format!("panicked: {e}")), ..Default::default() },
            Err(_) => {
                abort.abort();
                SubscriberRecord { hung: true, ..Default::default() }
            }
        });
    }
    rec
}

async fn frame_session(ctx: &Ctx, rec: &mut SessionRecord, trickle: TricklePublisher) {
    let mut config = VideoPublisherConfig::h264(WIDTH, HEIGHT);
    config.frame_rate = Rational::new(FPS, 1);
    config.bitrate_bps = BITRATE;
    let vp = match VideoPublisher::start(trickle, config) {
        Ok(vp) => vp,
        Err(e) => {
            rec.errors.push(format!("video publisher did not start: {e}"));
            return;
        }
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / FPS);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut n: u64 = 0;
    rec.end = "deadline".into();
    loop {
        ticker.tick().await;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let mut frame = ctx.clip[(n % ctx.clip.len() as u64) as usize].clone();
        if let Err(e) = frame.set_pts(n as i64, Rational::new(1, FPS)) {
            rec.errors.push(format!("bad pts: {e}"));
            break;
        }
        n += 1;
        match vp.write_frame(frame) {
            Ok(()) => rec.frames_submitted += 1,
            Err(e) => {
                rec.end = e.to_string();
                break;
            }
        }
        if n.is_multiple_of(u64::from(FPS)) {
            if let Ok(MediaStats { terminal_error: Some(t), .. }) = vp.stats().await {
                rec.end = t;
                break;
            }
        }
    }
    match tokio::time::timeout(FINISH_BOUND, vp.finish()).await {
        Ok(Ok(stats)) => rec.media = Some(stats),
        Ok(Err(e)) => rec.errors.push(format!("finish failed: {e}")),
        Err(_) => rec.errors.push(format!("finish took longer than {FINISH_BOUND:?}")),
    }
}

async fn segment_session(ctx: &Ctx, rec: &mut SessionRecord, mut publisher: TricklePublisher) {
    let payload = Bytes::from((0..CHUNK_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let period = Duration::from_secs(1);
    let mut next = Instant::now();
    rec.end = "deadline".into();
    'segments: loop {
        tokio::time::sleep_until(next).await;
        next += period;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let mut sink = match publisher.next_segment() {
            Ok(s) => s,
            Err(e) => {
                rec.end = e.to_string();
                break;
            }
        };
        let mut bytes = 0;
        for w in 0..CHUNKS_PER_SEGMENT {
            tokio::time::sleep_until(next - period + period / CHUNKS_PER_SEGMENT * w).await;
            rec.bytes_written += CHUNK_BYTES as u64;
            bytes += CHUNK_BYTES as u64;
            if sink.write(payload.clone()).await.is_err() {
                rec.bytes_failed += bytes;
                rec.segments_failed += 1;
                drop(sink);
                continue 'segments;
            }
        }
        match tokio::time::timeout(FINISH_BOUND, sink.finish()).await {
            Ok(Ok(())) => {
                rec.bytes_delivered += bytes;
                rec.segments_ok += 1;
            }
            Ok(Err(_)) => {
                rec.bytes_failed += bytes;
                rec.segments_failed += 1;
            }
            Err(_) => {
                rec.errors.push(format!("segment finish took longer than {FINISH_BOUND:?}"));
                rec.bytes_failed += bytes;
                rec.segments_failed += 1;
            }
        }
    }
    // Let the DELETEs of failed segments go out, then read the counters.
    publisher.settled().await;
    rec.publisher = Some(publisher.stats());
    if tokio::time::timeout(FINISH_BOUND, publisher.close()).await.is_err() {
        rec.errors.push(format!("close took longer than {FINISH_BOUND:?}"));
    }
}

async fn subscribe(ctx: Arc<Ctx>, slot: usize, http: SegmentGetClient, url: String) -> SubscriberRecord {
    let mut rec = SubscriberRecord::default();
    let config = SubscriberConfig { start: SeqSpec::At(0), ..Default::default() };
    let mut sub = TrickleSubscriber::new(http, &url, config);
    loop {
        match sub.next_segment().await {
            Ok(Some(mut seg)) => {
                rec.segments += 1;
                while let Ok(Some(chunk)) = seg.chunk().await {
                    rec.bytes += chunk.len() as u64;
                    if ctx.reading_slowly(slot) {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                rec.error = Some(e.to_string().chars().take(80).collect());
                break;
            }
        }
    }
    rec
}
