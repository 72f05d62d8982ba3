//! The stream plan under synthetic time: each rule on its own, then the accounting under
//! random scripts (frames, encoder answers, writer failures, pauses, channel swaps).

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::error::{SegmentFailure, TrickleError};
use gateway_media::segmenter::{SegmentEvent, SegmentSummary};
use gateway_media::{FrameQueue, Rational, TestPattern};
use proptest::prelude::*;

use super::{StreamPlan, WriterCommand};
use crate::stream::stats::{AudioCounts, AudioQueueCounts, ChannelLoss, MediaStats, StreamTiming};

const MS: Duration = Duration::from_millis(1);

fn timing() -> StreamTiming {
    StreamTiming {
        min_segment_wallclock: 1000 * MS,
        idle_cutover: 2000 * MS,
        first_segment_after_swap: 1000 * MS,
    }
}

fn start(index: u64) -> SegmentEvent {
    SegmentEvent::SegmentStart { index }
}

fn chunk(n: usize) -> SegmentEvent {
    SegmentEvent::Chunk(Bytes::from(vec![0u8; n]))
}

fn end(index: u64) -> SegmentEvent {
    SegmentEvent::SegmentEnd(SegmentSummary {
        index,
        bytes: 0,
        frames: 1,
        audio_packets: 0,
        start_pts: 0,
        duration: Duration::ZERO,
    })
}

fn failed(seq: i64) -> TrickleError {
    TrickleError::Segment { seq, reason: "stalled".into(), failure: SegmentFailure::Stalled }
}

/// Runs every writer command with `Ok` at `now`, returning what was asked.
fn run_ok(plan: &mut StreamPlan, now: Instant) -> Vec<WriterCommand> {
    let mut out = Vec::new();
    while let Some(cmd) = plan.poll_writer(now) {
        out.push(cmd);
        plan.writer_done(Ok(()), now);
    }
    out
}

fn kinds(cmds: &[WriterCommand]) -> Vec<&'static str> {
    cmds.iter()
        .map(|c| match c {
            WriterCommand::Begin => "begin",
            WriterCommand::Write(_) => "write",
            WriterCommand::End => "end",
        })
        .collect()
}

#[test]
fn a_long_media_segment_is_one_trickle_segment() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_sent();
    plan.frame_encoded(vec![start(0), chunk(10), chunk(20)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0)), ["begin", "write", "write"]);
    plan.frame_sent();
    plan.frame_encoded(vec![end(0)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 1500 * MS)), ["end"]);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.segments_published, s.bytes_published, s.segments_joined), (1, 30, 0));
}

#[test]
fn short_media_segments_join_the_open_trickle_segment() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(5), end(0)]);
    // Opened at t0 and ended at once: too young, so the next media segment joins it.
    assert_eq!(kinds(&run_ok(&mut plan, t0)), ["begin", "write"]);
    plan.frame_encoded(vec![start(1), chunk(5), end(1)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 400 * MS)), ["write"]);
    // Old enough now: this one ends with the trickle segment.
    plan.frame_encoded(vec![start(2), chunk(5), end(2)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 1200 * MS)), ["write", "end"]);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.segments_joined, s.segments_published, s.bytes_published), (1, 1, 15));
}

#[test]
fn a_failed_write_drains_the_rest_and_the_next_media_segment_rolls_on() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(10), chunk(20), chunk(30), end(0)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done(Ok(()), t0);
    assert!(matches!(plan.poll_writer(t0), Some(WriterCommand::Write(b)) if b.len() == 10));
    plan.writer_done(Ok(()), t0);
    assert!(matches!(plan.poll_writer(t0), Some(WriterCommand::Write(b)) if b.len() == 20));
    plan.writer_done(Err(failed(0)), t0);
    // The 30 bytes and the end are settled without the writer.
    assert_eq!(plan.poll_writer(t0), None);
    plan.frame_encoded(vec![start(1), chunk(7)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 2000 * MS)), ["begin", "write"]);
    plan.frame_encoded(vec![end(1)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 3500 * MS)), ["end"]);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.segments_failed, s.segments_published), (1, 1));
    assert_eq!((s.bytes_encoded, s.bytes_drained, s.bytes_published), (67, 60, 7));
    assert!(s.terminal_error.is_none());
}

