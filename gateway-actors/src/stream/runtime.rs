//! The shared runtime every video stream runs on, started once per process: a fixed set of
//! actix arbiters for the streams' actors and a fixed CPU pool for their encoders, both sized
//! by the machine's cores. Threads do not grow with the number of streams: a stream is an actor
//! on one of the arbiters, and its encoder borrows a CPU worker one frame at a time.
//!
//! The CPU pool is a `SyncArbiter`. Its queue is unbounded, so admission lives with the
//! streams: each keeps at most one frame at the pool, so the queue never holds more jobs than
//! there are streams.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use actix::prelude::*;
use gateway_media::encoder::EncodeError;
use gateway_media::segmenter::SegmentEvent;
use gateway_media::{AudioFrame, VideoFrame};

use super::encoder::{EncodedAudio, EncodedFrame, StreamEncoder};

/// Arbiters and CPU workers of the shared runtime (each at least one).
fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1)
}

/// The process's media runtime.
pub(crate) struct MediaRuntime {
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    cpu: Addr<CpuWorker>,
    cpu_workers: usize,
}

static SHARED: OnceLock<Result<MediaRuntime, String>> = OnceLock::new();

impl MediaRuntime {
    /// The shared runtime, started on first use. `Err` says why it could not start.
    pub(crate) fn shared() -> Result<&'static MediaRuntime, String> {
        SHARED.get_or_init(|| MediaRuntime::start(threads())).as_ref().map_err(Clone::clone)
    }

    fn start(threads: usize) -> Result<MediaRuntime, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("livepeer-media".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    // This thread's arbiter is the first; the others get threads of their own.
                    let mut arbiters = vec![Arbiter::current()];
                    arbiters.extend((1..threads).map(|_| Arbiter::new().handle()));
                    let cpu = SyncArbiter::start(threads, || CpuWorker);
                    let _ = tx.send((arbiters, cpu));
                });
                let _ = system.run();
            })
            .map_err(|e| format!("cannot start the media runtime: {e}"))?;
        let (arbiters, cpu) = rx.recv().map_err(|_| "the media runtime did not start".to_owned())?;
        Ok(MediaRuntime { arbiters, next: AtomicUsize::new(0), cpu, cpu_workers: threads })
    }

    /// Threads the runtime runs: its arbiters (the first on the runtime's own thread) and the
    /// CPU pool's workers.
    pub(crate) fn thread_count(&self) -> usize {
        self.arbiters.len() + self.cpu_workers
    }

    /// The arbiter for the next stream (round robin).
    pub(crate) fn arbiter(&self) -> ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        self.arbiters[i].clone()
    }

    /// The CPU pool.
    pub(crate) fn cpu(&self) -> &Addr<CpuWorker> {
        &self.cpu
    }
}

/// A CPU worker of the pool: runs whatever encoder it is lent, and hands it back.
pub(crate) struct CpuWorker;

impl Actor for CpuWorker {
    type Context = SyncContext<Self>;
}

/// Encode one frame with a lent encoder.
#[derive(Message)]
#[rtype(result = "(StreamEncoder, EncodedFrame)")]
pub(crate) struct EncodeFrame {
    pub(crate) encoder: StreamEncoder,
    pub(crate) frame: VideoFrame,
    /// Audio frames queued with it, encoded first.
    pub(crate) audio: Vec<AudioFrame>,
}

/// Encode audio frames with a lent encoder (no video frame was waiting).
#[derive(Message)]
#[rtype(result = "(StreamEncoder, EncodedAudio)")]
pub(crate) struct EncodeAudio {
    pub(crate) encoder: StreamEncoder,
    pub(crate) audio: Vec<AudioFrame>,
}

impl Handler<EncodeAudio> for CpuWorker {
    type Result = MessageResult<EncodeAudio>;
    fn handle(&mut self, msg: EncodeAudio, _: &mut SyncContext<Self>) -> Self::Result {
        let EncodeAudio { mut encoder, audio } = msg;
        let result = encoder.encode_audio(audio);
        MessageResult((encoder, result))
    }
}

/// Drain a lent encoder and close its last segment.
#[derive(Message)]
#[rtype(result = "(StreamEncoder, Result<Vec<SegmentEvent>, EncodeError>)")]
pub(crate) struct FlushEncoder {
    pub(crate) encoder: StreamEncoder,
}

impl Handler<EncodeFrame> for CpuWorker {
    type Result = MessageResult<EncodeFrame>;
    fn handle(&mut self, msg: EncodeFrame, _: &mut SyncContext<Self>) -> Self::Result {
        let EncodeFrame { mut encoder, frame, audio } = msg;
        let result = encoder.encode(frame, audio);
        MessageResult((encoder, result))
    }
}

impl Handler<FlushEncoder> for CpuWorker {
    type Result = MessageResult<FlushEncoder>;
    fn handle(&mut self, msg: FlushEncoder, _: &mut SyncContext<Self>) -> Self::Result {
        let FlushEncoder { mut encoder } = msg;
        let result = encoder.flush();
        MessageResult((encoder, result))
    }
}
