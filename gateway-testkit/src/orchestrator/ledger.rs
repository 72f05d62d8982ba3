//! What an orchestrator was paid, by the route each payment came in on: the record a test
//! reads to check a gateway's own accounting of its payments. Like an operator's books, it
//! outlives the orchestrator's process: [`crate::network::LocalNetwork::revive`] starts a fresh
//! process that writes to the same ledger.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// The route a payment came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PaymentRoute {
    /// LV2V start (`/live-video-to-video`).
    Lv2vStart,
    /// LV2V recurring payment (`/payment`).
    Lv2vPayment,
    /// BYOC stream start (`/ai/stream/start`).
    ByocStart,
    /// BYOC recurring payment (`/ai/stream/payment`).
    ByocPayment,
    /// BYOC stream update (`/ai/stream/update`).
    ByocUpdate,
    /// BYOC stream stop (`/ai/stream/stop`), which carries the stop's last payment.
    ByocStop,
    /// BYOC single-shot request (`/process/request/...`).
    ByocRequest,
    /// BYOC training submit (`/process/train/...`).
    TrainingSubmit,
    /// BYOC training top-up (`/process/job/{id}/refresh-payment`).
    TrainingRefresh,
    /// Live-runner session reservation and its payments (`/apps/{id}/session[/{sid}/payment]`).
    RunnerSession,
    /// Scope start on a serverless worker (`/scope`); its later payments come to `/payment`.
    ScopeStart,
}

impl PaymentRoute {
    /// Whether the payment started a job.
    pub fn is_start(self) -> bool {
        matches!(self, PaymentRoute::Lv2vStart | PaymentRoute::ByocStart | PaymentRoute::ScopeStart)
    }

    /// Whether it is a recurring payment of a running job (what a gateway's payment scheduler
    /// sends on its timer).
    pub fn is_recurring(self) -> bool {
        matches!(self, PaymentRoute::Lv2vPayment | PaymentRoute::ByocPayment)
    }
}

/// Payments accepted on one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LedgerLine {
    /// Payments accepted (at least one ticket credited, no ticket refused).
    pub payments: u64,
    /// Tickets credited.
    pub tickets: u64,
    /// Expected value credited, in wei.
    pub ev_wei: f64,
}

/// The ledger: one [`LedgerLine`] per route.
#[derive(Debug, Default)]
pub struct PaymentLedger(Mutex<BTreeMap<PaymentRoute, LedgerLine>>);

impl PaymentLedger {
    /// Records tickets credited on `route`; `accepted` when the whole payment was accepted.
    pub(crate) fn credit(&self, route: PaymentRoute, tickets: u64, ev_wei: f64, accepted: bool) {
        let mut lines = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let line = lines.entry(route).or_default();
        line.tickets += tickets;
        line.ev_wei += ev_wei;
        if accepted {
            line.payments += 1;
        }
    }

    /// Every route's line so far.
    pub fn lines(&self) -> BTreeMap<PaymentRoute, LedgerLine> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Payments accepted on the routes `pick` selects.
    pub fn payments(&self, pick: impl Fn(PaymentRoute) -> bool) -> u64 {
        self.lines().iter().filter(|(r, _)| pick(**r)).map(|(_, l)| l.payments).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_add_up_by_route() {
        let ledger = PaymentLedger::default();
        ledger.credit(PaymentRoute::Lv2vStart, 2, 10.0, true);
        ledger.credit(PaymentRoute::Lv2vPayment, 1, 5.0, true);
        ledger.credit(PaymentRoute::Lv2vPayment, 1, 5.0, false);
        ledger.credit(PaymentRoute::ByocPayment, 3, 1.0, true);
        let lines = ledger.lines();
        assert_eq!(lines[&PaymentRoute::Lv2vPayment], LedgerLine { payments: 1, tickets: 2, ev_wei: 10.0 });
        assert_eq!(ledger.payments(PaymentRoute::is_recurring), 2);
        assert_eq!(ledger.payments(PaymentRoute::is_start), 1);
        assert_eq!(ledger.payments(|r| r == PaymentRoute::ByocStop), 0);
    }
}
