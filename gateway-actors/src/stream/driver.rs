//! The `StreamDriver` actor: carries out one video stream's [`StreamPlan`].
//!
//! It owns the plan and the stream's encoder, and does only I/O: it lends the encoder to the
//! shared CPU pool one frame at a time, sends the plan's writer commands to the
//! [`SegmentWriter`] (which the actix `Supervisor` restarts after a failed segment), arms one
//! timer for the plan's next deadline, and answers `Finish` with the totals once the plan is
//! done. Every rule (joins, drains, rolls, cutovers, channel swaps, counts) is the plan's.
//!
//! After every event it publishes the plan's [`ChannelHealth`] on a watch channel, so a caller
//! learns of failures without polling. A new channel ([`ReplaceChannel`]) gets a new
//! [`SegmentWriter`]: the old one may be stuck in a write to a dead server for up to its stall
//! timeout, so it is retired in the background, and its late answers, tagged with the old
//! channel's number, are ignored by the plan.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use gateway_core::error::{SegmentFailure, TrickleError};
use tokio::sync::{oneshot, watch};

use super::encoder::StreamEncoder;
use super::inbox::FrameInbox;
use super::plan::{StreamPlan, WriterCommand};
use super::runtime::{CpuWorker, EncodeAudio, EncodeFrame, FlushEncoder};
use super::stats::{ChannelHealth, MediaStats};
use crate::stream::error::MediaError;
use crate::trickle::TricklePublisher;
use crate::writer::{BeginSegment, EndSegment, Retire, SegmentWriter, Settle, WriteChunk, WriterRestarts};

/// The driver of one stream.
pub(crate) struct StreamDriver {
    plan: StreamPlan,
    inbox: Arc<FrameInbox>,
    /// `None` while lent to the CPU pool, once flushed or lost, and always for passthrough.
    encoder: Option<StreamEncoder>,
    /// The caller hands in media already encoded and cut ([`PushMedia`]): no encoder.
    passthrough: bool,
    /// A [`PushMedia`] waiting for the queued bytes to fall below [`PASSTHROUGH_QUEUE_BYTES`].
    push_waiting: Option<oneshot::Sender<Result<(), MediaError>>>,
    cpu: Addr<CpuWorker>,
    writer: Addr<SegmentWriter>,
    /// The armed timer and when it fires.
    deadline: Option<(Instant, SpawnHandle)>,
    /// Answered with the totals once the plan is done.
    finished: Option<oneshot::Sender<MediaStats>>,
    /// Where the channel's health is published.
    health: watch::Sender<ChannelHealth>,
    /// Restarts of the writers of replaced channels.
    retired_restarts: u32,
}

impl StreamDriver {
    pub(crate) fn new(
        plan: StreamPlan,
        inbox: Arc<FrameInbox>,
        encoder: Option<StreamEncoder>,
        cpu: Addr<CpuWorker>,
        writer: Addr<SegmentWriter>,
        health: watch::Sender<ChannelHealth>,
    ) -> StreamDriver {
        StreamDriver {
            plan,
            inbox,
            passthrough: encoder.is_none(),
            encoder,
            push_waiting: None,
            cpu,
            writer,
            deadline: None,
            finished: None,
            health,
            retired_restarts: 0,
        }
    }

    fn stats(&self) -> MediaStats {
        self.plan.stats(&self.inbox.stats(), self.inbox.audio_counts())
    }

    /// The encoder is back from a job: keep it, and give the plan its audio packet totals.
    fn encoder_home(&mut self, encoder: StreamEncoder) {
        let (made, dropped) = encoder.audio_packets();
        self.plan.audio_packets(made, dropped);
        self.encoder = Some(encoder);
    }

    /// Runs whatever the plan asks for now.
    fn drive(&mut self, ctx: &mut Context<Self>) {
        self.feed_encoder(ctx);
        self.feed_writer(ctx);
        if self.plan.is_terminal() {
            // No frame will be taken again: release producers waiting for room.
            self.inbox.close();
        }
        self.arm_deadline(ctx);
        self.publish_health();
        self.release_push();
        self.answer_finish(ctx);
    }

    /// Lets a waiting [`PushMedia`] return once the queue has room, or the stream has ended.
    fn release_push(&mut self) {
        if self.push_waiting.is_none() {
            return;
        }
        let answer = if self.plan.is_terminal() {
            Err(MediaError::Stopped("the stream has ended".into()))
        } else if self.plan.queued_bytes() <= PASSTHROUGH_QUEUE_BYTES {
            Ok(())
        } else {
            return;
        };
        if let Some(tx) = self.push_waiting.take() {
            let _ = tx.send(answer);
        }
    }

    /// Tells health watchers, if the health changed.
    fn publish_health(&self) {
        let now = self.plan.health();
        self.health.send_if_modified(|seen| {
            let changed = seen != now;
            if changed {
                *seen = now.clone();
            }
            changed
        });
    }

