//! BYOC training jobs: submit once (`POST /process/train/{capability}`, signed and paid like a
//! single-shot request), then follow the job on the orchestrator that took it: status polls,
//! top-ups while it runs, cancel.
//!
//! Failover on submit is the Python SDK's and go's gateway's: a transport failure, a 5xx, a
//! 408 or a 429 moves on to the next orchestrator; any other answer is final. Beyond the
//! Python SDK 1.0.0: [`TrainingJob::wait`] treats go's `failed_orchestrator_restart` as the end
//! (the SDK polls on for 8 h), survives a few failed polls in a row, and can top the job up
//! before go's orchestrator cancels it for lack of balance (the SDK never refreshes on its own).

use std::time::Duration;

use gateway_core::jobs::{self, JobRequest};
use gateway_core::rejection::{JobError, OrchestratorRejection, RejectionReason};
use gateway_core::training::{
    self, RefreshPaymentAnswer, TrainingRequestBody, TrainingStatus, TrainingSubmitted,
};

use super::byoc::PreparedByoc;
use super::failover::Failover;
use super::{send_within, Attempt};
use crate::gateway::{Gateway, GatewayError};
use crate::payments::{PaymentKind, PaymentSession};

/// The Python SDK's default `timeout_seconds` for a training submit.
pub const DEFAULT_TRAINING_TIMEOUT_SECONDS: u32 = 300;
/// Time allowed for a submit, a status poll, a cancel or a refresh (go's gateway: 30 s).
pub const TRAINING_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Failed polls in a row [`TrainingJob::wait`] rides out before giving up.
pub const MAX_FAILED_POLLS: u32 = 3;

/// A training job to submit.
#[derive(Debug, Clone)]
pub struct TrainingRequest {
    /// Registered BYOC capability that trains.
    pub capability: String,
    /// The model to train.
    pub model_id: String,
    /// Training parameters, passed to the worker as sent.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Where the orchestrator may call back.
    pub callback_url: Option<String>,
    /// The job header's `timeout_seconds` (go requires it; training itself may run 8 h).
    pub timeout_seconds: u32,
    /// Highest acceptable price, wei per second.
    pub max_price_wei_per_unit: Option<f64>,
}

impl TrainingRequest {
    /// Trains `model_id` with `capability`, no parameters.
    pub fn new(capability: impl Into<String>, model_id: impl Into<String>) -> TrainingRequest {
        TrainingRequest {
            capability: capability.into(),
            model_id: model_id.into(),
            params: serde_json::Map::new(),
            callback_url: None,
            timeout_seconds: DEFAULT_TRAINING_TIMEOUT_SECONDS,
            max_price_wei_per_unit: None,
        }
    }
}

/// How [`TrainingJob::wait`] follows a job.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// Time between status polls.
    pub poll_interval: Duration,
    /// Give up (with the last status) after this long.
    pub timeout: Duration,
    /// Top the job up when its balance falls below this many wei (`None`: never).
    pub top_up_below_wei: Option<f64>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            poll_interval: training::STATUS_POLL_INTERVAL,
            timeout: training::MAX_TRAINING_TIME,
            top_up_below_wei: None,
        }
    }
}

/// A submitted training job, on the orchestrator that took it.
pub struct TrainingJob {
    /// The orchestrator's id for the job.
    pub job_id: String,
    /// The orchestrator that took it.
    pub orchestrator: String,
    http: reqwest::Client,
    /// Pays the same orchestrator for top-ups.
    session: tokio::sync::Mutex<PaymentSession>,
}

impl std::fmt::Debug for TrainingJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainingJob")
            .field("job_id", &self.job_id)
            .field("orchestrator", &self.orchestrator)
            .finish()
    }
}

impl Gateway {
    /// Submits a training job (see the module docs); the job runs on after this returns.
    pub async fn submit_training(&self, request: TrainingRequest) -> Result<TrainingJob, GatewayError> {
        self.until_shutdown(self.submit_training_until_shutdown(request)).await
    }