/// Stands in for the container's marker: the chunk with its first byte set to 0xD1.
fn mark(chunk: &[u8]) -> Option<Vec<u8>> {
    let mut out = chunk.to_vec();
    *out.first_mut()? = 0xD1;
    Some(out)
}

fn written(cmds: &[WriterCommand]) -> Vec<u8> {
    cmds.iter().filter_map(|c| if let WriterCommand::Write(b) = c { Some(b[0]) } else { None }).collect()
}

/// Only the first chunk of the media segment after a loss is marked: not the chunks of the
/// stream before it, not the later chunks, not the segment after (nothing lost since).
#[test]
fn the_first_chunk_after_lost_bytes_is_marked_as_a_discontinuity() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0).with_discontinuity_marker(mark);
    plan.frame_encoded(vec![start(0), chunk(10), chunk(20)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done(Ok(()), t0);
    assert!(matches!(plan.poll_writer(t0), Some(WriterCommand::Write(b)) if b[0] == 0));
    plan.writer_done(Err(failed(0)), t0);
    plan.frame_encoded(vec![end(0), start(1), chunk(7), chunk(8), end(1)]);
    let cmds = run_ok(&mut plan, t0 + 2000 * MS);
    assert_eq!(kinds(&cmds), ["begin", "write", "write"], "kept open by the minimum wall-clock rule");
    assert_eq!(written(&cmds), [0xD1, 0]);
    plan.frame_encoded(vec![start(2), chunk(9), end(2)]);
    let cmds = run_ok(&mut plan, t0 + 4000 * MS);
    assert_eq!(written(&cmds), [0], "nothing lost since the last mark");
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.bytes_encoded, s.bytes_drained, s.bytes_published), (54, 30, 24), "marks change no count");
}

#[test]
fn an_idle_segment_is_cut_over_at_its_deadline_and_the_rest_of_its_media_is_drained() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(10)]);
    run_ok(&mut plan, t0);
    let deadline = plan.next_deadline().expect("an open segment has a cutover deadline");
    assert_eq!(deadline, t0 + 2000 * MS);
    plan.on_deadline(deadline - MS); // not yet
    assert_eq!(plan.poll_writer(deadline - MS), None);
    plan.on_deadline(deadline);
    assert_eq!(kinds(&run_ok(&mut plan, deadline)), ["end"]);
    // The rest of the media segment must not start a segment without its keyframe.
    plan.frame_encoded(vec![chunk(5), end(0), start(1), chunk(6)]);
    assert_eq!(kinds(&run_ok(&mut plan, deadline + MS)), ["begin", "write"]);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.idle_cutovers, s.segments_published, s.bytes_drained), (1, 1, 5));
}

#[test]
fn an_empty_idle_segment_is_closed_and_reopened() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0)), ["begin"]);
    let deadline = plan.next_deadline().unwrap();
    plan.on_deadline(deadline);
    assert_eq!(kinds(&run_ok(&mut plan, deadline)), ["end", "begin"]);
    assert_eq!(plan.next_deadline(), Some(deadline + 2000 * MS));
}

#[test]
fn no_deadline_while_the_writer_is_busy_or_nothing_is_open() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    assert_eq!(plan.next_deadline(), None);
    plan.frame_encoded(vec![start(0), chunk(1)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    assert_eq!(plan.next_deadline(), None);
}

#[test]
fn finish_flushes_then_closes_a_segment_kept_open_for_its_minimum_length() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(4)]);
    run_ok(&mut plan, t0);
    plan.finish();
    assert!(plan.flush_due());
    plan.flush_sent();
    assert!(!plan.is_done());
    plan.flushed(vec![chunk(3), end(0)]);
    // Finishing: a young segment is ended anyway.
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 10 * MS)), ["write", "end"]);
    assert!(plan.is_done());
    assert_eq!(plan.stats(&Default::default(), Default::default()).bytes_published, 7);
}

