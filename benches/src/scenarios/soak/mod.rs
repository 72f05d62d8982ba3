//! The soak: many live streams for minutes through the real gateway path against the server
//! child, with faults injected at random from a seeded schedule, checking at the end that every
//! frame and byte is accounted for, that the client's memory stayed flat and that nothing
//! leaked (`throughput --soak --seconds 300 --streams 100 --seed 42`).
//!
//! Load per stream, small enough for 100 of them on 2 shared cores:
//! - **frame streams** (4 in 5): the test pattern at [`WIDTH`]x[`HEIGHT`], [`FPS`] fps, through
//!   the SDK's `VideoPublisher` (frame queue, openh264 at [`BITRATE`], MPEG-TS segmenter with
//!   1 s keyframe segments, supervised `SegmentWriter`, `TricklePublisher`);
//! - **segment streams** (1 in 5): a bare `TricklePublisher` writing one segment per second of
//!   [`CHUNKS_PER_SEGMENT`] chunks of [`CHUNK_BYTES`] (no encoder: cheaper, and their segments
//!   are larger than a frame stream's, so faults land at other points of a body);
//! - every 4th stream also has a `TrickleSubscriber` reading its channel back.
//!
//! Each stream slot runs *sessions* back to back: a session owns a fresh channel and HTTP
//! client, and ends at the deadline or when its publisher gives up (404, channel closed, too
//! many failures in a row); the slot then starts a new one, as a service would start a new job.
//!
//! Faults come from [`schedule`], a pure function of (seed, streams, seconds): the same seed
//! gives the same schedule. Each is aimed at whatever session holds its slot when it fires,
//! through the server child's admin API (see [`FaultKind`] for the kinds).
//!
//! Checks (any failure names the session and makes the run fail): the accounting equations of
//! [`SessionRecord::problems`], RSS flat within [`RSS_TOLERANCE_PCT`] % or [`RSS_TOLERANCE_MIB`]
//! MiB between the first and last window after warm-up, and at the end no open channel, POST,
//! GET or connection on the server and no task, thread or descriptor left in the client.

mod inject;
mod memory;
mod schedule;
mod sessions;
mod summary;
pub mod swaps;
#[cfg(test)]
mod tests;

pub use inject::InjectionCounts;
pub use memory::{memory_verdict, proc_sample, MemoryVerdict, ProcSample};
pub use schedule::{
    count_by_kind, fingerprint, has_subscriber, is_segment_stream, schedule, FaultKind, ScheduledFault,
    SplitMix64,
};
pub use sessions::{SessionRecord, SubscriberRecord};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_media::h264_pool::PoolStats;
use gateway_media::{H264EncoderPool, Rational, TestPattern};
use gateway_testkit::trickle_server::{ChannelTotals, TrickleServerStats, ADMIN_PATH};
use tokio::time::Instant;

use crate::servers::{ServerAddrs, ServerProcess, CONNECTIONS_PATH};
use crate::sys::{cpu_seconds, raise_fd_limit};
use inject::inject;
use sessions::{run_slot, Ctx};

/// Frame size of frame streams.
pub const WIDTH: u32 = 160;
/// Frame height of frame streams.
pub const HEIGHT: u32 = 96;
/// Frame rate of frame streams.
pub const FPS: u32 = 10;
/// Encoder bitrate of frame streams.
pub const BITRATE: u32 = 150_000;
/// Chunks per segment of segment streams (one segment per second).
pub const CHUNKS_PER_SEGMENT: u32 = 8;
/// Bytes per chunk of segment streams.
pub const CHUNK_BYTES: usize = 4096;
/// The publishers' stall timeout (the library's default is 5 s; shorter makes stalls cheaper).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on finishing a session (flush, last segment, DELETEs of failed segments).
pub const FINISH_BOUND: Duration = Duration::from_secs(30);
/// How long a subscriber may take to end after its channel is deleted.
pub const SUBSCRIBER_BOUND: Duration = Duration::from_secs(15);
/// Mean time between two faults on the same stream.
pub const MEAN_FAULT_GAP_PER_STREAM: Duration = Duration::from_secs(20);
/// RSS may grow by this many percent from the first to the last window...
pub const RSS_TOLERANCE_PCT: f64 = 10.0;
/// ...or by this many MiB, whichever is larger.
pub const RSS_TOLERANCE_MIB: f64 = 16.0;

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct SoakConfig {
    /// Concurrent stream slots.
    pub streams: usize,
    /// Length of the run.
    pub seconds: f64,
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Allowed RSS growth in MiB (the larger of this and [`RSS_TOLERANCE_PCT`] % is used);
    /// [`RSS_TOLERANCE_MIB`] by default.
    pub rss_tolerance_mib: f64,
}