    async fn submit_training_until_shutdown(
        &self,
        request: TrainingRequest,
    ) -> Result<TrainingJob, GatewayError> {
        if request.model_id.is_empty() {
            return Err(JobError::InvalidRequest("model_id must not be empty".into()).into());
        }
        let id = format!("train-{}", hex::encode(rand::random::<[u8; 6]>()));
        // What the signature covers: the model and its parameters, as the Python SDK signs them.
        let mut signed = request.params.clone();
        signed.insert("model_id".into(), request.model_id.clone().into());
        let job = JobRequest::without_parameters(
            id.clone(),
            &serde_json::Value::Object(signed),
            request.capability.clone(),
            request.timeout_seconds,
        );
        let PreparedByoc { queries, job, identity, selection } =
            self.prepare_byoc(job, request.max_price_wei_per_unit, Vec::new()).await?;
        let header = job.to_header();
        let body = serde_json::to_vec(&TrainingRequestBody {
            model_id: request.model_id.clone(),
            callback_url: request.callback_url.clone(),
            params: request.params.clone(),
        })
        .map_err(|e| JobError::InvalidRequest(e.to_string()))?;
        let endpoint = format!("{}{}", training::TRAIN_PREFIX, request.capability);
        let failover = Failover {
            selection: &selection,
            queries: &queries,
            identity,
            kind: PaymentKind::Byoc { preload_seconds: gateway_core::signer::BYOC_MIN_PRELOAD_SECONDS },
            manifest_id: Some(id),
        };
        // The Python SDK sends the capability header too (go reads it only on /process/token).
        let (header, body, endpoint, capability) = (&header, &body, &endpoint, &request.capability);
        let job = self
            .first_success(failover, |_, attempt, creds| async move {
                let Attempt { origin, http, session, .. } = attempt;
                let req = creds.attach(
                    http.post(format!("{origin}{endpoint}"))
                        .header(jobs::HEADER_JOB, header)
                        .header(jobs::HEADER_CAPABILITY, capability)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone()),
                );
                let answer = send_within(req, endpoint, TRAINING_CALL_TIMEOUT).await?;
                if answer.status >= 500 || answer.status == 408 || answer.status == 429 {
                    return Err(RejectionReason::Http {
                        status: answer.status,
                        endpoint: endpoint.clone(),
                        excerpt: gateway_core::error::body_excerpt(&answer.body, 300),
                        hint: None,
                    });
                }
                Ok((origin, http, session, answer))
            })
            .await?;
        let (origin, http, session, answer) = job;
        if !(200..300).contains(&answer.status) {
            return Err(JobError::Http {
                status: answer.status,
                endpoint: endpoint.clone(),
                message: gateway_core::error::body_excerpt(&answer.body, 300),
            }
            .into());
        }
        let submitted: TrainingSubmitted =
            serde_json::from_slice(&answer.body).map_err(|e| JobError::InvalidResponse {
                endpoint: endpoint.clone(),
                reason: format!("not a training answer: {e}"),
            })?;
        Ok(TrainingJob {
            job_id: submitted.job_id,
            orchestrator: origin,
            http,
            session: tokio::sync::Mutex::new(session),
        })
    }
}

impl TrainingJob {
    /// The job's status now.
    pub async fn status(&self) -> Result<TrainingStatus, JobError> {
        let path = training::status_path(&self.job_id);
        let req = self.http.get(format!("{}{path}", self.orchestrator)).header("accept", "application/json");
        let answer = self.call(req, &path).await?;
        serde_json::from_slice(&answer).map_err(|e| JobError::InvalidResponse {
            endpoint: path,
            reason: format!("not a training status: {e}"),
        })
    }