#[test]
fn a_terminal_error_stops_encoding_and_finish_still_completes() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(4)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done(Err(TrickleError::EndOfStream), t0);
    assert!(plan.is_terminal());
    assert!(!plan.encoder_ready());
    plan.finish();
    assert!(!plan.flush_due());
    assert_eq!(plan.poll_writer(t0), None);
    assert!(plan.is_done());
    plan.frames_abandoned(3, 2);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.drops.stream_ended, s.bytes_drained), (3, 4));
    assert_eq!(s.audio.frames_refused, 2, "queued audio that never went is counted as refused");
    assert_eq!(s.terminal_error.as_deref(), Some(TrickleError::EndOfStream.to_string().as_str()));
}

#[test]
fn a_lost_encoder_ends_the_stream() {
    let mut plan = StreamPlan::new(timing(), Instant::now());
    plan.frame_sent();
    plan.encoder_lost();
    assert!(plan.is_terminal() && !plan.encoder_ready());
}

// ---- channel health and swaps ----

#[test]
fn health_follows_every_writer_answer() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(10)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done(Ok(()), t0);
    assert!(plan.poll_writer(t0).is_some());
    assert_eq!(plan.health().last_sent, None, "nothing went out yet");
    plan.writer_done(Ok(()), t0 + MS);
    assert_eq!(plan.health().last_sent, Some(t0 + MS));
    plan.frame_encoded(vec![chunk(5)]);
    assert!(plan.poll_writer(t0 + 2 * MS).is_some());
    plan.writer_done(Err(failed(0)), t0 + 2 * MS);
    let h = plan.health();
    assert_eq!(
        (h.consecutive_failed, h.last_failure, h.lost.clone()),
        (1, Some(SegmentFailure::Stalled), None)
    );
    // The next segment is confirmed: the run of failures is over, the last failure stays.
    plan.frame_encoded(vec![end(0), start(1), chunk(7)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 3000 * MS)), ["begin", "write"]);
    plan.frame_encoded(vec![end(1)]);
    let at = t0 + 4500 * MS;
    assert_eq!(kinds(&run_ok(&mut plan, at)), ["end"]);
    let h = plan.health();
    assert_eq!((h.consecutive_failed, h.segments_accepted, h.first_accepted), (0, 1, Some(at)));
    assert_eq!(h.last_failure, Some(SegmentFailure::Stalled));
    // "Gave up" when opening a segment is a verdict: the channel is lost, no failure is added.
    plan.frame_encoded(vec![start(2), chunk(1)]);
    assert_eq!(plan.poll_writer(at), Some(WriterCommand::Begin));
    plan.writer_done(Err(TrickleError::Terminal { consecutive_failures: 3 }), at);
    let h = plan.health();
    assert_eq!((h.consecutive_failed, h.first_accepted), (0, Some(at)));
    assert_eq!(h.lost, Some(TrickleError::Terminal { consecutive_failures: 3 }));
    assert!(plan.is_terminal(), "the default still ends the stream");
}

/// Mid segment: the open segment is given up (a failure, its bytes drained), so is the rest
/// of its media segment, a keyframe is asked for once, and the next media segment opens the
/// new channel's first segment, marked as a discontinuity.
#[test]
fn a_swap_mid_segment_abandons_it_and_the_next_media_segment_opens_on_the_new_channel() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0).with_discontinuity_marker(mark);
    plan.frame_encoded(vec![start(0), chunk(10), chunk(20)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0)), ["begin", "write", "write"]);
    assert!(!plan.take_keyframe_request(t0));
    assert_eq!(plan.channel_replaced(t0 + 100 * MS), Ok(()));
    let now = t0 + 100 * MS;
    assert!(plan.take_keyframe_request(now) && !plan.take_keyframe_request(now), "asked for once");
    assert_eq!(plan.next_deadline(), None, "nothing is open to cut over");
    plan.frame_encoded(vec![chunk(5)]);
    assert_eq!(run_ok(&mut plan, t0 + 110 * MS), [], "the rest of the old media segment is drained");
    plan.frame_encoded(vec![end(0), start(1), chunk(7)]);
    let cmds = run_ok(&mut plan, t0 + 120 * MS);
    assert_eq!(kinds(&cmds), ["begin", "write"]);
    assert_eq!(written(&cmds), [0xD1], "the new channel's first chunk is marked");
    plan.frame_encoded(vec![end(1)]);
    let at = t0 + 1200 * MS;
    assert_eq!(kinds(&run_ok(&mut plan, at)), ["end"]);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.channel_swaps, s.segments_failed, s.segments_published), (1, 1, 1));
    assert_eq!((s.bytes_encoded, s.bytes_published, s.bytes_drained), (42, 7, 35));
    let h = plan.health();
    assert_eq!(
        (h.generation, h.segments_accepted, h.first_accepted, h.consecutive_failed),
        (1, 1, Some(at), 0)
    );
}

