//! Live streams that survive their orchestrator: [`LiveStream`] runs an LV2V or BYOC job and,
//! when its orchestrator dies, stalls, refuses payment or ends the stream, moves it to another
//! one, as go-livepeer's gateways do, without the caller's handles changing.
//!
//! - Detection: the publish channel's health (refused or reset connections, segments failing
//!   in a row, the channel closed), the payments' stop, and go's output watchdog. Each is a
//!   typed [`SwapReason`].
//! - The swap (in `driver`): select again without the failed orchestrators, start the same
//!   job there (paid), stop the old one with the reason, move the video publisher to the new
//!   input channel (the next segment starts on a keyframe) and tell every reader and the
//!   control writer where the new channels are (`trickle::follow`).
//! - Bounds: go's swap budgets (`livepeer_gateway_core::swap`); too many swaps too fast, or no
//!   orchestrator left, ends the stream with a [`StreamEnd`] naming each failure.
//!   [`SwapConfig::enabled`] `false` ends it at the first failure instead.
//! - Each swap is a [`SwapRecord`] in [`LiveStreamStatus`].

mod control;
mod detect;
mod driver;
mod job;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_core::error::TrickleError;
use gateway_core::rejection::OrchestratorRejection;
use gateway_core::swap::{SwapReason, TooManySwaps, OUTPUT_SEGMENT_TIMEOUT};
use gateway_core::trickle::SeqSpec;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use control::{LiveControl, CONTROL_SWAP_WAIT};
pub use detect::DEFAULT_FAILED_SEGMENTS;
pub use job::LiveJobRequest;

use crate::channels::JsonReader;
use crate::gateway::{Gateway, GatewayError};
use crate::media::{ChannelLoss, MediaError, MediaStats, VideoPublisher, VideoPublisherConfig};
use crate::output_video::VideoSubscriber;
use crate::payments::PaymentStats;
use crate::trickle::{
    ChannelKind, ChannelRoutes, ReaderSignals, SegmentGetClient, StreamChannels, SubscriberConfig,
    TrickleSubscriber,
};
use driver::{Driver, DriverExit};

/// When and how a live stream moves to another orchestrator.
#[derive(Debug, Clone)]
pub struct SwapConfig {
    /// Swap at all; `false` ends the stream at the first failure, as before swaps existed.
    pub enabled: bool,
    /// Publish segments failing in a row that count as a failed orchestrator.
    pub failed_segments: u32,
    /// go's output watchdog: no output for this long while input went out is a failure.
    /// Armed once an output reader exists; `None` turns it off.
    pub output_timeout: Option<Duration>,
}

impl Default for SwapConfig {
    fn default() -> Self {
        SwapConfig {
            enabled: true,
            failed_segments: DEFAULT_FAILED_SEGMENTS,
            output_timeout: Some(OUTPUT_SEGMENT_TIMEOUT),
        }
    }
}

/// One swap: why, from where to where, and how long the stream took to recover.
#[derive(Debug, Clone)]
pub struct SwapRecord {
    /// Why the old orchestrator was left.
    pub reason: SwapReason,
    /// The old orchestrator.
    pub from: String,
    /// The new one.
    pub to: String,
    /// When the failure was detected.
    pub detected_at: Instant,
    /// From detection to the job started on the new orchestrator.
    pub restarted_after: Duration,
    /// From detection to the first bytes of video the new orchestrator took (once it has).
    pub first_bytes_after: Option<Duration>,
    /// From detection to the first segment the new orchestrator confirmed complete (once it
    /// has; that segment is cut short, see `StreamTiming::first_segment_after_swap`).
    pub first_segment_after: Option<Duration>,
    /// From detection to the first output segment from the new orchestrator (once an output
    /// reader saw one).
    pub first_output_after: Option<Duration>,
    /// Frames dropped before encoding from the old orchestrator's last confirmed segment to
    /// the new one's first (the whole outage, not only the time after detection).
    pub frames_dropped: u64,
    /// Encoded bytes that never reached an orchestrator over the same span.
    pub bytes_drained: u64,
}

/// How a live stream ended.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamEnd {
    /// The caller stopped it.
    #[error("stopped")]
    Stopped,
    /// Its orchestrator failed and swapping is off.
    #[error("orchestrator {orchestrator} failed: {reason} (swapping is off)")]
    Failed {
        /// The orchestrator.
        orchestrator: String,
        /// How it failed.
        reason: SwapReason,
    },
    /// It swapped too often too fast (go's bounds).
    #[error("{limit}; last failure: {reason}; orchestrators: {}", list(failures))]
    TooManySwaps {
        /// The bound that ran out.
        limit: TooManySwaps,
        /// The failure that would have been one swap too many.
        reason: SwapReason,
        /// Every orchestrator left, and why.
        failures: Vec<OrchestratorRejection>,
    },
    /// No orchestrator was left to move to.
    #[error("no orchestrator left to move the stream to: {}", list(failures))]
    Exhausted {
        /// Every orchestrator that failed the stream or refused it, and why.
        failures: Vec<OrchestratorRejection>,
    },
    /// Starting the job elsewhere failed before any orchestrator was tried.
    #[error("restarting the stream failed: {message}; orchestrators: {}", list(failures))]
    RestartFailed {
        /// What failed (the signer, the gateway's clients).
        message: String,
        /// Every orchestrator left, and why.
        failures: Vec<OrchestratorRejection>,
    },
    /// The gateway shut down.
    #[error("the gateway shut down")]
    GatewayStopped,
}