    /// Cancels the job (go's orchestrator stops charging; its worker is not told).
    pub async fn cancel(&self) -> Result<(), JobError> {
        let path = training::cancel_path(&self.job_id);
        self.call(self.http.post(format!("{}{path}", self.orchestrator)), &path).await.map(drop)
    }

    /// Pays the orchestrator for the training time since the last payment (the remote signer
    /// decides how much is due); the balance after. A signer that finds nothing due answers
    /// [`livepeer_gateway_core::error::SignerError::SkipCycle`](gateway_core::error::SignerError::SkipCycle).
    pub async fn refresh_payment(&self) -> Result<RefreshPaymentAnswer, GatewayError> {
        let creds = self.session.lock().await.next_payment().await?;
        let path = training::refresh_payment_path(&self.job_id);
        if creds.payment.is_empty() {
            // Free or offchain: nothing to pay, as the Python SDK answers without a call.
            return Err(
                JobError::InvalidRequest("this orchestrator takes no payment for the job".into()).into()
            );
        }
        let req = creds.attach(
            self.http
                .post(format!("{}{path}", self.orchestrator))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body("{}"),
        );
        let answer = self.call(req, &path).await?;
        Ok(serde_json::from_slice(&answer).map_err(|e| JobError::InvalidResponse {
            endpoint: path,
            reason: format!("not a refresh answer: {e}"),
        })?)
    }

    /// Polls until the job ends (or `options.timeout` passes: then the last status), calling
    /// `on_status` with each status; tops the job up as `options` says. A job the orchestrator
    /// no longer knows (404), or [`MAX_FAILED_POLLS`] failed polls in a row, is an error.
    pub async fn wait(
        &self,
        options: &WaitOptions,
        mut on_status: impl FnMut(&TrainingStatus),
    ) -> Result<TrainingStatus, GatewayError> {
        let deadline = tokio::time::Instant::now() + options.timeout;
        let mut failed_polls = 0;
        loop {
            match self.status().await {
                Ok(status) => {
                    failed_polls = 0;
                    on_status(&status);
                    let state = status.state();
                    if state.is_terminal() || tokio::time::Instant::now() >= deadline {
                        return Ok(status);
                    }
                    let low = options
                        .top_up_below_wei
                        .zip(status.balance_wei())
                        .is_some_and(|(threshold, balance)| balance < threshold);
                    if low {
                        match self.refresh_payment().await {
                            Ok(answer) => {
                                tracing::info!(job = %self.job_id, balance = %answer.new_balance_wei, "training job topped up")
                            }
                            Err(e) => {
                                tracing::warn!(job = %self.job_id, error = %e, "training top-up failed")
                            }
                        }
                    }
                }
                Err(JobError::Http { status: 404, endpoint, message }) => {
                    return Err(JobError::Http { status: 404, endpoint, message }.into())
                }
                Err(e) => {
                    failed_polls += 1;
                    if failed_polls >= MAX_FAILED_POLLS {
                        return Err(e.into());
                    }
                    tracing::warn!(job = %self.job_id, error = %e, "training status poll failed");
                }
            }
            tokio::time::sleep(options.poll_interval).await;
        }
    }

    /// Sends `req` and returns the body of a 2xx; anything else is a typed error.
    async fn call(&self, req: reqwest::RequestBuilder, path: &str) -> Result<bytes::Bytes, JobError> {
        // Unreachable, or no answer in time: the one orchestrator that holds the job, rejected
        // for that reason.
        let answer = send_within(req, path, TRAINING_CALL_TIMEOUT).await.map_err(|reason| {
            JobError::NoOrchestratorAvailable {
                rejections: vec![OrchestratorRejection::new(self.orchestrator.clone(), reason)],
            }
        })?;
        if !(200..300).contains(&answer.status) {
            return Err(JobError::Http {
                status: answer.status,
                endpoint: path.to_owned(),
                message: gateway_core::error::body_excerpt(&answer.body, 300),
            });
        }
        Ok(answer.body)
    }
}