/// The first segment on a new channel is cut short: a second keyframe is asked for once it
/// has been open `first_segment_after_swap`, and the media segment it ends is closed, not
/// joined, so the new orchestrator holds a complete segment within about that time.
#[test]
fn the_first_segment_after_a_swap_ends_at_a_keyframe_asked_for_soon_after_it_opened() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(10)]);
    run_ok(&mut plan, t0);
    plan.channel_replaced(t0 + 100 * MS).unwrap();
    assert!(plan.take_keyframe_request(t0 + 100 * MS), "the swap's keyframe");
    plan.frame_encoded(vec![end(0), start(1), chunk(7)]);
    let opened = t0 + 150 * MS;
    assert_eq!(kinds(&run_ok(&mut plan, opened)), ["begin", "write"]);
    assert!(!plan.take_keyframe_request(opened + 999 * MS), "not before it has been open long enough");
    let cut = opened + 1000 * MS;
    assert!(plan.take_keyframe_request(cut) && !plan.take_keyframe_request(cut), "asked for once");
    plan.frame_encoded(vec![end(1), start(2), chunk(3)]);
    assert_eq!(kinds(&run_ok(&mut plan, cut + 5 * MS)), ["end", "begin", "write"], "closed, not joined");
    plan.frame_encoded(vec![chunk(3)]);
    assert!(!plan.take_keyframe_request(cut + 3000 * MS), "later segments keep the encoder's own keyframes");
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.segments_published, s.segments_joined), (1, 0));
}

/// The command out when the swap comes is given up with the old channel; its answer comes
/// back late, tagged with the old channel's number, and changes nothing, whatever it says.
#[test]
fn a_late_answer_from_the_old_channel_is_ignored() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(10), chunk(20)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done_on(0, Ok(()), t0);
    assert!(matches!(plan.poll_writer(t0), Some(WriterCommand::Write(b)) if b.len() == 10));
    plan.channel_replaced(t0).unwrap();
    assert_eq!(plan.channel(), 1);
    plan.frame_encoded(vec![end(0), start(1), chunk(7)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin), "the 20 bytes and the end drained");
    let before = plan.stats(&Default::default(), Default::default());
    plan.writer_done_on(0, Err(failed(0)), t0 + MS);
    plan.writer_done_on(0, Ok(()), t0 + MS);
    assert_eq!(plan.stats(&Default::default(), Default::default()), before);
    assert_eq!(plan.health().consecutive_failed, 0);
    assert_eq!(plan.poll_writer(t0 + MS), None, "the new channel's Begin is still out");
    plan.writer_done_on(1, Ok(()), t0 + 2 * MS);
    assert!(matches!(plan.poll_writer(t0 + 2 * MS), Some(WriterCommand::Write(b)) if b.len() == 7));
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.segments_failed, s.bytes_drained, s.bytes_encoded), (1, 30, 37));
}

