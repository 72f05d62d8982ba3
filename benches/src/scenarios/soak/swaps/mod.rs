//! The soak with orchestrator deaths (issue 15): live streams that move when their
//! orchestrator dies, for minutes, with every session's accounting checked across its swaps
//! (`throughput --soak --swaps --seconds 120 --streams 20 --seed 42`).
//!
//! In this process: a [`LocalNetwork`] of `--orchestrators` orchestrators (plain HTTP,
//! payments through its signer) and a [`Gateway`]. Each of `--streams` slots runs
//! [`LiveStream`](gateway_actors::live::LiveStream)s back to back (LV2V and BYOC in turn, the
//! test pattern at 160x96, 10 fps, an output reader on each), each for a seeded
//! [`SESSION_MIN`]..[`SESSION_MAX`] and then stopped. Meanwhile orchestrators die
//! ([`LocalNetwork::kill`]: port closed, connections cut) and come back as fresh processes
//! ([`LocalNetwork::revive`]) on the schedule of [`deaths`], a pure function of the seed.
//!
//! Checks (each failure names the session or the orchestrator, and fails the run): every
//! session's [`SwapSession::problems`]; every orchestrator's [`Books::problems`] (recurring and
//! start payments the gateway's sessions report against its ledger, serving and running
//! nothing at the end); every scheduled death carried out.

mod checks;
mod deaths;
mod session;
mod summary;
#[cfg(test)]
mod tests;

pub use checks::{gateway_side, Books, GatewaySide};
pub use deaths::{deaths, fewest_serving, room_for, victim, Death, MIN_SERVING};
pub use session::{session_plan, JobKind, SwapSession};

use std::sync::Arc;
use std::time::Duration;

use gateway_actors::{Gateway, GatewayConfig};
use gateway_core::token::NetworkSettings;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use tokio::time::Instant;

use session::{run_slot, SlotCtx};

/// Shortest session.
pub const SESSION_MIN: Duration = Duration::from_secs(8);
/// Longest session (with `deaths::MIN_DEATH_GAP`, at most two deaths fall in one).
pub const SESSION_MAX: Duration = Duration::from_secs(24);
/// Bound on starting or stopping one stream.
pub const FINISH_BOUND: Duration = Duration::from_secs(30);
/// How often jobs pay (LV2V and BYOC alike), so a session makes several payments.
pub const PAYMENT_INTERVAL: Duration = Duration::from_secs(2);
/// How long orchestrators may take to end their sessions after the last stop.
pub const SETTLE_BOUND: Duration = Duration::from_secs(15);

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct SwapSoakConfig {
    /// Concurrent stream slots.
    pub streams: usize,
    /// Length of the run.
    pub seconds: f64,
    /// Seed of the schedules.
    pub seed: u64,
    /// Orchestrators in the network.
    pub orchestrators: usize,
    /// Orchestrator deaths asked for (fewer if the run has no room: see [`room_for`]).
    pub deaths: usize,
}

/// A death as it was carried out.
#[derive(Debug, Clone)]
pub struct DeathLog {
    /// The scheduled death.
    pub death: Death,
    /// How long `kill` took (port closed, connections cut).
    pub kill_took: Duration,
    /// Whether `kill` and `revive` both succeeded.
    pub error: Option<String>,
}

/// Everything the run measured and every check that failed.
#[derive(Debug, Clone, Default)]
pub struct SwapSoakReport {
    /// The configuration.
    pub streams: usize,
    /// Seconds of streaming.
    pub seconds: f64,
    /// The seed.
    pub seed: u64,
    /// Orchestrators.
    pub orchestrators: usize,
    /// Deaths asked for.
    pub deaths_asked: usize,
    /// The deaths, as carried out.
    pub deaths: Vec<DeathLog>,
    /// Every session.
    pub sessions: Vec<SwapSession>,
    /// Every orchestrator's books.
    pub books: Vec<Books>,
    /// Wall seconds from start to the end of the checks.
    pub wall_s: f64,
    /// Every failed check.
    pub failures: Vec<String>,
}

impl SwapSoakReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Runs the swap soak on a runtime of its own.
pub fn run(config: SwapSoakConfig) -> anyhow::Result<SwapSoakReport> {
    anyhow::ensure!(config.streams >= 1, "at least one stream");
    anyhow::ensure!(config.seconds >= 10.0, "a soak lasts at least 10 s");
    anyhow::ensure!(
        config.deaths == 0 || config.orchestrators > MIN_SERVING,
        "orchestrator deaths need more than {MIN_SERVING} orchestrators ({MIN_SERVING} always serve)"
    );
    crate::sys::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = rt.block_on(run_async(config));
    drop(rt);
    report
}