/// Everything a run measured and every check that failed.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// The configuration.
    pub streams: usize,
    /// Seconds of streaming.
    pub seconds: f64,
    /// The seed.
    pub seed: u64,
    /// Schedule fingerprint.
    pub fingerprint: u64,
    /// Scheduled faults per kind.
    pub scheduled: BTreeMap<FaultKind, u64>,
    /// Applied and skipped faults.
    pub injected: InjectionCounts,
    /// Every session.
    pub sessions: Vec<SessionRecord>,
    /// Client samples, one a second.
    pub samples: Vec<ProcSample>,
    /// The memory verdict.
    pub memory: MemoryVerdict,
    /// Client CPU seconds over the run.
    pub client_cpu_s: f64,
    /// Server child CPU seconds over the run.
    pub server_cpu_s: f64,
    /// Wall seconds from start to the end of teardown.
    pub wall_s: f64,
    /// The server's counters after teardown.
    pub server_after: TrickleServerStats,
    /// Open connections on the server after teardown (the admin call's own included).
    pub server_connections_after: usize,
    /// Client before the streams and after teardown.
    pub client_before: ProcSample,
    /// The shared H.264 encoder pool after teardown (sessions that reused an encoder).
    pub encoders: PoolStats,
    /// Client after teardown.
    pub client_after: ProcSample,
    /// Tokio tasks alive before the streams / after teardown.
    pub tasks_before: usize,
    /// Tokio tasks alive after teardown.
    pub tasks_after: usize,
    /// Every failed check.
    pub failures: Vec<String>,
}

/// Runs the soak against the server child.
pub fn run(server: &ServerProcess, config: SoakConfig) -> anyhow::Result<SoakReport> {
    raise_fd_limit();
    anyhow::ensure!(config.streams >= 1, "at least one stream");
    anyhow::ensure!(config.seconds >= 10.0, "a soak lasts at least 10 s");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let server_cpu0 = server.cpu_seconds();
    let report = rt.block_on(run_async(&server.addrs, config))?;
    let mut report = report;
    report.server_cpu_s = server.cpu_seconds() - server_cpu0;
    drop(rt);
    Ok(report)
}

