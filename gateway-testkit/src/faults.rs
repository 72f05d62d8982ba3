//! Fault switches for the orchestrator double: answer chosen requests with a chosen status, or
//! slow them down. Set from Rust or through the admin HTTP API (JSON); every rule counts down and
//! then lets requests through normally again.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One fault rule of an orchestrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrchestratorFault {
    /// Answer the next `count` requests whose path starts with `path` with `status`
    /// (`path` = `/net.Orchestrator/GetOrchestrator` fails gRPC calls with an error status).
    RespondStatus {
        /// Path prefix, e.g. `/ai/stream/start`.
        path: String,
        /// HTTP status to answer with.
        status: u16,
        /// How many requests.
        count: u32,
    },
    /// Delay the next `count` requests whose path starts with `path` by `delay_ms`.
    Delay {
        /// Path prefix.
        path: String,
        /// Milliseconds.
        delay_ms: u64,
        /// How many requests.
        count: u32,
    },
}

/// What a matching rule asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status.
    Status(u16),
    /// Wait, then carry on.
    Delay(Duration),
}

/// The active rules of one orchestrator.
#[derive(Debug, Default)]
pub struct FaultRules {
    rules: Mutex<Vec<OrchestratorFault>>,
}

impl FaultRules {
    /// Adds a rule.
    pub fn add(&self, fault: OrchestratorFault) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).push(fault);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Consumes one use of the first rule matching `path`, if any.
    pub fn take(&self, path: &str) -> Option<FaultAction> {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let idx = rules.iter().position(|r| match r {
            OrchestratorFault::RespondStatus { path: p, count, .. }
            | OrchestratorFault::Delay { path: p, count, .. } => *count > 0 && path.starts_with(p.as_str()),
        })?;
        let action = match &mut rules[idx] {
            OrchestratorFault::RespondStatus { status, count, .. } => {
                *count -= 1;
                FaultAction::Status(*status)
            }
            OrchestratorFault::Delay { delay_ms, count, .. } => {
                *count -= 1;
                FaultAction::Delay(Duration::from_millis(*delay_ms))
            }
        };
        rules.retain(|r| match r {
            OrchestratorFault::RespondStatus { count, .. } | OrchestratorFault::Delay { count, .. } => {
                *count > 0
            }
        });
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_down() {
        let f = FaultRules::default();
        f.add(OrchestratorFault::RespondStatus { path: "/ai/stream/start".into(), status: 402, count: 2 });
        assert_eq!(f.take("/payment"), None);
        assert_eq!(f.take("/ai/stream/start"), Some(FaultAction::Status(402)));
        assert_eq!(f.take("/ai/stream/start"), Some(FaultAction::Status(402)));
        assert_eq!(f.take("/ai/stream/start"), None);
    }

    #[test]
    fn rules_parse_from_json() {
        let f: OrchestratorFault =
            serde_json::from_str(r#"{"kind":"delay","path":"/net.Orchestrator/","delay_ms":500,"count":3}"#)
                .unwrap();
        assert_eq!(
            f,
            OrchestratorFault::Delay { path: "/net.Orchestrator/".into(), delay_ms: 500, count: 3 }
        );
    }
}
