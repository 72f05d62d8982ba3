//! The swap soak's checks: each session's accounting across its swaps (frames, bytes, the
//! chain of orchestrators and payments), and each orchestrator's books (what the gateway's
//! sessions say they paid it against what its ledger received). Every failure names the
//! session, or the orchestrator and the sessions that ran on it.

use std::collections::BTreeMap;

use gateway_actors::live::StreamEnd;
use gateway_testkit::orchestrator::{LedgerLine, PaymentRoute, Running};

use super::session::SwapSession;
use crate::scenarios::soak::sessions::media_accounting;

impl SwapSession {
    /// Every equation of this session that does not hold, as a sentence naming it.
    ///
    /// Frames submitted = frames in = encoded + dropped, dropped = the sum of the reasons,
    /// bytes encoded = published + drained (the totals span every orchestrator the stream ran
    /// on); the stream ended only by its stop; one payment record per orchestrator it ran on,
    /// its swaps chained (each leaves where the last one arrived, for another orchestrator)
    /// and the frames and bytes its swaps lost within the totals.
    pub fn problems(&self) -> Vec<String> {
        let id = &self.id;
        let mut out: Vec<String> = self.errors.iter().map(|e| format!("{id}: {e}")).collect();
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(format!("{id}: {what}"));
            }
        };
        let Some(status) = &self.status else {
            check(!self.errors.is_empty(), "no status and no error".into());
            return out;
        };
        match &status.ended {
            Some(StreamEnd::Stopped) => {}
            Some(end) => check(false, format!("ended by itself: {end}")),
            None => check(false, "not ended after its stop".into()),
        }
        if let Some(refused) = &self.refused {
            check(false, format!("a frame was refused: {refused}"));
        }
        match &self.media {
            None => check(false, "no video totals".into()),
            Some(m) => {
                for what in media_accounting(self.frames_submitted, m) {
                    check(false, what);
                }
                let dropped: u64 = status.swaps.iter().map(|s| s.frames_dropped).sum();
                let drained: u64 = status.swaps.iter().map(|s| s.bytes_drained).sum();
                check(
                    dropped <= m.frames_dropped && drained <= m.bytes_drained,
                    format!(
                        "its swaps lost {dropped} frames and {drained} bytes, the totals say {} and {}",
                        m.frames_dropped, m.bytes_drained
                    ),
                );
                check(
                    m.channel_swaps as usize <= status.swaps.len(),
                    format!("the video moved {} times in {} swaps", m.channel_swaps, status.swaps.len()),
                );
            }
        }
        check(
            status.generation as usize == status.swaps.len(),
            format!("generation {} after {} swaps", status.generation, status.swaps.len()),
        );
        check(
            status.payments.len() == status.swaps.len() + 1,
            format!(
                "{} payment records for {} orchestrators run on",
                status.payments.len(),
                status.swaps.len() + 1
            ),
        );
        let path = self.orchestrators();
        for (k, swap) in status.swaps.iter().enumerate() {
            check(swap.from != swap.to, format!("swap {k} ({}) went back to {}", swap.reason, swap.from));
            if k > 0 {
                check(
                    swap.from == status.swaps[k - 1].to,
                    format!("swap {k} left {} but the stream was on {}", swap.from, status.swaps[k - 1].to),
                );
            }
        }
        for (k, (orch, _)) in status.payments.iter().enumerate() {
            check(
                path.get(k) == Some(orch),
                format!(
                    "payment record {k} is for {orch}, the stream's orchestrator {k} was {:?}",
                    path.get(k)
                ),
            );
        }
        out
    }

    /// The orchestrators the stream ran on, in order (one more than its swaps).
    pub fn orchestrators(&self) -> Vec<String> {
        let Some(status) = &self.status else { return Vec::new() };
        match status.swaps.first() {
            None => vec![status.orchestrator.clone()],
            Some(first) => {
                std::iter::once(first.from.clone()).chain(status.swaps.iter().map(|s| s.to.clone())).collect()
            }
        }
    }
}