/// With `AwaitReplacement`, a lost channel neither ends the stream nor sends anything more:
/// frames are still encoded and their media segments drained until a new channel comes, which
/// takes the next media segment.
#[test]
fn after_a_loss_the_stream_waits_for_a_new_channel_and_goes_on_there() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0).with_channel_loss(ChannelLoss::AwaitReplacement);
    plan.frame_encoded(vec![start(0), chunk(4)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done(Ok(()), t0);
    assert!(plan.poll_writer(t0).is_some());
    let gone = TrickleError::ChannelNotFound { url: "http://a/ai/trickle/x".into() };
    plan.writer_done(Err(gone.clone()), t0);
    assert!(!plan.is_terminal() && plan.encoder_ready());
    let h = plan.health();
    assert_eq!(
        (h.lost.clone(), h.last_failure, h.consecutive_failed),
        (Some(gone), Some(SegmentFailure::ChannelGone), 1)
    );
    plan.frame_sent();
    plan.frame_encoded(vec![chunk(3), end(0), start(1), chunk(5), end(1), start(2), chunk(2)]);
    assert_eq!(run_ok(&mut plan, t0 + 5000 * MS), [], "no segment is opened on a lost channel");
    assert_eq!(plan.next_deadline(), None);
    plan.channel_replaced(t0 + 6000 * MS).unwrap();
    assert_eq!(plan.health().lost, None);
    plan.frame_encoded(vec![chunk(1), end(2), start(3), chunk(6)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 6010 * MS)), ["begin", "write"]);
    plan.finish();
    assert!(plan.flush_due());
    plan.flush_sent();
    plan.flushed(vec![end(3)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0 + 6020 * MS)), ["end"]);
    assert!(plan.is_done());
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.bytes_encoded, s.bytes_published, s.bytes_drained), (21, 6, 15));
    assert_eq!((s.channel_swaps, s.segments_failed, s.terminal_error), (1, 1, None));
}

#[test]
fn by_default_a_lost_channel_ends_the_stream_and_no_new_one_is_taken() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0), chunk(4)]);
    assert_eq!(plan.poll_writer(t0), Some(WriterCommand::Begin));
    plan.writer_done(Ok(()), t0);
    assert!(plan.poll_writer(t0).is_some());
    plan.writer_done(Err(TrickleError::EndOfStream), t0);
    assert!(plan.is_terminal());
    assert_eq!(plan.health().lost, Some(TrickleError::EndOfStream));
    assert!(plan.channel_replaced(t0).is_err());
    assert_eq!(plan.stats(&Default::default(), Default::default()).channel_swaps, 0);
}

/// An idle cutover's reopen was meant for the old channel: after a swap the rest of the media
/// segment is drained instead of opening a segment that would start without a keyframe.
#[test]
fn a_swap_during_an_idle_cutover_drops_the_reopen() {
    let t0 = Instant::now();
    let mut plan = StreamPlan::new(timing(), t0);
    plan.frame_encoded(vec![start(0)]);
    assert_eq!(kinds(&run_ok(&mut plan, t0)), ["begin"]);
    let deadline = plan.next_deadline().unwrap();
    plan.on_deadline(deadline);
    assert_eq!(plan.poll_writer(deadline), Some(WriterCommand::End));
    plan.channel_replaced(deadline).unwrap();
    plan.writer_done_on(0, Ok(()), deadline); // the old End's answer: ignored, no reopen
    plan.frame_encoded(vec![chunk(9)]);
    assert_eq!(run_ok(&mut plan, deadline), []);
    plan.frame_encoded(vec![end(0), start(1), chunk(2)]);
    assert_eq!(kinds(&run_ok(&mut plan, deadline)), ["begin", "write"]);
    let s = plan.stats(&Default::default(), Default::default());
    assert_eq!((s.segments_published, s.segments_failed, s.bytes_drained), (0, 1, 9));
}

/// One step of a random script.
#[derive(Debug, Clone)]
enum Event {
    /// The caller offers a frame.
    Offer,
    /// The encoder takes a frame (if it may) and answers: `ok`, and whether a new media
    /// segment starts at it.
    Encode { ok: bool, keyframe: bool, bytes: usize },
    /// The writer answers: a replaced channel's writer first (late), else the pending command.
    Writer { ok: bool, terminal: bool },
    /// Time passes.
    Wait(u64),
    /// The stream moves to a new channel.
    Swap,
    /// The caller offers an audio frame.
    OfferAudio,
    /// With no video queued, the encoder takes the queued audio alone (if it may); `ok` says
    /// whether it encodes it or refuses it all.
    EncodeAudio { ok: bool },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::Offer),
        3 => (prop::bool::weighted(0.95), prop::bool::weighted(0.2), 1usize..2000)
            .prop_map(|(ok, keyframe, bytes)| Event::Encode { ok, keyframe, bytes }),
        4 => (prop::bool::weighted(0.85), prop::bool::weighted(0.02))
            .prop_map(|(ok, terminal)| Event::Writer { ok, terminal }),
        1 => (1u64..3000).prop_map(Event::Wait),
        1 => Just(Event::Swap),
        3 => Just(Event::OfferAudio),
        1 => prop::bool::weighted(0.9).prop_map(|ok| Event::EncodeAudio { ok }),
    ]
}