fn list(failures: &[OrchestratorRejection]) -> String {
    failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Where a live stream is, and what happened to it.
#[derive(Debug, Clone, Default)]
pub struct LiveStreamStatus {
    /// The job's id on the orchestrator running it (LV2V manifest id, BYOC stream id).
    pub job_id: String,
    /// The orchestrator running it now (the last one, once ended).
    pub orchestrator: String,
    /// 0 on the first orchestrator, +1 per swap.
    pub generation: u32,
    /// Every swap so far.
    pub swaps: Vec<SwapRecord>,
    /// Payments of the orchestrators it left, and of the current one once stopped.
    pub payments: Vec<(String, PaymentStats)>,
    /// How it ended, once it has.
    pub ended: Option<StreamEnd>,
}

/// A live stream's operations that failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveStreamError {
    /// The stream has ended (see [`LiveStream::status`] for how).
    #[error("the live stream has ended")]
    Ended,
    /// The job has no such channel.
    #[error("the job has no {0} channel")]
    NoChannel(&'static str),
    /// A control message was not delivered, and no next orchestrator came in time.
    #[error("control message not delivered: {0}")]
    Control(TrickleError),
    /// The video publisher failed.
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// What a stopped live stream did.
#[derive(Debug, Clone)]
pub struct LiveStreamReport {
    /// Its status at the end (swaps, payments, how it ended).
    pub status: LiveStreamStatus,
    /// The video's totals (when it had a video publisher).
    pub media: Option<MediaStats>,
}

/// A running live stream; see the module docs. The handles it gives out (video, readers,
/// control) stay the same objects across swaps.
pub struct LiveStream {
    video: Option<Arc<VideoPublisher>>,
    routes: watch::Receiver<ChannelRoutes>,
    status: watch::Receiver<LiveStreamStatus>,
    signals: Arc<ReaderSignals>,
    reader: SegmentGetClient,
    control: LiveControl,
    stop: Option<oneshot::Sender<()>>,
    driver: Option<JoinHandle<DriverExit>>,
    /// The video's totals once it was closed ([`LiveStream::finish_video`], or the stream's end).
    finished: FinishedVideo,
}

impl std::fmt::Debug for LiveStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.status.borrow();
        f.debug_struct("LiveStream")
            .field("orchestrator", &s.orchestrator)
            .field("generation", &s.generation)
            .finish()
    }
}

impl Gateway {
    /// Starts `request` as a live stream that moves to another orchestrator when its own fails
    /// (see [`crate::live`]). With `video`, frames go in through [`LiveStream::video`] (the
    /// job must have an input channel). The stream's driver runs on the calling tokio runtime.
    pub async fn start_live_stream(
        &self,
        request: LiveJobRequest,
        video: Option<VideoPublisherConfig>,
        swap: SwapConfig,
    ) -> Result<LiveStream, GatewayError> {
        let job = self.start_running(&request, Vec::new()).await?;
        let mut video_publisher = None;
        if let Some(mut config) = video {
            if swap.enabled {
                config.on_channel_loss = ChannelLoss::AwaitReplacement;
            }
            let mime = config.mime();
            let Some(publisher) = job.publisher(mime).await else {
                job.stop(None).await;
                return Err(gateway_core::rejection::JobError::InvalidRequest(
                    "video needs an input channel (BYOC: enable_video_ingress)".into(),
                )
                .into());
            };
            match VideoPublisher::start(publisher, config) {
                Ok(v) => video_publisher = Some((Arc::new(v), mime.to_owned())),
                Err(e) => {
                    job.stop(None).await;
                    return Err(gateway_core::rejection::JobError::InvalidRequest(e.to_string()).into());
                }
            }
        }
        let status = LiveStreamStatus {
            job_id: job.id().to_owned(),
            orchestrator: job.orchestrator().to_owned(),
            ..Default::default()
        };
        let routes = ChannelRoutes { channels: job.channels(), http: Some(job.http()), ..Default::default() };
        let (routes_tx, routes_rx) = watch::channel(routes);
        let (status_tx, status_rx) = watch::channel(status);
        let signals = Arc::new(ReaderSignals::default());
        let finished = FinishedVideo::default();
        let (stop_tx, stop_rx) = oneshot::channel();
        let video = video_publisher.as_ref().map(|(v, _)| v.clone());
        let driver = Driver::new(
            self.clone(),
            request,
            swap,
            job,
            video_publisher,
            routes_tx,
            status_tx,
            signals.clone(),
            finished.clone(),
        );
        let driver = tokio::spawn(driver.run(stop_rx));
        Ok(LiveStream {
            video,
            control: LiveControl::new(routes_rx.clone()),
            routes: routes_rx,
            status: status_rx,
            signals,
            reader: self.inner.http.segment_reader(),
            stop: Some(stop_tx),
            driver: Some(driver),
            finished,
        })
    }
}

