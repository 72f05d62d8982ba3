//! One slot of the swap soak: live streams back to back, each an LV2V or BYOC `LiveStream`
//! with swaps on, the test pattern written at live pace and an output reader following the
//! stream; each session runs for a seeded length, is stopped, and leaves a [`SwapSession`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway_actors::live::{LiveJobRequest, LiveStream, LiveStreamStatus, SwapConfig};
use gateway_actors::media::{MediaStats, VideoPublisherConfig};
use gateway_actors::{ByocJobRequest, Gateway, Lv2vRequest};
use gateway_core::trickle::SeqSpec;
use gateway_media::{Rational, TestPattern};
use tokio::time::Instant;

use super::super::SplitMix64;
use super::{FINISH_BOUND, SESSION_MAX, SESSION_MIN};
use crate::scenarios::soak::{BITRATE, FPS, HEIGHT, WIDTH};

/// What a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobKind {
    /// Live video-to-video.
    Lv2v,
    /// A BYOC stream with video in and out.
    Byoc,
}

impl JobKind {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            JobKind::Lv2v => "lv2v",
            JobKind::Byoc => "byoc",
        }
    }
}

/// One session: how it ran and what the stream reported when stopped.
#[derive(Debug, Clone)]
pub struct SwapSession {
    /// `slot/n kind`, the session's name in every message.
    pub id: String,
    /// The job kind.
    pub kind: JobKind,
    /// Frames `write_frame` accepted.
    pub frames_submitted: u64,
    /// Why the writer stopped early (`write_frame` refused), if it did.
    pub refused: Option<String>,
    /// Output access units the reader got.
    pub output_units: u64,
    /// Of those, first ones after a swap.
    pub discontinuities: u64,
    /// The stream's status when stopped (swaps, payments, how it ended); `None` if it never
    /// started.
    pub status: Option<LiveStreamStatus>,
    /// The video's totals when stopped.
    pub media: Option<MediaStats>,
    /// Problems met while running (start or stop failures, hangs).
    pub errors: Vec<String>,
}

/// What every slot shares.
pub(super) struct SlotCtx {
    pub(super) gateway: Gateway,
    pub(super) seed: u64,
    pub(super) deadline: Instant,
}

/// The kind and length of session `n` of `slot`: a pure function of the seed.
pub fn session_plan(seed: u64, slot: usize, n: usize) -> (JobKind, Duration) {
    let mut rng = SplitMix64::new(seed ^ ((slot as u64) << 32) ^ n as u64 ^ 0x5E55_1000);
    let kind = if (slot + n).is_multiple_of(2) { JobKind::Lv2v } else { JobKind::Byoc };
    let ms = rng.range(SESSION_MIN.as_millis() as u64, SESSION_MAX.as_millis() as u64 + 1);
    (kind, Duration::from_millis(ms))
}

/// Runs sessions back to back in `slot` until the deadline.
pub(super) async fn run_slot(ctx: Arc<SlotCtx>, slot: usize) -> Vec<SwapSession> {
    let mut out = Vec::new();
    for n in 0.. {
        let (kind, length) = session_plan(ctx.seed, slot, n);
        let left = ctx.deadline.saturating_duration_since(Instant::now());
        if left < SESSION_MIN / 2 {
            break;
        }
        let id = format!("{slot}/{n} {}", kind.name());
        out.push(run_session(&ctx.gateway, id, kind, length.min(left)).await);
    }
    out
}

fn request(kind: JobKind) -> LiveJobRequest {
    match kind {
        JobKind::Lv2v => LiveJobRequest::Lv2v(Lv2vRequest::default()),
        JobKind::Byoc => {
            let mut r = ByocJobRequest::new(gateway_testkit::workers::TEXT_REVERSAL);
            r.enable_video_ingress = true;
            r.enable_video_egress = true;
            LiveJobRequest::Byoc(r)
        }
    }
}

async fn run_session(gateway: &Gateway, id: String, kind: JobKind, length: Duration) -> SwapSession {
    let mut rec = SwapSession {
        id,
        kind,
        frames_submitted: 0,
        refused: None,
        output_units: 0,
        discontinuities: 0,
        status: None,
        media: None,
        errors: Vec::new(),
    };
    let mut video = VideoPublisherConfig::h264(WIDTH, HEIGHT);
    video.frame_rate = Rational::new(FPS, 1);
    video.bitrate_bps = BITRATE;
    let started = tokio::time::timeout(
        FINISH_BOUND,
        gateway.start_live_stream(request(kind), Some(video), SwapConfig::default()),
    )
    .await;
    let stream = match started {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            rec.errors.push(format!("did not start: {e}"));
            return rec;
        }
        Err(_) => {
            rec.errors.push(format!("start took longer than {FINISH_BOUND:?}"));
            return rec;
        }
    };
    let (units, discontinuities) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let reader = spawn_reader(&stream, units.clone(), discontinuities.clone());
    if let Err(e) = write_for(&stream, length, &mut rec).await {
        rec.errors.push(e);
    }
    match tokio::time::timeout(FINISH_BOUND, stream.stop()).await {
        Ok(report) => {
            rec.status = Some(report.status);
            rec.media = report.media;
        }
        Err(_) => rec.errors.push(format!("stop took longer than {FINISH_BOUND:?}")),
    }
    // The reader ends with the stream; one that does not is a hang.
    let abort = reader.abort_handle();
    if tokio::time::timeout(Duration::from_secs(10), reader).await.is_err() {
        abort.abort();
        rec.errors.push("the output reader was still running 10 s after the stop".into());
    }
    rec.output_units = units.load(Ordering::Relaxed);
    rec.discontinuities = discontinuities.load(Ordering::Relaxed);
    rec
}

/// Writes the test pattern at [`FPS`] for `length`, or until the stream refuses a frame.
async fn write_for(stream: &LiveStream, length: Duration, rec: &mut SwapSession) -> Result<(), String> {
    let video = stream.video().ok_or("the stream has no video input")?;
    let mut pattern = TestPattern::new(WIDTH, HEIGHT, Rational::new(FPS, 1)).map_err(|e| e.to_string())?;
    let until = Instant::now() + length;
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / FPS);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        if Instant::now() >= until {
            return Ok(());
        }
        match video.write_frame(pattern.next_frame()) {
            Ok(()) => rec.frames_submitted += 1,
            Err(e) => {
                rec.refused = Some(e.to_string());
                return Ok(());
            }
        }
    }
}

/// Reader errors a session tolerates before its reader gives up.
const READER_ERRORS: u32 = 50;

fn spawn_reader(
    stream: &LiveStream,
    units: Arc<AtomicU64>,
    discontinuities: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    let mut output = stream.output_video(SeqSpec::Current);
    tokio::spawn(async move {
        let mut errors = 0;
        loop {
            match output.next_access_unit().await {
                Ok(Some(unit)) => {
                    units.fetch_add(1, Ordering::Relaxed);
                    if unit.discontinuity {
                        discontinuities.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(None) => return,
                // A segment lost to a death: read on, within reason.
                Err(_) if errors < READER_ERRORS => {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => return,
            }
        }
    })
}