    fn feed_encoder(&mut self, ctx: &mut Context<Self>) {
        if self.passthrough {
            // Nothing to encode or flush: at the finish, the media handed in is all there is.
            if self.plan.flush_due() {
                self.plan.flush_sent();
                self.plan.flushed(Vec::new());
            }
            return;
        }
        if !self.plan.encoder_ready() {
            return;
        }
        let Some(mut encoder) = self.encoder.take() else { return };
        let frame = self.inbox.pop();
        let audio = self.inbox.take_audio();
        if let Some(frame) = frame {
            if self.plan.take_keyframe_request(Instant::now()) {
                encoder.request_keyframe();
            }
            self.plan.frame_sent();
            let job = self.cpu.send(EncodeFrame { encoder, frame, audio });
            ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
                match res {
                    Ok((encoder, encoded)) => {
                        act.encoder_home(encoder);
                        act.plan.audio_counted(encoded.audio);
                        match encoded.refused {
                            None => {
                                act.inbox.record_encode(encoded.pts_90k, encoded.took);
                                act.plan.frame_encoded(encoded.events);
                            }
                            Some(e) => {
                                tracing::warn!(error = %e, "frame not encoded");
                                act.plan.frame_refused();
                                act.plan.audio_encoded(encoded.events);
                            }
                        }
                    }
                    Err(_) => act.plan.encoder_lost(),
                }
                act.drive(ctx);
            }));
        } else if !audio.is_empty() {
            self.plan.audio_sent();
            let job = self.cpu.send(EncodeAudio { encoder, audio });
            ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
                match res {
                    Ok((encoder, encoded)) => {
                        act.encoder_home(encoder);
                        act.plan.audio_counted(encoded.counts);
                        act.plan.audio_encoded(encoded.events);
                    }
                    Err(_) => act.plan.encoder_lost(),
                }
                act.drive(ctx);
            }));
        } else if self.plan.flush_due() {
            self.plan.flush_sent();
            let job = self.cpu.send(FlushEncoder { encoder });
            ctx.spawn(job.into_actor(self).map(|res, act, ctx| {
                // The encoder itself was released by the flush; the rest of it goes here.
                if let Ok((encoder, _)) = &res {
                    let (made, dropped) = encoder.audio_packets();
                    act.plan.audio_packets(made, dropped);
                }
                let events = match res {
                    Ok((_, Ok(events))) => events,
                    Ok((_, Err(e))) => {
                        tracing::warn!(error = %e, "encoder flush failed");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                };
                act.plan.flushed(events);
                act.drive(ctx);
            }));
        } else {
            self.encoder = Some(encoder);
        }
    }

    fn feed_writer(&mut self, ctx: &mut Context<Self>) {
        let Some(cmd) = self.plan.poll_writer(Instant::now()) else { return };
        let (writer, channel) = (self.writer.clone(), self.plan.channel());
        let call = async move {
            match cmd {
                WriterCommand::Begin => flatten(writer.send(BeginSegment).await).map(drop),
                WriterCommand::Write(bytes) => flatten(writer.send(WriteChunk(bytes)).await),
                WriterCommand::End => flatten(writer.send(EndSegment).await),
            }
        };
        ctx.spawn(call.into_actor(self).map(move |result, act, ctx| {
            act.plan.writer_done_on(channel, result, Instant::now());
            act.drive(ctx);
        }));
    }

    /// Keeps one timer armed no later than the plan's next deadline. A timer that fires when
    /// nothing is due costs one look, so it is left armed rather than re-armed on every chunk.
    fn arm_deadline(&mut self, ctx: &mut Context<Self>) {
        let Some(want) = self.plan.next_deadline() else { return };
        if matches!(self.deadline, Some((armed, _)) if armed <= want) {
            return;
        }
        if let Some((_, handle)) = self.deadline.take() {
            ctx.cancel_future(handle);
        }
        let handle = ctx.run_later(want.saturating_duration_since(Instant::now()), |act, ctx| {
            act.deadline = None;
            act.plan.on_deadline(Instant::now());
            act.drive(ctx);
        });
        self.deadline = Some((want, handle));
    }

    /// Once finishing and the plan is done: counts frames that will never be encoded, lets
    /// failed segments' DELETEs leave, answers the totals and stops.
    fn answer_finish(&mut self, ctx: &mut Context<Self>) {
        if !self.plan.is_done() {
            return;
        }
        let Some(tx) = self.finished.take() else { return };
        if self.plan.is_terminal() {
            let (video, audio) = self.inbox.abandon();
            self.plan.frames_abandoned(video, audio);
        }
        let totals = self.stats();
        let (writer, retired) = (self.writer.clone(), self.retired_restarts);
        let settle = async move {
            // The caller may stop its runtime once answered: let DELETEs reach the server
            // first, or it keeps failed segments (and their readers) open.
            let _ = writer.send(Settle).await;
            let restarts = writer.send(WriterRestarts).await.unwrap_or(0) + retired;
            let _ = tx.send(MediaStats { writer_restarts: restarts, ..totals });
        };
        ctx.spawn(settle.into_actor(self).map(|_, _, ctx| ctx.stop()));
    }
}

