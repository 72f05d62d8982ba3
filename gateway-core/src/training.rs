//! BYOC training jobs: submitted once, run for minutes to hours on the orchestrator, polled for
//! status, charged per second while they run, topped up by the gateway.
//!
//! As go-livepeer's orchestrator serves them (`byoc/training.go` on the BYOC payment branch:
//! `SubmitTrainingJob`, `GetTrainingJobStatus`, `CancelTrainingJob`, `RefreshTrainingPayment`,
//! `chargeTrainingTick`): the submit carries the same signed `Livepeer` job header and payment
//! as a single-shot request and answers `202` with an orchestrator-made job id; status and
//! cancel are unauthenticated; a refresh carries only a `Livepeer-Payment` whose sender must be
//! the submitter. The job's balance is the sender's balance for the capability, debited every
//! [`CHARGE_INTERVAL`]; once it goes negative the job is cancelled with
//! [`ERROR_INSUFFICIENT_BALANCE`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Prefix of training submits: `POST /process/train/{capability}` (go takes the capability
/// from the signed header, not from the path).
pub const TRAIN_PREFIX: &str = "/process/train/";
/// Prefix of a job's routes: `GET /process/job/{id}` is its [`TrainingStatus`].
pub const JOB_PREFIX: &str = "/process/job/";
/// `POST /process/job/{id}/cancel`.
pub const CANCEL_SUFFIX: &str = "/cancel";
/// `POST /process/job/{id}/refresh-payment` with a `Livepeer-Payment` header.
pub const REFRESH_PAYMENT_SUFFIX: &str = "/refresh-payment";

/// How often go's orchestrator debits a running job (at least this long between charges,
/// seconds rounded up).
pub const CHARGE_INTERVAL: Duration = Duration::from_secs(30);
/// How often go's orchestrator polls its adapter, and the Python SDK's default status poll.
pub const STATUS_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// go gives up on a training job after this long.
pub const MAX_TRAINING_TIME: Duration = Duration::from_secs(8 * 3600);
/// The job's `error` when its balance ran out (go's `runTrainingJob`).
pub const ERROR_INSUFFICIENT_BALANCE: &str = "Insufficient balance";
/// The job's `error` after a cancel (go's `CancelTrainingJob`).
pub const ERROR_CANCELLED_BY_USER: &str = "Cancelled by user";

/// `GET /process/job/{id}`.
pub fn status_path(job_id: &str) -> String {
    format!("{JOB_PREFIX}{job_id}")
}

/// `POST /process/job/{id}/cancel`.
pub fn cancel_path(job_id: &str) -> String {
    format!("{JOB_PREFIX}{job_id}{CANCEL_SUFFIX}")
}

/// `POST /process/job/{id}/refresh-payment`.
pub fn refresh_payment_path(job_id: &str) -> String {
    format!("{JOB_PREFIX}{job_id}{REFRESH_PAYMENT_SUFFIX}")
}

/// The body of a submit (go's `TrainingRequest`): `model_id` is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRequestBody {
    /// The model to train.
    pub model_id: String,
    /// Where the orchestrator may call back (go accepts it and passes the body on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    /// Training parameters, passed to the worker as sent.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// The `202` answer to a submit. The URLs are relative to the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingSubmitted {
    /// The orchestrator's id for the job.
    pub job_id: String,
    /// `submitted`.
    pub status: String,
    /// `/process/job/{id}`.
    #[serde(default)]
    pub status_url: String,
    /// `/process/job/{id}/cancel`.
    #[serde(default)]
    pub cancel_url: String,
}

/// Where a training job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrainingState {
    /// Accepted, not yet handed to the worker.
    Submitted,
    /// The worker has it.
    Running,
    /// Done; `result` holds the outputs.
    Completed,
    /// The worker failed, or the job timed out.
    Failed,
    /// Cancelled by a user or for lack of balance.
    Cancelled,
    /// go's orchestrator restarted while the job ran (`failed_orchestrator_restart`).
    FailedOrchestratorRestart,
    /// A status this SDK does not know, as sent.
    Other(String),
}

impl TrainingState {
    /// Parses go's status string.
    pub fn parse(s: &str) -> TrainingState {
        match s {
            "submitted" => TrainingState::Submitted,
            "running" => TrainingState::Running,
            "completed" => TrainingState::Completed,
            "failed" => TrainingState::Failed,
            "cancelled" => TrainingState::Cancelled,
            "failed_orchestrator_restart" => TrainingState::FailedOrchestratorRestart,
            other => TrainingState::Other(other.to_owned()),
        }
    }