async fn run_async(addrs: &ServerAddrs, config: SoakConfig) -> anyhow::Result<SoakReport> {
    let faults = schedule(config.seed, config.streams, config.seconds);
    let pattern = TestPattern::new(WIDTH, HEIGHT, Rational::new(FPS, 1))?;
    let control = reqwest::Client::builder().pool_max_idle_per_host(4).build()?;
    // The media runtime's threads are fixed for the process (sized by cores), not per stream:
    // start it first so the leak check below counts them in the baseline.
    gateway_actors::media::start_media_runtime()?;
    let tasks_before = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let client_before = proc_sample(0.0);
    let started = Instant::now() + Duration::from_millis(100);
    let ctx = Arc::new(Ctx {
        base: addrs.trickle_base(),
        admin: format!("http://{}{ADMIN_PATH}", addrs.trickle),
        control: control.clone(),
        clip: (0..u64::from(FPS) * 2).map(|i| pattern.frame(i)).collect(),
        started,
        deadline: started + Duration::from_secs_f64(config.seconds),
        current: Mutex::new(vec![None; config.streams]),
        slow_until_ms: (0..config.streams).map(|_| AtomicU64::new(0)).collect(),
    });

    // One sample a second on a plain thread, so a busy runtime does not skew the timing.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (sampling, t0) = (sampling.clone(), std::time::Instant::now());
        std::thread::spawn(move || {
            let mut out = Vec::new();
            while sampling.load(Ordering::Relaxed) {
                out.push(proc_sample(t0.elapsed().as_secs_f64()));
                std::thread::sleep(Duration::from_secs(1));
            }
            out
        })
    };
    let cpu0 = cpu_seconds();
    let injector = tokio::spawn(inject(ctx.clone(), faults.clone()));
    let mut slots = Vec::with_capacity(config.streams);
    for slot in 0..config.streams {
        let ctx = ctx.clone();
        // Staggered over the first second, so segment boundaries do not line up.
        let delay = Duration::from_secs(1).mul_f64(slot as f64 / config.streams as f64);
        slots.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            run_slot(ctx, slot).await
        }));
    }
    let mut failures = Vec::new();
    let bound = ctx.deadline + FINISH_BOUND + SUBSCRIBER_BOUND + Duration::from_secs(20);
    let mut sessions = collect_slots(slots, ctx.deadline, bound, &mut failures).await;
    let injected = injector.await.unwrap_or_default();
    let client_cpu_s = cpu_seconds() - cpu0;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let memory = memory_verdict(&samples, config.seconds, config.rss_tolerance_mib);

    // Teardown checks: the server must have nothing open...
    let stats_url = format!("{}stats", ctx.admin);
    let connections_url = format!("http://{}{CONNECTIONS_PATH}", addrs.trickle);
    let settle_by = Instant::now() + Duration::from_secs(20);
    let (mut server_after, mut server_connections_after);
    loop {
        // A fresh client per look, so its own connection is the only one it adds.
        let look = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
        server_after = match look.get(&stats_url).send().await {
            Ok(r) => r.json::<TrickleServerStats>().await.unwrap_or_default(),
            Err(_) => TrickleServerStats::default(),
        };
        server_connections_after = match look.get(&connections_url).send().await {
            Ok(r) => r.text().await.ok().and_then(|t| t.trim().parse().ok()).unwrap_or(usize::MAX),
            Err(_) => usize::MAX,
        };
        let settled = server_after.channels == 0
            && server_after.active_posts == 0
            && server_after.active_gets == 0
            && server_connections_after <= 1 + CONTROL_POOL;
        if settled || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // ...the server's view of every session, now that nothing is in flight...
    for s in &mut sessions {
        let url = format!("{}{}/totals", ctx.admin, s.channel);
        match control.get(&url).send().await {
            Ok(r) => match r.json::<ChannelTotals>().await {
                Ok(t) => s.server = t,
                Err(e) => s.errors.push(format!("no server totals: {e}")),
            },
            Err(e) => s.errors.push(format!("no server totals: {e}")),
        }
    }

    // ...and the client must have nothing left running once the soak's own clients are gone.
    let wall_s = ctx.started.elapsed().as_secs_f64();
    drop(ctx);
    drop(control);
    let settle_by = Instant::now() + Duration::from_secs(20);
    let (mut tasks_after, mut client_after);
    loop {
        tasks_after = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        client_after = proc_sample(wall_s);
        let settled = tasks_after <= tasks_before
            && client_after.threads <= client_before.threads + THREAD_SLACK
            && client_after.fds <= client_before.fds + FD_SLACK;
        if settled || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for s in &sessions {
        failures.extend(s.problems());
    }
    if !memory.flat() {
        failures.push(format!(
            "client RSS grew from {:.1} MiB to {:.1} MiB (allowed {:.1} MiB)",
            memory.first_mib, memory.last_mib, memory.allowed_mib
        ));
    }
    let mut leak = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    leak(server_after.channels == 0, format!("{} channel(s) left open on the server", server_after.channels));
    leak(
        server_after.active_posts == 0,
        format!("{} POST(s) still open on the server", server_after.active_posts),
    );
    leak(
        server_after.active_gets == 0,
        format!("{} GET(s) still open on the server", server_after.active_gets),
    );
    leak(
        server_connections_after <= 1 + CONTROL_POOL,
        format!(
            "{server_connections_after} connection(s) still open on the server (at most {} are the soak's own)",
            1 + CONTROL_POOL
        ),
    );
    leak(
        tasks_after <= tasks_before,
        format!("{tasks_after} tokio task(s) alive after teardown, {tasks_before} before"),
    );
    leak(
        client_after.threads <= client_before.threads + THREAD_SLACK,
        format!("{} thread(s) after teardown, {} before", client_after.threads, client_before.threads),
    );
    leak(
        client_after.fds <= client_before.fds + FD_SLACK,
        format!("{} open descriptor(s) after teardown, {} before", client_after.fds, client_before.fds),
    );
    let applied: u64 = injected.applied.values().sum();
    leak(applied > 0 || faults.is_empty(), "no fault was applied".into());

    Ok(SoakReport {
        streams: config.streams,
        seconds: config.seconds,
        seed: config.seed,
        fingerprint: fingerprint(&faults),
        scheduled: count_by_kind(&faults),
        injected,
        sessions,
        samples,
        memory,
        client_cpu_s,
        server_cpu_s: 0.0,
        wall_s,
        server_after,
        server_connections_after,
        client_before,
        encoders: H264EncoderPool::shared().stats(),
        client_after,
        tasks_before,
        tasks_after,
        failures,
    })
}

/// Idle connections the soak's control client may keep.
const CONTROL_POOL: usize = 4;
/// Threads allowed above the start (tokio's blocking pool keeps idle threads for 10 s).
const THREAD_SLACK: u64 = 2;
/// Descriptors allowed above the start.
const FD_SLACK: u64 = 2;

/// Waits for each slot's sessions until `bound`; a slot that failed or still runs then (it is
/// aborted) is a failure naming it. Both soaks end this way.
pub(crate) async fn collect_slots<T>(
    slots: Vec<tokio::task::JoinHandle<Vec<T>>>,
    deadline: Instant,
    bound: Instant,
    failures: &mut Vec<String>,
) -> Vec<T> {
    let mut sessions = Vec::new();
    for (slot, task) in slots.into_iter().enumerate() {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(bound, task).await {
            Ok(Ok(records)) => sessions.extend(records),
            Ok(Err(e)) => failures.push(format!("slot {slot}: task failed: {e}")),
            Err(_) => {
                abort.abort();
                failures
                    .push(format!("slot {slot}: still running {:?} after the deadline", bound - deadline));
            }
        }
    }
    sessions
}
