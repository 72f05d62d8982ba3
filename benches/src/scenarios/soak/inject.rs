//! Fault injection: fires the schedule at whatever session holds each slot, through the
//! server child's admin API.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use gateway_testkit::trickle_server::{FaultMethod, TrickleFault};
use tokio::time::Instant;

use super::schedule::{FaultKind, ScheduledFault};
use super::sessions::Ctx;

/// Faults applied and skipped (their slot was between sessions), per kind.
#[derive(Debug, Clone, Default)]
pub struct InjectionCounts {
    /// Applied through the admin API.
    pub applied: BTreeMap<FaultKind, u64>,
    /// Not applied: no session on the slot, or the admin call failed.
    pub skipped: BTreeMap<FaultKind, u64>,
}

pub(super) async fn inject(ctx: Arc<Ctx>, faults: Vec<ScheduledFault>) -> InjectionCounts {
    let mut counts = InjectionCounts::default();
    for f in faults {
        tokio::time::sleep_until(ctx.started + f.at).await;
        if Instant::now() >= ctx.deadline {
            break;
        }
        let applied = match ctx.current(f.slot) {
            Some(channel) => apply(&ctx, &channel, &f).await,
            None => false,
        };
        let m = if applied { &mut counts.applied } else { &mut counts.skipped };
        *m.entry(f.kind).or_insert(0) += 1;
    }
    counts
}

async fn apply(ctx: &Ctx, channel: &str, f: &ScheduledFault) -> bool {
    let fault = match f.kind {
        FaultKind::StalledBody => TrickleFault::StallSegments { after_bytes: f.param, count: 1 },
        FaultKind::DroppedConnection => TrickleFault::DropSegments { after_bytes: f.param, count: 1 },
        FaultKind::ServerErrorRetried | FaultKind::NotFound => {
            TrickleFault::RespondStatus { method: FaultMethod::Post, status: f.param as u16, count: 1 }
        }
        FaultKind::ServerErrorTwice => {
            TrickleFault::RespondStatus { method: FaultMethod::Post, status: f.param as u16, count: 2 }
        }
        FaultKind::ReaderError => {
            let status = if f.param.is_multiple_of(2) { 470 } else { 500 };
            TrickleFault::RespondStatus { method: FaultMethod::Get, status, count: f.param as u32 }
        }
        FaultKind::SlowReader => TrickleFault::DelayFirstByte(Duration::from_millis(f.param)),
        FaultKind::ChannelClosed => {
            let url = format!("{}{channel}", ctx.base);
            return matches!(ctx.control.delete(url).send().await, Ok(r) if r.status().is_success());
        }
    };
    let ok = set_fault(ctx, channel, &fault).await;
    if ok && f.kind == FaultKind::SlowReader {
        let until = (f.at + f.hold).as_millis() as u64;
        ctx.slow_until_ms[f.slot].store(until, Ordering::Relaxed);
        // Lift the delay when the hold is over (other faults of the channel stay).
        let (control, admin, channel, hold) =
            (ctx.control.clone(), ctx.admin.clone(), channel.to_owned(), f.hold);
        tokio::spawn(async move {
            tokio::time::sleep(hold).await;
            let lift = TrickleFault::DelayFirstByte(Duration::ZERO);
            let _ = control.post(format!("{admin}{channel}/faults")).json(&lift).send().await;
        });
    }
    ok
}

async fn set_fault(ctx: &Ctx, channel: &str, fault: &TrickleFault) -> bool {
    let url = format!("{}{channel}/faults", ctx.admin);
    matches!(ctx.control.post(url).json(fault).send().await, Ok(r) if r.status().is_success())
}
