//! Why an orchestrator was not used for a job, typed, and [`JobError`], the job's error that
//! lists those rejections when no orchestrator could take it.
//!
//! Code decides on the variant (a job kind fails with "payment required" when every
//! orchestrator wanted payment); people read the `Display` text, which names the orchestrator's
//! answer as it came. Nothing here carries a credential: bodies are cut to short excerpts and
//! addresses are redacted when shown.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

use crate::error::{redact_url, SignerError, VettingError};
use crate::swap::SwapReason;

/// Why one orchestrator was not chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct OrchestratorRejection {
    /// The orchestrator address as given (host:port or URL), or `discovery`.
    pub orchestrator: String,
    /// Why it was rejected.
    pub reason: RejectionReason,
}

impl OrchestratorRejection {
    /// `orchestrator` rejected for `reason`.
    pub fn new(orchestrator: impl Into<String>, reason: RejectionReason) -> OrchestratorRejection {
        OrchestratorRejection { orchestrator: orchestrator.into(), reason }
    }
}

impl fmt::Display for OrchestratorRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", redact_url(&self.orchestrator), self.reason)
    }
}

/// What went wrong with one orchestrator, at selection or when a job started on it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RejectionReason {
    /// Discovery failed, so no orchestrator could be asked.
    #[error("{0}")]
    DiscoveryFailed(String),
    /// Discovery answered, with no orchestrator (offering the wanted capabilities).
    #[error("discovery returned no orchestrator{}", offering(wanted))]
    NothingDiscovered {
        /// The capabilities asked for (`pipeline/model`); empty when any would do.
        wanted: Vec<String>,
    },
    /// The caller asked not to use it.
    #[error("excluded by the caller")]
    Excluded,
    /// Selection ran out of time before it was asked or answered.
    #[error("not asked or not answered within the selection deadline of {deadline:?}")]
    SelectionDeadline {
        /// The selection's deadline.
        deadline: Duration,
    },
    /// `GetOrchestrator` did not answer within the per-call limit.
    #[error("timed out: no answer within {after:?}")]
    InfoTimeout {
        /// The per-call limit.
        after: Duration,
    },
    /// `GetOrchestrator` failed (connect, TLS, trust policy, gRPC status), as described by the
    /// RPC client.
    #[error("{0}")]
    InfoFailed(String),
    /// Its BYOC job token (`/process/token`) could not be had.
    #[error("{0}")]
    JobTokenFailed(String),
    /// It answered but cannot take the job (no capacity, price too high, no ticket
    /// parameters, capabilities missing, ...).
    #[error("{0}")]
    Unfit(VettingError),
    /// No HTTP client could be built for it.
    #[error("{0}")]
    ClientBuild(String),
    /// The signer could not pay it.
    #[error("payment: {0}")]
    Payment(SignerError),
    /// It wanted payment (HTTP 402), and paying again failed.
    #[error("payment after HTTP {}: {error}", crate::jobs::STATUS_PAYMENT_REQUIRED)]
    PaymentAfterRetry {
        /// Why the new payment failed.
        error: SignerError,
    },
    /// The call never got an answer (refused, reset, TLS failure).
    #[error("{endpoint}: {message}")]
    Transport {
        /// Endpoint path.
        endpoint: String,
        /// The transport failure, without URL query.
        message: String,
    },
    /// No answer within the time the job allows.
    #[error("{endpoint}: no answer within {within:?} (the job's timeout plus {} s){}", crate::jobs::BYOC_START_GRACE_SECONDS, stopped_note(*abandoned_start_stopped))]
    NoAnswer {
        /// Endpoint path.
        endpoint: String,
        /// How long we waited.
        within: Duration,
        /// A stream start that may still run was stopped on the orchestrator.
        abandoned_start_stopped: bool,
    },
    /// HTTP 402: it wants (more) payment before it takes the job.
    #[error("orchestrator requires payment (HTTP {}): {excerpt}", crate::jobs::STATUS_PAYMENT_REQUIRED)]
    PaymentRequired {
        /// Start of its answer.
        excerpt: String,
    },
    /// It answered with an error status.
    #[error("orchestrator returned HTTP {status} for {endpoint}: {excerpt}{}", hint.unwrap_or_default())]
    Http {
        /// HTTP status.
        status: u16,
        /// Endpoint path.
        endpoint: String,
        /// Start of its answer.
        excerpt: String,
        /// What the status likely means, when known (a protocol version mismatch).
        hint: Option<&'static str>,
    },
    /// It ran the job and then failed it mid-stream; the stream moved on to another.
    #[error("failed mid-stream: {0}")]
    FailedMidStream(SwapReason),
    /// It answered success with a body the job cannot use.
    #[error("invalid response from orchestrator for {endpoint}: {reason}")]
    InvalidAnswer {
        /// Endpoint path.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
}

fn stopped_note(stopped: bool) -> &'static str {
    if stopped {
        "; the start was stopped"
    } else {
        ""
    }
}