/// A stream driven by a script: a real frame queue, a fake encoder, a writer that answers as
/// told, and a clock that moves only when told.
struct Sim {
    plan: StreamPlan,
    queue: FrameQueue,
    pattern: TestPattern,
    next_frame: u64,
    segment: u64,
    in_segment: bool,
    now: Instant,
    /// The writer command waiting for its answer.
    busy: bool,
    /// Channels replaced while a command was out: their answers are still to come.
    late: Vec<u32>,
    /// Swaps the plan took.
    swaps: u32,
    /// The audio queue: frames waiting, and its totals.
    audio_queued: u64,
    audio_queue: AudioQueueCounts,
}

/// Audio frames the simulated audio queue holds before it drops its oldest.
const AUDIO_CAPACITY: u64 = 3;

impl Sim {
    fn new(on_loss: ChannelLoss) -> Sim {
        let now = Instant::now();
        Sim {
            plan: StreamPlan::new(timing(), now).with_channel_loss(on_loss),
            queue: FrameQueue::new(4).unwrap(),
            pattern: TestPattern::new(16, 16, Rational::new(30, 1)).unwrap(),
            next_frame: 0,
            segment: 0,
            in_segment: false,
            now,
            busy: false,
            late: Vec::new(),
            swaps: 0,
            audio_queued: 0,
            audio_queue: AudioQueueCounts::default(),
        }
    }

    fn poll(&mut self) {
        if !self.busy && self.plan.poll_writer(self.now).is_some() {
            self.busy = true;
        }
    }

    fn encode(&mut self, ok: bool, keyframe: bool, bytes: usize) {
        if !self.plan.encoder_ready() {
            return;
        }
        let Some(frame) = self.queue.pop() else { return };
        self.plan.frame_sent();
        // The queued audio goes with the frame, and is encoded whatever becomes of the frame.
        let audio = std::mem::take(&mut self.audio_queued);
        self.plan.audio_counted(AudioCounts { frames_encoded: audio, frames_refused: 0 });
        if !ok {
            self.plan.frame_refused();
            self.plan.audio_encoded(Vec::new());
            return;
        }
        self.queue.record_encode(frame.pts_90k(), MS);
        // A requested keyframe starts a media segment, as the encoder's segmenter cuts there.
        let keyframe = self.plan.take_keyframe_request(self.now) || keyframe;
        let mut events = Vec::new();
        if keyframe || !self.in_segment {
            if self.in_segment {
                events.push(end(self.segment));
                self.segment += 1;
            }
            events.push(start(self.segment));
            self.in_segment = true;
        }
        events.push(chunk(bytes));
        self.plan.frame_encoded(events);
    }

    /// An audio-only job, as the driver sends one when no frame is queued.
    fn encode_audio(&mut self, ok: bool) {
        if !self.plan.encoder_ready() || !self.queue.is_empty() || self.audio_queued == 0 {
            return;
        }
        self.plan.audio_sent();
        let n = std::mem::take(&mut self.audio_queued);
        let counts = if ok {
            AudioCounts { frames_encoded: n, frames_refused: 0 }
        } else {
            AudioCounts { frames_encoded: 0, frames_refused: n }
        };
        self.plan.audio_counted(counts);
        // Audio packets wait in the segmenter for the next video keyframe: no events here.
        self.plan.audio_encoded(Vec::new());
    }