async fn run_async(config: SwapSoakConfig) -> anyhow::Result<SwapSoakReport> {
    let schedule = deaths(config.seed, config.orchestrators, config.seconds, config.deaths);
    let net_config = NetworkConfig { orchestrators: config.orchestrators, tls: false, ..Default::default() };
    let mut net = LocalNetwork::start(net_config).await?;
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let gateway = Gateway::start(GatewayConfig {
        network,
        lv2v_payment_interval: PAYMENT_INTERVAL,
        byoc_payment_interval: PAYMENT_INTERVAL,
        ..Default::default()
    })?;
    let started = Instant::now();
    let ctx = Arc::new(SlotCtx {
        gateway: gateway.clone(),
        seed: config.seed,
        deadline: started + Duration::from_secs_f64(config.seconds),
    });
    let mut slots = Vec::with_capacity(config.streams);
    for slot in 0..config.streams {
        let ctx = ctx.clone();
        // Staggered over the first two seconds, so starts and segments do not line up.
        let delay = Duration::from_secs(2).mul_f64(slot as f64 / config.streams as f64);
        slots.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            run_slot(ctx, slot).await
        }));
    }

    // The deaths, in this task (it owns the network).
    let mut log = Vec::with_capacity(schedule.len());
    let mut failures = Vec::new();
    for planned in &schedule {
        tokio::time::sleep_until(started + planned.at).await;
        let running: Vec<usize> =
            (0..config.orchestrators).map(|i| net.running(i).map_or(0, |r| r.sessions)).collect();
        let death = &Death { orchestrator: victim(planned.orchestrator, &running), ..*planned };
        let t0 = Instant::now();
        let killed = net.kill(death.orchestrator).await;
        let kill_took = t0.elapsed();
        tokio::time::sleep_until(started + death.revive_at()).await;
        let error = match killed {
            Err(e) => Some(format!("kill: {e}")),
            Ok(()) => net.revive(death.orchestrator).await.err().map(|e| format!("revive: {e}")),
        };
        if let Some(e) = &error {
            failures.push(format!("orchestrator {} at {:?}: {e}", death.orchestrator, death.at));
        }
        log.push(DeathLog { death: *death, kill_took, error });
    }

    let bound = ctx.deadline + FINISH_BOUND * 2 + Duration::from_secs(20);
    let sessions = super::collect_slots(slots, ctx.deadline, bound, &mut failures).await;
    drop(ctx);

    // Every stream has stopped: give the orchestrators a moment to end what they ran.
    let settle_by = Instant::now() + SETTLE_BOUND;
    while (0..config.orchestrators).any(|i| !net.running(i).is_some_and(|r| r.is_idle()))
        && Instant::now() < settle_by
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let by_gateway = gateway_side(&sessions);
    let urls: Vec<String> =
        net.orchestrator_urls().iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
    let mut books = Vec::with_capacity(urls.len());
    for (i, url) in urls.iter().enumerate() {
        let side = by_gateway.get(url).cloned().unwrap_or_default();
        books.push(Books {
            url: url.clone(),
            deaths: log.iter().filter(|d| d.death.orchestrator == i).count() as u64,
            gateway_recurring: side.recurring,
            gateway_starts: side.starts,
            gateway_stop_payments: side.stop_payments,
            ledger: net.orchestrators[i].orchestrator.ledger().lines(),
            sessions: side.sessions,
            serving_after: net.is_serving(i),
            running_after: net.running(i).unwrap_or_default(),
        });
    }
    for orch in by_gateway.keys().filter(|o| !urls.contains(o)) {
        failures.push(format!("the gateway's sessions name an orchestrator not in the network: {orch}"));
    }
    gateway.shutdown();
    net.shutdown().await;

    for s in &sessions {
        failures.extend(s.problems());
    }
    for b in &books {
        failures.extend(b.problems());
    }
    if config.deaths > 0 && schedule.is_empty() {
        failures.push(format!("{} deaths asked for, none fits in {} s", config.deaths, config.seconds));
    }
    Ok(SwapSoakReport {
        streams: config.streams,
        seconds: config.seconds,
        seed: config.seed,
        orchestrators: config.orchestrators,
        deaths_asked: config.deaths,
        deaths: log,
        sessions,
        books,
        wall_s: started.elapsed().as_secs_f64(),
        failures,
    })
}
