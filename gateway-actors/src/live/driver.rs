//! The swap driver of one live stream: one loop that waits for the current orchestrator to
//! fail (publish health, payments, output watchdog) and then moves the stream to another one,
//! within go's swap budget. It owns the running job; the caller's [`LiveStream`] handle holds
//! only receivers.
//!
//! [`LiveStream`]: super::LiveStream

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::rejection::JobError;
use gateway_core::rejection::{OrchestratorRejection, RejectionReason};
use gateway_core::swap::{OutputWatchdog, SwapBudget, SwapReason, SwapRule};
use tokio::sync::{oneshot, watch};

use super::job::{LiveJobRequest, RunningJob};
use super::{detect, FinishedVideo, LiveStreamStatus, StreamEnd, SwapConfig, SwapRecord};
use crate::gateway::{Gateway, GatewayError};
use crate::media::{ChannelHealth, MediaStats, VideoPublisher};
use crate::payments::PaymentStats;
use crate::trickle::{ChannelKind, ChannelRoutes, ReaderSignals};

/// Far enough away to mean "no deadline".
const NO_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// What woke the driver.
enum Wake {
    /// The caller stopped the stream (`true`), or dropped its handle (`false`).
    Stop(bool),
    Health,
    HealthGone,
    Payments(crate::payments::PaymentStop),
    /// A reader found the current channel closed: the orchestrator ended the stream.
    ReaderClosed,
    Tick,
}

/// A left orchestrator's stop, running on its own: its answer brings the job's final payments.
struct PendingStop {
    /// The job's entry in [`LiveStreamStatus::payments`].
    index: usize,
    task: tokio::task::JoinHandle<PaymentStats>,
}

impl PendingStop {
    /// Writes the stopped job's payments into its entry, once the stop has answered; a stop
    /// that has not answered by `deadline` leaves the entry as it was when the job was left.
    async fn settle(self, status: &watch::Sender<LiveStreamStatus>, deadline: tokio::time::Instant) {
        if let Ok(Ok(stats)) = tokio::time::timeout_at(deadline, self.task).await {
            status.send_modify(|s| {
                if let Some(entry) = s.payments.get_mut(self.index) {
                    entry.1 = stats;
                }
            });
        }
    }
}

/// How long the end of a stream waits for the stops of orchestrators it left.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A swap whose recovery times are still coming in.
struct Measure {
    index: usize,
    detected_at: Instant,
    before: Option<MediaStats>,
    segment_done: bool,
    output_done: bool,
}

pub(crate) struct Driver {
    gateway: Gateway,
    request: LiveJobRequest,
    config: SwapConfig,
    job: Option<RunningJob>,
    /// The video publisher and its channel's mime type.
    video: Option<(Arc<VideoPublisher>, String)>,
    health: Option<watch::Receiver<ChannelHealth>>,
    /// The video publisher's channel generation (replacements carried out).
    video_generation: u32,
    routes: watch::Sender<ChannelRoutes>,
    status: watch::Sender<LiveStreamStatus>,
    signals: Arc<ReaderSignals>,
    budget: SwapBudget,
    watchdog: OutputWatchdog,
    failures: Vec<OrchestratorRejection>,
    excluded: Vec<String>,
    measuring: Option<Measure>,
    /// Stops of left orchestrators still running.
    stops: Vec<PendingStop>,
    /// The video's totals when the current channel last confirmed a segment (zeros at the
    /// start): what a swap lost is counted from there, not from its detection.
    last_confirmed: Option<MediaStats>,
    /// Segments the current channel has confirmed, as last seen.
    seen_accepted: u64,
    /// The current job's payments stopped without a failure (or it does not pay).
    payments_quiet: bool,
    /// Where the video's totals go when the stream's end closes it.
    finished: FinishedVideo,
}

/// What the driver hands back when the caller stops the stream: the job to stop, and the
/// senders to say so.
pub(crate) struct DriverExit {
    job: Option<RunningJob>,
    /// The current job's entry in the payments, if it runs.
    job_index: Option<usize>,
    stops: Vec<PendingStop>,
    routes: watch::Sender<ChannelRoutes>,
    status: watch::Sender<LiveStreamStatus>,
}