fn offering(wanted: &[String]) -> String {
    if wanted.is_empty() {
        "s".to_owned()
    } else {
        format!(" offering {}", wanted.join(", "))
    }
}

impl RejectionReason {
    /// Whether the orchestrator wanted (more) payment: a 402, or a failed payment after one.
    pub fn is_payment_required(&self) -> bool {
        matches!(self, RejectionReason::PaymentRequired { .. } | RejectionReason::PaymentAfterRetry { .. })
    }

    /// Whether it was decided at selection (before any job was sent to the orchestrator).
    pub fn is_selection_time(&self) -> bool {
        matches!(
            self,
            RejectionReason::DiscoveryFailed(_)
                | RejectionReason::NothingDiscovered { .. }
                | RejectionReason::Excluded
                | RejectionReason::SelectionDeadline { .. }
                | RejectionReason::InfoTimeout { .. }
                | RejectionReason::InfoFailed(_)
                | RejectionReason::JobTokenFailed(_)
                | RejectionReason::Unfit(_)
        )
    }
}

/// Errors starting, paying for or stopping a job on an orchestrator.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum JobError {
    /// HTTP 402: the orchestrator wants (more) payment before it starts the job.
    #[error("orchestrator requires payment (HTTP 402): {message}")]
    PaymentRequired {
        /// The orchestrator's explanation.
        message: String,
    },
    /// No orchestrator could take the job; every rejection is listed.
    #[error("no orchestrator available{}", format_rejections(rejections))]
    NoOrchestratorAvailable {
        /// One entry per orchestrator tried.
        rejections: Vec<OrchestratorRejection>,
    },
    /// The orchestrator refused the request.
    #[error("orchestrator returned HTTP {status} for {endpoint}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// Endpoint path.
        endpoint: String,
        /// Start of the body.
        message: String,
    },
    /// The orchestrator's answer is missing something the protocol requires.
    #[error("invalid response from orchestrator for {endpoint}: {reason}")]
    InvalidResponse {
        /// Endpoint path.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The caller's job description is invalid.
    #[error("invalid job request: {0}")]
    InvalidRequest(String),
}

fn format_rejections(rejections: &[OrchestratorRejection]) -> String {
    if rejections.is_empty() {
        return ": no candidates to select from".to_owned();
    }
    let list: Vec<String> = rejections.iter().map(ToString::to_string).collect();
    format!(": {}", list.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_listed() {
        let e = JobError::NoOrchestratorAvailable {
            rejections: vec![
                OrchestratorRejection::new("a:1", RejectionReason::Excluded),
                OrchestratorRejection::new(
                    "https://b:2?x=secret",
                    RejectionReason::ClientBuild("no model".into()),
                ),
            ],
        };
        let s = e.to_string();
        assert!(s.contains("a:1: excluded by the caller; https://b:2/: no model"), "{s}");
        assert!(!s.contains("secret"));
        let empty = JobError::NoOrchestratorAvailable { rejections: vec![] }.to_string();
        assert!(empty.contains("no candidates"));
    }

    #[test]
    fn display_reads_as_before() {
        let r = |reason| OrchestratorRejection::new("https://o:1?key=secret", reason).to_string();
        assert_eq!(
            r(RejectionReason::PaymentRequired { excerpt: "insufficient balance".into() }),
            "https://o:1/: orchestrator requires payment (HTTP 402): insufficient balance"
        );
        assert_eq!(
            r(RejectionReason::Http {
                status: 500,
                endpoint: "/ai/stream/start".into(),
                excerpt: "boom".into(),
                hint: None
            }),
            "https://o:1/: orchestrator returned HTTP 500 for /ai/stream/start: boom"
        );
        assert_eq!(
            RejectionReason::NothingDiscovered { wanted: vec![] }.to_string(),
            "discovery returned no orchestrators"
        );
        assert_eq!(
            RejectionReason::NothingDiscovered { wanted: vec!["byoc/x".into()] }.to_string(),
            "discovery returned no orchestrator offering byoc/x"
        );
        let late = RejectionReason::NoAnswer {
            endpoint: "/ai/stream/start".into(),
            within: Duration::from_secs(75),
            abandoned_start_stopped: true,
        };
        assert_eq!(
            late.to_string(),
            "/ai/stream/start: no answer within 75s (the job's timeout plus 5 s); the start was stopped"
        );
        assert_eq!(
            RejectionReason::Payment(SignerError::SkipCycle).to_string(),
            "payment: no payment needed this cycle (HTTP 482)"
        );
    }

    #[test]
    fn payment_required_classes() {
        assert!(RejectionReason::PaymentRequired { excerpt: String::new() }.is_payment_required());
        assert!(RejectionReason::PaymentAfterRetry { error: SignerError::SkipCycle }.is_payment_required());
        assert!(!RejectionReason::Payment(SignerError::SkipCycle).is_payment_required());
        assert!(RejectionReason::Excluded.is_selection_time());
        assert!(!RejectionReason::ClientBuild("x".into()).is_selection_time());
    }
}