    fn apply(&mut self, e: Event) {
        match e {
            Event::OfferAudio => {
                self.audio_queue.frames_in += 1;
                if self.audio_queued == AUDIO_CAPACITY {
                    self.audio_queue.dropped_overflow += 1;
                } else {
                    self.audio_queued += 1;
                }
            }
            Event::EncodeAudio { ok } => self.encode_audio(ok),
            Event::Offer => {
                self.queue.push(self.pattern.frame(self.next_frame));
                self.next_frame += 1;
            }
            Event::Encode { ok, keyframe, bytes } => self.encode(ok, keyframe, bytes),
            Event::Writer { ok, terminal } => {
                let r = match (ok, terminal) {
                    (true, _) => Ok(()),
                    (false, false) => Err(failed(-1)),
                    (false, true) => Err(TrickleError::Terminal { consecutive_failures: 3 }),
                };
                if let Some(old) = self.late.pop() {
                    let before = (self.stats(), self.plan.health().clone());
                    self.plan.writer_done_on(old, r, self.now);
                    let after = (self.stats(), self.plan.health().clone());
                    assert_eq!(before, after, "a late answer changed the plan");
                } else if self.busy {
                    self.busy = false;
                    self.plan.writer_done_on(self.plan.channel(), r, self.now);
                }
            }
            Event::Swap => {
                let old = self.plan.channel();
                if self.plan.channel_replaced(self.now).is_ok() {
                    self.swaps += 1;
                    if std::mem::take(&mut self.busy) {
                        self.late.push(old);
                    }
                }
            }
            Event::Wait(ms) => {
                self.now += Duration::from_millis(ms);
                self.plan.on_deadline(self.now);
            }
        }
        self.poll();
    }

    /// Finishes as the driver does: encode what is queued, flush, answer the writer until done.
    fn finish(&mut self) {
        self.plan.finish();
        for _ in 0..10_000 {
            if self.plan.is_done() {
                break;
            }
            if self.busy {
                self.busy = false;
                self.plan.writer_done_on(self.plan.channel(), Ok(()), self.now);
            } else if self.plan.encoder_ready() && !self.queue.is_empty() {
                self.encode(true, false, 100);
            } else if self.plan.encoder_ready() && self.audio_queued > 0 {
                self.encode_audio(true);
            } else if self.plan.flush_due() {
                self.plan.flush_sent();
                let last = if self.in_segment { vec![end(self.segment)] } else { vec![] };
                self.plan.flushed(last);
            }
            self.poll();
        }
        assert!(self.plan.is_done(), "the plan never finished");
        for old in std::mem::take(&mut self.late) {
            self.plan.writer_done_on(old, Err(failed(-1)), self.now);
        }
        assert!(self.plan.is_done(), "a late answer reopened the plan");
        if self.plan.is_terminal() {
            let mut n = 0;
            while self.queue.pop().is_some() {
                n += 1;
            }
            self.plan.frames_abandoned(n, std::mem::take(&mut self.audio_queued));
        }
    }

    fn stats(&self) -> MediaStats {
        self.plan.stats(&self.queue.stats(), self.audio_queue)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens, every frame (video and audio) and byte ends up somewhere, once.
    #[test]
    fn every_frame_and_byte_is_accounted_for(
        script in prop::collection::vec(event(), 0..300),
        await_replacement in any::<bool>(),
    ) {
        let on_loss = if await_replacement { ChannelLoss::AwaitReplacement } else { ChannelLoss::EndStream };
        let mut sim = Sim::new(on_loss);
        for e in script {
            sim.apply(e);
        }
        sim.finish();
        let s = sim.stats();
        prop_assert_eq!(s.frames_in, s.frames_encoded + s.frames_dropped, "{:?}", s);
        prop_assert_eq!(s.frames_dropped, s.drops.total());
        prop_assert_eq!(s.bytes_encoded, s.bytes_published + s.bytes_drained, "{:?}", s);
        let a = s.audio;
        prop_assert_eq!(a.frames_in, a.frames_encoded + a.frames_dropped_overflow + a.frames_refused, "{:?}", a);
        prop_assert!(s.segments_published + s.segments_failed >= u64::from(s.bytes_published > 0));
        prop_assert_eq!(s.channel_swaps, sim.swaps);
        if await_replacement {
            prop_assert_eq!(s.terminal_error, None, "a lost channel ended a stream told to wait");
        }
    }
}