impl DriverExit {
    /// Stops the job (if one still runs) and marks the stream ended; answers the final status,
    /// with the payments of every job the stream ran, their stops' last payments included.
    pub(crate) async fn finish(&mut self) -> LiveStreamStatus {
        self.routes.send_modify(|r| r.ended = true);
        if let (Some(job), Some(index)) = (self.job.take(), self.job_index) {
            let task = tokio::spawn(job.stop(None));
            self.stops.push(PendingStop { index, task });
        }
        // One deadline for all: the stops run side by side.
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        for stop in self.stops.drain(..) {
            stop.settle(&self.status, deadline).await;
        }
        self.status.send_modify(|s| {
            s.ended.get_or_insert(StreamEnd::Stopped);
        });
        self.status.borrow().clone()
    }
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        gateway: Gateway,
        request: LiveJobRequest,
        config: SwapConfig,
        job: RunningJob,
        video: Option<(Arc<VideoPublisher>, String)>,
        routes: watch::Sender<ChannelRoutes>,
        status: watch::Sender<LiveStreamStatus>,
        signals: Arc<ReaderSignals>,
        finished: FinishedVideo,
    ) -> Driver {
        let now = Instant::now();
        let rule = match request {
            LiveJobRequest::Lv2v(_) => SwapRule::Lv2v,
            LiveJobRequest::Byoc(_) => SwapRule::Byoc,
        };
        let timeout = config.output_timeout.unwrap_or(NO_DEADLINE);
        Driver {
            health: video.as_ref().map(|(v, _)| v.channel_health()),
            gateway,
            request,
            config,
            job: Some(job),
            video,
            video_generation: 0,
            routes,
            status,
            signals,
            budget: SwapBudget::new(rule, now),
            watchdog: OutputWatchdog::new(timeout, now),
            failures: Vec::new(),
            excluded: Vec::new(),
            measuring: None,
            stops: Vec::new(),
            last_confirmed: Some(MediaStats::default()),
            seen_accepted: 0,
            payments_quiet: false,
            finished,
        }
    }

    /// Runs until the stream ends by itself (too many swaps, no orchestrator left) or the
    /// caller stops it.
    pub(crate) async fn run(mut self, mut stop: oneshot::Receiver<()>) -> DriverExit {
        loop {
            let wake = self.next_wake(&mut stop).await;
            let reason = match wake {
                Wake::Stop(true) => return self.exit(),
                Wake::Stop(false) => {
                    // The handle was dropped: nobody will stop the job but us.
                    let mut exit = self.exit();
                    exit.finish().await;
                    return exit;
                }
                Wake::Health => self.on_health().await,
                Wake::HealthGone => {
                    self.health = None;
                    None
                }
                Wake::Payments(stop) => {
                    let reason = detect::payment_failure(&stop);
                    self.payments_quiet = reason.is_none();
                    reason
                }
                Wake::ReaderClosed => Some(SwapReason::StreamClosed),
                Wake::Tick => self.watchdog_tick(),
            };
            self.measure().await;
            self.settle_finished_stops().await;
            let Some(reason) = reason else { continue };
            if let Err(end) = self.swap(reason).await {
                tracing::warn!(error = %end, "live stream ended");
                // No channel will come: the video takes no more frames (its writers are told),
                // before anyone watching hears of the end.
                if let Some((video, _)) = &self.video {
                    if let Ok(stats) = video.close().await {
                        self.finished.set(stats);
                    }
                }
                self.routes.send_modify(|r| r.ended = true);
                self.status.send_modify(|s| s.ended = Some(end));
                return self.exit();
            }
        }
    }

    async fn next_wake(&mut self, stop: &mut oneshot::Receiver<()>) -> Wake {
        let deadline = tokio::time::Instant::from_std(self.watchdog_deadline());
        let job = self.job.as_ref().filter(|_| !self.payments_quiet);
        let generation = self.routes.borrow().generation;
        let signals = self.signals.clone();
        let health = &mut self.health;
        tokio::select! {
            biased;
            r = stop => Wake::Stop(r.is_ok()),
            changed = async {
                match health {
                    Some(h) => h.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            } => if changed { Wake::Health } else { Wake::HealthGone },
            stopped = async {
                match job {
                    Some(j) => j.payments_stopped().await,
                    None => std::future::pending().await,
                }
            } => Wake::Payments(stopped),
            _ = signals.closed(generation) => Wake::ReaderClosed,
            _ = tokio::time::sleep_until(deadline) => Wake::Tick,
        }
    }

    fn exit(&mut self) -> DriverExit {
        let (routes, _) = watch::channel(ChannelRoutes::default());
        let (status, _) = watch::channel(LiveStreamStatus::default());
        let job = self.job.take();
        let mut job_index = None;
        if let Some(j) = &job {
            let entry = (j.orchestrator().to_owned(), j.payment_stats());
            self.status.send_modify(|s| {
                s.payments.push(entry);
                job_index = Some(s.payments.len() - 1);
            });
        }
        DriverExit {
            job,
            job_index,
            stops: std::mem::take(&mut self.stops),
            routes: std::mem::replace(&mut self.routes, routes),
            status: std::mem::replace(&mut self.status, status),
        }
    }

    /// The publish channel changed: feed the watchdog, note the totals at a confirmed
    /// segment, and say whether it shows a failure.
    async fn on_health(&mut self) -> Option<SwapReason> {
        let health = self.health.as_mut()?.borrow_and_update().clone();
        if health.generation != self.video_generation {
            return None;
        }
        if let Some(at) = health.last_sent {
            self.watchdog.input_sent(at);
        }
        if health.segments_accepted != self.seen_accepted {
            self.seen_accepted = health.segments_accepted;
            self.last_confirmed = self.media_stats().await;
        }
        detect::publish_failure(&health, self.video_generation, self.config.failed_segments)
    }

    /// Writes the payments of left jobs whose stops have answered.
    async fn settle_finished_stops(&mut self) {
        let (done, running) = std::mem::take(&mut self.stops).into_iter().partition(|s| s.task.is_finished());
        self.stops = running;
        for stop in done {
            // Finished: the deadline is never reached.
            stop.settle(&self.status, tokio::time::Instant::now() + STOP_WAIT).await;
        }
    }

    /// Whether go's output watchdog runs: configured, and an output reader exists to see output.
    fn watchdog_armed(&self) -> bool {
        self.config.output_timeout.is_some()
            && self.signals.has_readers()
            && self.routes.borrow().channels.url(ChannelKind::Output).is_some()
    }

    fn watchdog_deadline(&self) -> Instant {
        let now = Instant::now();
        if self.watchdog_armed() {
            self.watchdog.next_deadline(now)
        } else {
            now + NO_DEADLINE
        }
    }

    fn watchdog_tick(&mut self) -> Option<SwapReason> {
        let generation = self.routes.borrow().generation;
        if self.signals.first_at(generation).is_some() {
            if let Some(at) = self.signals.last_at() {
                self.watchdog.output_received(at);
            }
        }
        if !self.watchdog_armed() {
            return None;
        }
        self.watchdog.check(Instant::now())
    }

    /// Leaves the current orchestrator for `reason` and starts the stream on another one.
    async fn swap(&mut self, reason: SwapReason) -> Result<(), StreamEnd> {
        let detected_at = Instant::now();
        let Some(old) = self.job.take() else { return Err(StreamEnd::Stopped) };
        let from = old.orchestrator().to_owned();
        tracing::warn!(orchestrator = %from, %reason, "live stream: the orchestrator failed the stream");
        self.failures.push(OrchestratorRejection::new(
            old.address(),
            RejectionReason::FailedMidStream(reason.clone()),
        ));
        self.excluded.push(old.address().to_owned());
        let payments = (from.clone(), old.payment_stats());
        let mut index = 0;
        self.status.send_modify(|s| {
            s.payments.push(payments);
            index = s.payments.len() - 1;
        });
        let budget = self.budget.on_stop(detected_at);
        // A dead orchestrator must not hold the swap up: its stop runs on its own.
        let task = tokio::spawn(old.stop(Some(reason.to_string())));
        self.stops.push(PendingStop { index, task });
        if !self.config.enabled {
            return Err(StreamEnd::Failed { orchestrator: from, reason });
        }
        if let Err(limit) = budget {
            return Err(StreamEnd::TooManySwaps { limit, reason, failures: self.failures.clone() });
        }
        let before = match self.last_confirmed.take() {
            Some(stats) => Some(stats),
            None => self.media_stats().await,
        };
        self.seen_accepted = 0;
        let job = match self.gateway.start_running(&self.request, self.excluded.clone()).await {
            Ok(job) => job,
            Err(e) => return Err(self.start_failure(e)),
        };
        let restarted_after = detected_at.elapsed();
        self.move_video(&job).await;
        let to = job.orchestrator().to_owned();
        let generation = self.routes.borrow().generation + 1;
        let (channels, http) = (job.channels(), job.http());
        self.routes.send_modify(|r| {
            r.generation = generation;
            r.channels = channels;
            r.http = Some(http);
        });
        self.job = Some(job);
        self.payments_quiet = false;
        self.watchdog =
            OutputWatchdog::new(self.config.output_timeout.unwrap_or(NO_DEADLINE), Instant::now());
        tracing::info!(from = %from, to = %to, %reason, generation, "live stream moved to another orchestrator");
        let record = SwapRecord {
            reason,
            from,
            to: to.clone(),
            detected_at,
            restarted_after,
            first_bytes_after: None,
            first_segment_after: None,
            first_output_after: None,
            frames_dropped: 0,
            bytes_drained: 0,
        };
        let mut index = 0;
        self.status.send_modify(|s| {
            s.orchestrator = to;
            s.generation = generation;
            s.swaps.push(record);
            index = s.swaps.len() - 1;
        });
        let no_video = self.video.is_none();
        self.measuring =
            Some(Measure { index, detected_at, before, segment_done: no_video, output_done: false });
        Ok(())
    }

    /// Moves the video publisher to `job`'s input channel.
    async fn move_video(&mut self, job: &RunningJob) {
        let Some((video, mime)) = &self.video else { return };
        let Some(publisher) = job.publisher(mime).await else {
            tracing::warn!("the new orchestrator's job has no input channel; video is drained");
            return;
        };
        match video.replace_channel(publisher).await {
            Ok(()) => self.video_generation += 1,
            Err(e) => tracing::warn!(error = %e, "video could not move to the new orchestrator"),
        }
    }

    /// Why the stream cannot go on after a failed restart.
    fn start_failure(&self, e: GatewayError) -> StreamEnd {
        let mut failures = self.failures.clone();
        match e {
            GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) => {
                // Those we excluded are already listed with how they failed.
                failures.extend(rejections.into_iter().filter(|r| r.reason != RejectionReason::Excluded));
                StreamEnd::Exhausted { failures }
            }
            GatewayError::Stopped => StreamEnd::GatewayStopped,
            other => StreamEnd::RestartFailed { message: other.to_string(), failures },
        }
    }

    async fn media_stats(&self) -> Option<MediaStats> {
        match &self.video {
            Some((v, _)) => v.stats().await.ok(),
            None => None,
        }
    }

    /// Fills in the last swap's recovery times as they come in.
    async fn measure(&mut self) {
        let Some(m) = self.measuring.as_ref() else { return };
        let (index, detected_at, before) = (m.index, m.detected_at, m.before.clone());
        let (mut segment_done, mut output_done) = (m.segment_done, m.output_done);
        let mut first_segment = None;
        let mut first_bytes = None;
        let mut drops = None;
        if !segment_done {
            let moved = self.video_generation > 0;
            let health = self
                .health
                .as_ref()
                .map(|h| h.borrow().clone())
                .filter(|h| moved && h.generation == self.video_generation);
            // Health wakes the driver at every chunk: the first seen is the first sent.
            first_bytes =
                health.as_ref().and_then(|h| h.last_sent).map(|at| at.saturating_duration_since(detected_at));
            if let Some(at) = health.and_then(|h| h.first_accepted) {
                first_segment = Some(at.saturating_duration_since(detected_at));
                if let (Some(b), Some(n)) = (before, self.media_stats().await) {
                    drops = Some((
                        n.frames_dropped.saturating_sub(b.frames_dropped),
                        n.bytes_drained.saturating_sub(b.bytes_drained),
                    ));
                }
                segment_done = true;
            }
        }
        let mut first_output = None;
        if !output_done {
            let generation = self.routes.borrow().generation;
            if let Some(at) = self.signals.first_at(generation) {
                first_output = Some(at.saturating_duration_since(detected_at));
                output_done = true;
            }
        }
        if first_segment.is_some() || first_output.is_some() || first_bytes.is_some() {
            self.status.send_modify(|s| {
                let Some(r) = s.swaps.get_mut(index) else { return };
                r.first_bytes_after = r.first_bytes_after.or(first_bytes);
                r.first_segment_after = first_segment.or(r.first_segment_after);
                r.first_output_after = first_output.or(r.first_output_after);
                if let Some((frames, bytes)) = drops {
                    r.frames_dropped = frames;
                    r.bytes_drained = bytes;
                }
            });
        }
        self.measuring = if segment_done && output_done {
            None
        } else {
            Some(Measure {
                index,
                detected_at,
                before: self.measuring.take().and_then(|m| m.before),
                segment_done,
                output_done,
            })
        };
    }
}