fn flatten<T>(r: Result<Result<T, TrickleError>, MailboxError>) -> Result<T, TrickleError> {
    r.unwrap_or_else(|e| {
        Err(TrickleError::Segment {
            seq: -1,
            reason: format!("segment writer unavailable: {e}"),
            failure: SegmentFailure::Other,
        })
    })
}

impl Actor for StreamDriver {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.inbox.close();
    }
}

/// Frames were queued; take them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct FramesAvailable;

impl Handler<FramesAvailable> for StreamDriver {
    type Result = ();
    fn handle(&mut self, _: FramesAvailable, ctx: &mut Context<Self>) {
        self.drive(ctx);
    }
}

/// Encode what is queued, flush, publish the rest, answer the totals, and stop.
#[derive(Debug, Message)]
#[rtype(result = "MediaStats")]
pub(crate) struct Finish;

impl Handler<Finish> for StreamDriver {
    type Result = ResponseFuture<MediaStats>;
    fn handle(&mut self, _: Finish, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.finished = Some(tx);
        self.plan.finish();
        self.drive(ctx);
        let fallback = self.stats();
        Box::pin(async move { rx.await.unwrap_or(fallback) })
    }
}

/// Move the stream to this publisher's channel (see [`StreamPlan::channel_replaced`]);
/// answered once the driver has switched.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), MediaError>")]
pub(crate) struct ReplaceChannel(pub(crate) TricklePublisher);

impl Handler<ReplaceChannel> for StreamDriver {
    type Result = Result<(), MediaError>;
    fn handle(&mut self, msg: ReplaceChannel, ctx: &mut Context<Self>) -> Self::Result {
        self.plan.channel_replaced(Instant::now()).map_err(MediaError::Stopped)?;
        let publisher = msg.0;
        let fresh = Supervisor::start(move |_| SegmentWriter::new(publisher));
        let old = std::mem::replace(&mut self.writer, fresh);
        // Not awaited: the old writer answers once any write to the old server is over.
        ctx.spawn(old.send(Retire).into_actor(self).map(|restarts, act, _| {
            act.retired_restarts += restarts.unwrap_or(0);
        }));
        self.drive(ctx);
        Ok(())
    }
}

/// Media bytes a passthrough stream holds for its writer before [`PushMedia`] waits.
pub(crate) const PASSTHROUGH_QUEUE_BYTES: u64 = 4 * 1024 * 1024;

/// Media already encoded and cut into segments (passthrough): `units` access units. Answered
/// once the stream holds at most [`PASSTHROUGH_QUEUE_BYTES`] for its writer, so a file read
/// faster than the network takes it waits instead of piling up.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), MediaError>")]
pub(crate) struct PushMedia {
    pub(crate) events: Vec<gateway_media::SegmentEvent>,
    pub(crate) units: u64,
}

impl Handler<PushMedia> for StreamDriver {
    type Result = ResponseFuture<Result<(), MediaError>>;
    fn handle(&mut self, msg: PushMedia, ctx: &mut Context<Self>) -> Self::Result {
        if !self.passthrough {
            return Box::pin(async { Err(MediaError::Stopped("this stream encodes frames".into())) });
        }
        if let Some(e) = &self.plan.stats(&Default::default(), Default::default()).terminal_error {
            let e = MediaError::Stopped(format!("the stream has ended: {e}"));
            return Box::pin(async { Err(e) });
        }
        self.plan.media_passed(msg.events, msg.units);
        let (tx, rx) = oneshot::channel();
        // One caller pushes at a time; a second push replaces the first's wait (answered now).
        if let Some(old) = self.push_waiting.replace(tx) {
            let _ = old.send(Ok(()));
        }
        self.drive(ctx);
        Box::pin(
            async move { rx.await.unwrap_or_else(|_| Err(MediaError::Stopped("the stream stopped".into()))) },
        )
    }
}

/// Current totals.
#[derive(Debug, Message)]
#[rtype(result = "MediaStats")]
pub(crate) struct GetMediaStats;

impl Handler<GetMediaStats> for StreamDriver {
    type Result = MediaStats;
    fn handle(&mut self, _: GetMediaStats, _: &mut Context<Self>) -> MediaStats {
        self.stats()
    }
}

/// The caller let go of the stream without finishing it: stop now.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Abandon;

impl Handler<Abandon> for StreamDriver {
    type Result = ();
    fn handle(&mut self, _: Abandon, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