    /// go's status string.
    pub fn as_str(&self) -> &str {
        match self {
            TrainingState::Submitted => "submitted",
            TrainingState::Running => "running",
            TrainingState::Completed => "completed",
            TrainingState::Failed => "failed",
            TrainingState::Cancelled => "cancelled",
            TrainingState::FailedOrchestratorRestart => "failed_orchestrator_restart",
            TrainingState::Other(s) => s,
        }
    }

    /// Whether the job will not change any more (the restart failure included, which the
    /// Python SDK 1.0.0 keeps polling).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TrainingState::Completed
                | TrainingState::Failed
                | TrainingState::Cancelled
                | TrainingState::FailedOrchestratorRestart
        )
    }
}

/// A job's status (go's `TrainingJob` as JSON). Times are RFC 3339 strings as go writes them;
/// `cost` and `balance` are whole wei as decimal strings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingStatus {
    /// The orchestrator's id for the job.
    pub job_id: String,
    /// The BYOC capability.
    #[serde(default)]
    pub capability: String,
    /// The model being trained.
    #[serde(default)]
    pub model_id: String,
    /// go's status string; see [`TrainingStatus::state`].
    pub status: String,
    /// Percent done, as the worker reports it.
    #[serde(default)]
    pub progress: i64,
    /// The worker's outputs once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why the job failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was submitted.
    #[serde(default)]
    pub created_at: String,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: String,
    /// Wei charged so far.
    #[serde(default)]
    pub cost: String,
    /// The sender's balance for the capability on the orchestrator, wei.
    #[serde(default)]
    pub balance: String,
}

impl TrainingStatus {
    /// The status, typed.
    pub fn state(&self) -> TrainingState {
        TrainingState::parse(&self.status)
    }

    /// The balance as a number, when it parses.
    pub fn balance_wei(&self) -> Option<f64> {
        self.balance.trim().parse().ok()
    }

    /// URL of the trained LoRA weights, where the worker reports one (`diffusers_lora_file.url`,
    /// else `lora_url`, as the Python SDK reads them).
    pub fn lora_url(&self) -> Option<&str> {
        let result = self.result.as_ref()?;
        result.pointer("/diffusers_lora_file/url").or_else(|| result.get("lora_url")).and_then(|v| v.as_str())
    }
}

/// The answer to a refresh (go's `RefreshTrainingPayment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPaymentAnswer {
    /// The job.
    pub job_id: String,
    /// The sender's balance after the payment, wei.
    pub new_balance_wei: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_terminals_include_the_restart_failure() {
        for s in
            ["submitted", "running", "completed", "failed", "cancelled", "failed_orchestrator_restart", "x"]
        {
            assert_eq!(TrainingState::parse(s).as_str(), s);
        }
        assert!(TrainingState::parse("failed_orchestrator_restart").is_terminal());
        assert!(!TrainingState::parse("running").is_terminal());
        assert!(!TrainingState::parse("queued").is_terminal());
    }

    #[test]
    fn a_go_status_parses_with_missing_fields_as_defaults() {
        let raw = r#"{"job_id":"ab12cd34","capability":"trainer","model_id":"m","status":"completed",
            "progress":100,"result":{"diffusers_lora_file":{"url":"http://x/lora"}},
            "created_at":"2026-05-04T12:00:00.123456789Z","updated_at":"2026-05-04T12:01:00Z",
            "cost":"30","balance":"-2","adapter_job_id":"a1","sender_hex":"0x00"}"#;
        let s: TrainingStatus = serde_json::from_str(raw).unwrap();
        assert_eq!(s.state(), TrainingState::Completed);
        assert_eq!(s.lora_url(), Some("http://x/lora"));
        assert_eq!(s.balance_wei(), Some(-2.0));
        let minimal: TrainingStatus = serde_json::from_str(r#"{"job_id":"a","status":"running"}"#).unwrap();
        assert_eq!(minimal.progress, 0);
        assert_eq!(minimal.lora_url(), None);
    }

    #[test]
    fn paths() {
        assert_eq!(status_path("ab"), "/process/job/ab");
        assert_eq!(cancel_path("ab"), "/process/job/ab/cancel");
        assert_eq!(refresh_payment_path("ab"), "/process/job/ab/refresh-payment");
    }
}
