//! The schedule of orchestrator deaths: a pure function of (seed, orchestrators, seconds,
//! deaths). Each death is followed by a revive after a seeded downtime; at least
//! [`MIN_SERVING`] orchestrators serve at every instant; deaths are at least [`MIN_DEATH_GAP`]
//! apart, so a session (at most [`super::SESSION_MAX`] long) sees at most two of them and
//! stays within go's LV2V swap budget (two swaps in 180 s); every orchestrator is back
//! [`QUIET_TAIL`] before the end, so the last swaps play out before the checks.

use std::time::Duration;

use serde::Serialize;

use super::super::SplitMix64;

/// Orchestrators that serve at every instant.
pub const MIN_SERVING: usize = 2;
/// No death before this (every slot has started its first session).
pub const DEATHS_FROM: Duration = Duration::from_secs(5);
/// Every orchestrator is serving again this long before the end.
pub const QUIET_TAIL: Duration = Duration::from_secs(6);
/// Shortest time between two deaths.
pub const MIN_DEATH_GAP: Duration = Duration::from_secs(13);
/// Shortest downtime.
pub const DOWNTIME_MIN: Duration = Duration::from_secs(2);
/// Longest downtime.
pub const DOWNTIME_MAX: Duration = Duration::from_secs(6);

/// One death: orchestrator `orchestrator` is killed at `at` and revived `downtime` later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Death {
    /// From the start of the run.
    pub at: Duration,
    /// Orchestrator index.
    pub orchestrator: usize,
    /// Dead for this long.
    pub downtime: Duration,
}

impl Death {
    /// When it is revived.
    pub fn revive_at(&self) -> Duration {
        self.at + self.downtime
    }
}

/// Deaths the run has room for: fewer than asked when `seconds` is short, none with fewer
/// than `MIN_SERVING + 1` orchestrators.
pub fn room_for(orchestrators: usize, seconds: f64) -> usize {
    if orchestrators <= MIN_SERVING {
        return 0;
    }
    let window = seconds - DEATHS_FROM.as_secs_f64() - QUIET_TAIL.as_secs_f64() - DOWNTIME_MAX.as_secs_f64();
    if window < 0.0 {
        return 0;
    }
    1 + (window / MIN_DEATH_GAP.as_secs_f64()) as usize
}

/// The schedule: `deaths` deaths (at most [`room_for`]), sorted by time. Deaths are spread
/// evenly over the window with seeded jitter; each kills a seeded orchestrator among those
/// serving whose death leaves at least [`MIN_SERVING`] serving; the run may hit another
/// at that moment (see [`victim`]).
pub fn deaths(seed: u64, orchestrators: usize, seconds: f64, deaths: usize) -> Vec<Death> {
    let n = deaths.min(room_for(orchestrators, seconds));
    if n == 0 {
        return Vec::new();
    }
    let mut rng = SplitMix64::new(seed ^ 0xD1E5_0F0C_4E57_0001);
    let from = DEATHS_FROM.as_secs_f64();
    let last = seconds - QUIET_TAIL.as_secs_f64() - DOWNTIME_MAX.as_secs_f64();
    let gap = MIN_DEATH_GAP.as_secs_f64();
    // Even slots no closer than the minimum gap; the jitter keeps them apart.
    let step = ((last - from) / n as f64).max(gap);
    let slack = step - gap;
    let mut out: Vec<Death> = Vec::with_capacity(n);
    for i in 0..n {
        let at = from + i as f64 * step + slack * rng.unit();
        if at > last {
            break;
        }
        let at = Duration::from_millis((at * 1000.0) as u64);
        let serving: Vec<usize> = (0..orchestrators)
            .filter(|&o| !out.iter().any(|d| d.orchestrator == o && d.at <= at && at < d.revive_at()))
            .collect();
        if serving.len() <= MIN_SERVING {
            // Not with the minimum gap and downtime as they are; kept for safety.
            continue;
        }
        let orchestrator = serving[rng.range(0, serving.len() as u64) as usize];
        let downtime = Duration::from_millis(
            rng.range(DOWNTIME_MIN.as_millis() as u64, DOWNTIME_MAX.as_millis() as u64 + 1),
        );
        out.push(Death { at, orchestrator, downtime });
    }
    out
}

/// Who dies when a death comes: the orchestrator running the most sessions (`running[i]`),
/// since a death that hits no stream tests nothing; ties go to the `seeded` one, then to the
/// lowest index. Deaths never overlap (the gap is longer than any downtime), so any victim
/// leaves [`MIN_SERVING`] serving.
pub fn victim(seeded: usize, running: &[usize]) -> usize {
    let most = running.iter().copied().max().unwrap_or(0);
    if running.get(seeded) == Some(&most) {
        return seeded;
    }
    running.iter().position(|&r| r == most).unwrap_or(seeded)
}

/// The fewest orchestrators serving at any instant of `schedule` (checked at every death).
pub fn fewest_serving(schedule: &[Death], orchestrators: usize) -> usize {
    schedule
        .iter()
        .map(|d| {
            let dead = schedule.iter().filter(|o| o.at <= d.at && d.at < o.revive_at()).count();
            orchestrators.saturating_sub(dead)
        })
        .min()
        .unwrap_or(orchestrators)
}