/// One orchestrator's books after the run.
#[derive(Debug, Clone, Default)]
pub struct Books {
    /// Its URL.
    pub url: String,
    /// Times it was killed.
    pub deaths: u64,
    /// Recurring payments the gateway's sessions say it accepted.
    pub gateway_recurring: u64,
    /// Jobs the gateway's sessions say they started there (each paid at its start).
    pub gateway_starts: u64,
    /// Stops carrying a last payment that the gateway's sessions say it accepted (BYOC).
    pub gateway_stop_payments: u64,
    /// Its ledger, by route.
    pub ledger: BTreeMap<PaymentRoute, LedgerLine>,
    /// Sessions that ran there, with the recurring payments each says it made.
    pub sessions: Vec<(String, u64)>,
    /// Serving at the end.
    pub serving_after: bool,
    /// What it ran at the end.
    pub running_after: Running,
}

impl Books {
    /// Recurring payments its ledger received.
    pub fn ledger_recurring(&self) -> u64 {
        self.ledger.iter().filter(|(r, _)| r.is_recurring()).map(|(_, l)| l.payments).sum()
    }

    /// Start payments its ledger received.
    pub fn ledger_starts(&self) -> u64 {
        self.ledger.iter().filter(|(r, _)| r.is_start()).map(|(_, l)| l.payments).sum()
    }

    /// Stop payments its ledger received (BYOC).
    pub fn ledger_stop_payments(&self) -> u64 {
        self.ledger.get(&PaymentRoute::ByocStop).map_or(0, |l| l.payments)
    }

    /// Every check of these books that fails, naming the orchestrator and its sessions.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let who = || {
            let list: Vec<String> = self.sessions.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            format!("sessions there (recurring payments each says it made): {}", list.join(", "))
        };
        if self.gateway_recurring != self.ledger_recurring() {
            out.push(format!(
                "{}: the gateway's sessions say it accepted {} recurring payments, its ledger received {}; {}",
                self.url,
                self.gateway_recurring,
                self.ledger_recurring(),
                who()
            ));
        }
        if self.gateway_starts != self.ledger_starts() {
            out.push(format!(
                "{}: the gateway's sessions started {} jobs there, its ledger received {} start payments; {}",
                self.url,
                self.gateway_starts,
                self.ledger_starts(),
                who()
            ));
        }
        if self.gateway_stop_payments != self.ledger_stop_payments() {
            out.push(format!(
                "{}: the gateway's sessions say it accepted {} stops carrying a last payment, its ledger received {}; {}",
                self.url,
                self.gateway_stop_payments,
                self.ledger_stop_payments(),
                who()
            ));
        }
        if !self.serving_after {
            out.push(format!("{}: not serving at the end", self.url));
        }
        if !self.running_after.is_idle() {
            out.push(format!(
                "{}: still runs {} session(s) and {} channel(s) after every stream stopped",
                self.url, self.running_after.sessions, self.running_after.channels
            ));
        }
        out
    }
}

/// What the gateway's sessions say about one orchestrator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewaySide {
    /// Recurring payments it accepted.
    pub recurring: u64,
    /// Jobs started there (each paid at its start).
    pub starts: u64,
    /// Stops carrying a last payment it accepted.
    pub stop_payments: u64,
    /// Sessions that paid it, with the recurring payments each made.
    pub sessions: Vec<(String, u64)>,
}

/// The gateway's side of each orchestrator's books, from the sessions, by orchestrator URL.
pub fn gateway_side(sessions: &[SwapSession]) -> BTreeMap<String, GatewaySide> {
    let mut out: BTreeMap<String, GatewaySide> = BTreeMap::new();
    for s in sessions {
        for orch in s.orchestrators() {
            out.entry(orch).or_default().starts += 1;
        }
        let Some(status) = &s.status else { continue };
        let mut paid: BTreeMap<&str, u64> = BTreeMap::new();
        for (orch, stats) in &status.payments {
            *paid.entry(orch.as_str()).or_default() += stats.payments_sent;
            out.entry(orch.clone()).or_default().stop_payments += stats.final_payments;
        }
        for (orch, n) in paid {
            let e = out.entry(orch.to_owned()).or_default();
            e.recurring += n;
            e.sessions.push((s.id.clone(), n));
        }
    }
    out
}