impl LiveStream {
    /// The video publisher: frames written here reach whichever orchestrator runs the stream.
    pub fn video(&self) -> Option<&VideoPublisher> {
        self.video.as_deref()
    }

    /// The video publisher as a shared handle, for a producer on a task of its own (an ingest
    /// connection) while the stream is read and stopped elsewhere.
    pub fn video_handle(&self) -> Option<Arc<VideoPublisher>> {
        self.video.clone()
    }

    /// Where the stream is and what happened to it so far.
    pub fn status(&self) -> LiveStreamStatus {
        self.status.borrow().clone()
    }

    /// The channels on the orchestrator running the stream now.
    pub fn channels(&self) -> StreamChannels {
        self.routes.borrow().channels.clone()
    }

    /// The status as it changes (a swap, the end).
    pub fn watch_status(&self) -> watch::Receiver<LiveStreamStatus> {
        self.status.clone()
    }

    /// Resolves when the stream has ended (by itself or stopped), with how.
    pub async fn ended(&self) -> StreamEnd {
        let mut status = self.status.clone();
        loop {
            if let Some(end) = status.borrow_and_update().ended.clone() {
                return end;
            }
            if status.changed().await.is_err() {
                return status.borrow().ended.clone().unwrap_or(StreamEnd::Stopped);
            }
        }
    }

    fn following(&self, kind: ChannelKind, config: SubscriberConfig) -> TrickleSubscriber {
        if kind == ChannelKind::Output {
            self.signals.reader_added();
        }
        let signals = Some(self.signals.clone());
        TrickleSubscriber::following(self.reader.clone(), self.routes.clone(), kind, config, signals)
    }

    /// A reader of the output channel, moving with the stream; the first segment after a swap
    /// says [`discontinuity`](crate::trickle::IncomingSegment::discontinuity).
    pub fn output(&self, start: SeqSpec) -> TrickleSubscriber {
        self.following(ChannelKind::Output, SubscriberConfig { start, ..Default::default() })
    }

    /// The output video as access units or decoded frames, moving with the stream.
    pub fn output_video(&self, start: SeqSpec) -> VideoSubscriber {
        VideoSubscriber::new(self.output(start))
    }

    /// The output video and audio as units or decoded frames and samples, moving with the
    /// stream ([`VideoSubscriber::with_audio`]).
    pub fn output_media(&self, start: SeqSpec) -> VideoSubscriber {
        VideoSubscriber::with_audio(self.output(start))
    }

    /// A reader of the job's events, moving with the stream.
    pub fn events(&self) -> JsonReader {
        JsonReader::from_subscriber(self.following(ChannelKind::Events, JsonReader::config(SeqSpec::Current)))
    }

    /// A reader of the job's data channel (BYOC, JSON lines), moving with the stream.
    pub fn data(&self) -> JsonReader {
        JsonReader::from_subscriber(self.following(ChannelKind::Data, JsonReader::config(SeqSpec::At(0))))
    }

    /// The control channel, following the stream.
    pub fn control(&self) -> LiveControl {
        self.control.clone()
    }

    /// Encodes the frames still queued and publishes the last segment; the video takes no frame
    /// after. The job keeps running (its output can still be read) until [`LiveStream::stop`].
    pub async fn finish_video(&self) -> Result<MediaStats, LiveStreamError> {
        let video = self.video.as_ref().ok_or(LiveStreamError::NoChannel("video input"))?;
        match video.close().await {
            Ok(stats) => {
                self.finished.set(stats.clone());
                Ok(stats)
            }
            // Closed already (the stream ended): its totals were kept.
            Err(e) => self.finished.get().ok_or(LiveStreamError::Media(e)),
        }
    }

    /// Finishes the video (its last segment is published), stops the job on its orchestrator
    /// and answers what the stream did.
    pub async fn stop(mut self) -> LiveStreamReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let exit = match self.driver.take() {
            Some(d) => d.await.ok(),
            None => None,
        };
        self.control.close().await;
        let media = match self.video.take() {
            // Closed already by `finish_video`: the driver is gone, and its last totals with it.
            Some(video) => match video.close().await {
                Ok(stats) => Some(stats),
                Err(_) => self.finished.get(),
            },
            None => None,
        };
        let status = match exit {
            Some(mut exit) => exit.finish().await,
            None => self.status(),
        };
        LiveStreamReport { status, media }
    }
}

/// A video's totals once it was closed, shared by the handle and the driver (either may close
/// it: the caller finishing, or the stream ending).
#[derive(Debug, Clone, Default)]
pub(crate) struct FinishedVideo(Arc<std::sync::Mutex<Option<MediaStats>>>);

impl FinishedVideo {
    pub(crate) fn set(&self, stats: MediaStats) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
    }

    pub(crate) fn get(&self) -> Option<MediaStats> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        // Dropping the stop sender unsent tells the driver to stop the job itself.
        self.stop.take();
    }
}
