//! BYOC training jobs, answered as go-livepeer's orchestrator answers them on its BYOC payment
//! branch (`byoc/training.go`): `POST /process/train/{capability}` (`SubmitTrainingJob`),
//! `GET /process/job/{id}` (`GetTrainingJobStatus`), `POST /process/job/{id}/cancel`
//! (`CancelTrainingJob`) and `POST /process/job/{id}/refresh-payment` (`RefreshTrainingPayment`).
//!
//! The worker ("adapter" in go) is simulated in process: it trains for
//! `OrchestratorConfig::training_duration`, reports progress each time the orchestrator polls
//! it (every `training_poll_interval`, go: 5 s), fails when `params.fail` is true, and
//! completes with a LoRA file URL. Charging is go's `chargeTrainingTick`: whole seconds rounded
//! up, at least `training_charge_interval` apart (go: 30 s), from the first poll that finds the
//! job running, plus a last partial charge when it ends; once the sender's balance for the
//! capability goes negative the job is cancelled with "Insufficient balance". As in go, cancel
//! and status need no credentials, and capacity is freed twice after a cancel.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::jobs;
use gateway_core::lp_rpc::Payment;
use gateway_core::training::{
    RefreshPaymentAnswer, TrainingRequestBody, TrainingState, TrainingStatus, TrainingSubmitted,
    ERROR_CANCELLED_BY_USER, ERROR_INSUFFICIENT_BALANCE,
};
use prost::Message;

use super::byoc::{rounded_balance, setup_job, OrchJob, SetupError};
use super::go_json;
use super::{header, http_error, LocalOrchestrator, PaymentRoute};

/// One job: its status as served, and what charging needs.
pub(super) struct TrainingRecord {
    status: TrainingStatus,
    sender: [u8; 20],
    price: i64,
    offer: Option<usize>,
    cost: f64,
}

/// The store of training jobs (go's `TrainingJobStore`, in memory).
pub(super) type TrainingJobs = std::sync::Mutex<HashMap<String, TrainingRecord>>;

/// `POST /process/train/{capability}`.
pub(super) async fn submit(
    State(orch): State<LocalOrchestrator>,
    method: Method,
    Path(_capability): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return http_error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
    }
    let job = match setup_job(&orch, &headers, true, PaymentRoute::TrainingSubmit) {
        Ok(j) => j,
        Err(e @ SetupError::NoCapacity) => return e.respond(StatusCode::SERVICE_UNAVAILABLE, ""),
        Err(e) => return e.respond(StatusCode::BAD_REQUEST, ""),
    };
    // go reads the body after the job is set up; a failure here leaks the reservation.
    let request: TrainingRequestBody = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return http_error(StatusCode::BAD_REQUEST, format!("Invalid training request: {e}")),
    };
    if request.model_id.is_empty() {
        return http_error(StatusCode::BAD_REQUEST, "model_id is required");
    }
    let job_id = hex::encode(rand::random::<[u8; 4]>());
    let now = rfc3339(SystemTime::now());
    let fail = request.params.get("fail").and_then(|v| v.as_bool()).unwrap_or(false);
    let OrchJob { req, sender, price, offer, .. } = job;
    let record = TrainingRecord {
        status: TrainingStatus {
            job_id: job_id.clone(),
            capability: req.capability.clone(),
            model_id: request.model_id.clone(),
            status: TrainingState::Submitted.as_str().to_owned(),
            progress: 0,
            result: None,
            error: None,
            created_at: now.clone(),
            updated_at: now,
            cost: "0".into(),
            balance: rounded_balance(orch.balance(&sender, &req.capability)),
        },
        sender,
        price,
        offer,
        cost: 0.0,
    };
    orch.inner.training.lock().unwrap_or_else(|e| e.into_inner()).insert(job_id.clone(), record);
    tokio::spawn(run(orch.clone(), job_id.clone(), fail));
    let answer = TrainingSubmitted {
        status_url: gateway_core::training::status_path(&job_id),
        cancel_url: gateway_core::training::cancel_path(&job_id),
        job_id,
        status: TrainingState::Submitted.as_str().to_owned(),
    };
    (StatusCode::ACCEPTED, [("content-type", "application/json")], json_line(&answer)).into_response()
}

/// go's `runTrainingJob` against the simulated worker: each round first charges (or ends a
/// cancelled job with its last charge), then sleeps a poll interval and asks the worker.
async fn run(orch: LocalOrchestrator, job_id: String, fail: bool) {
    let config = &orch.inner.config;
    let started = Instant::now();
    // Billing starts at the first poll that finds the worker running (go's grace period).
    let mut seen_running = false;
    let mut last_charge = Instant::now();
    // The worker took the job: go marks it running at once, queued or not (go can overwrite a
    // cancel that came first here; the double keeps the cancel).
    update(&orch, &job_id, |r| {
        if !r.status.state().is_terminal() {
            r.status.status = TrainingState::Running.as_str().to_owned();
        }
    });
    loop {
        let now = Instant::now();
        let mut ended = false;
        let mut charged = false;
        update(&orch, &job_id, |r| {
            if r.status.state() == TrainingState::Cancelled {
                if seen_running {
                    charge(&orch, r, now.duration_since(last_charge));
                }
                ended = true;
            } else if seen_running && now.duration_since(last_charge) >= config.training_charge_interval {
                charge(&orch, r, now.duration_since(last_charge));
                charged = true;
                if r.status.balance_wei().is_some_and(|b| b < 0.0) {
                    r.status.status = TrainingState::Cancelled.as_str().to_owned();
                    r.status.error = Some(ERROR_INSUFFICIENT_BALANCE.into());
                    ended = true;
                }
            }
        });
        if ended {
            break;
        }
        if charged || !seen_running {
            last_charge = now;
        }
        tokio::time::sleep(config.training_poll_interval).await;

        let elapsed = started.elapsed();
        let done = elapsed >= config.training_duration;
        update(&orch, &job_id, |r| {
            if r.status.state().is_terminal() {
                return; // cancelled meanwhile: the next round ends it
            }
            if !done {
                r.status.status = TrainingState::Running.as_str().to_owned();
                r.status.progress =
                    (100 * elapsed.as_millis() / config.training_duration.as_millis().max(1)) as i64;
                return;
            }
            if seen_running {
                charge(&orch, r, last_charge.elapsed());
            }
            if fail {
                r.status.status = TrainingState::Failed.as_str().to_owned();
                r.status.error = Some("training diverged (params.fail)".into());
            } else {
                r.status.status = TrainingState::Completed.as_str().to_owned();
                r.status.progress = 100;
                let files = format!("{}/files/{job_id}", orch.inner.service_uri);
                r.status.result = Some(serde_json::json!({
                    "diffusers_lora_file": { "url": format!("{files}/lora.safetensors") },
                    "config_file": { "url": format!("{files}/config.json") },
                }));
            }
            ended = true;
        });
        if ended {
            break;
        }
        seen_running = true;
    }
    // go's deferred free, which runs after a cancel freed too.
    let offer =
        orch.inner.training.lock().unwrap_or_else(|e| e.into_inner()).get(&job_id).and_then(|r| r.offer);
    if let Some(i) = offer {
        orch.inner.byoc_free(i);
    }
}

/// go's `chargeTrainingTick`: `price` wei per second for the seconds since the last charge,
/// rounded up, debited from the sender's balance for the capability (free jobs never are).
fn charge(orch: &LocalOrchestrator, r: &mut TrainingRecord, since_last: Duration) {
    if r.price <= 0 || orch.inner.config.offchain {
        return;
    }
    let seconds = (since_last.as_secs_f64() * orch.inner.config.usage_time_scale).ceil();
    let wei = seconds * r.price as f64;
    r.cost += wei;
    let balance = orch.inner.debit(r.sender, &r.status.capability, wei);
    r.status.cost = rounded_balance(r.cost);
    r.status.balance = rounded_balance(balance);
}

fn update(orch: &LocalOrchestrator, job_id: &str, f: impl FnOnce(&mut TrainingRecord)) {
    if let Some(r) = orch.inner.training.lock().unwrap_or_else(|e| e.into_inner()).get_mut(job_id) {
        f(r);
        r.status.updated_at = rfc3339(SystemTime::now());
    }
}

/// `GET /process/job/{id}`: no credentials, as in go.
pub(super) async fn status(State(orch): State<LocalOrchestrator>, Path(job_id): Path<String>) -> Response {
    let jobs = orch.inner.training.lock().unwrap_or_else(|e| e.into_inner());
    match jobs.get(&job_id) {
        None => http_error(StatusCode::NOT_FOUND, "Job not found"),
        Some(r) => ([("content-type", "application/json")], json_line(&r.status)).into_response(),
    }
}

/// `POST /process/job/{id}/cancel`: no credentials, as in go; the worker is not told.
pub(super) async fn cancel(State(orch): State<LocalOrchestrator>, Path(job_id): Path<String>) -> Response {
    let offer = {
        let mut jobs = orch.inner.training.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = jobs.get_mut(&job_id) else {
            return http_error(StatusCode::NOT_FOUND, "Job not found");
        };
        let state = r.status.state();
        if matches!(state, TrainingState::Completed | TrainingState::Failed | TrainingState::Cancelled) {
            return http_error(StatusCode::BAD_REQUEST, format!("Job already {}", state.as_str()));
        }
        r.status.status = TrainingState::Cancelled.as_str().to_owned();
        r.status.error = Some(ERROR_CANCELLED_BY_USER.into());
        r.status.updated_at = rfc3339(SystemTime::now());
        r.offer
    };
    if let Some(i) = offer {
        orch.inner.byoc_free(i);
    }
    let body = serde_json::json!({ "job_id": job_id, "status": TrainingState::Cancelled.as_str() });
    ([("content-type", "application/json")], json_line(&body)).into_response()
}

/// `POST /process/job/{id}/refresh-payment`: only a `Livepeer-Payment` from the submitter.
pub(super) async fn refresh_payment(
    State(orch): State<LocalOrchestrator>,
    Path(job_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (capability, submitter) = {
        let jobs = orch.inner.training.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = jobs.get(&job_id) else {
            return http_error(StatusCode::NOT_FOUND, "Job not found");
        };
        let state = r.status.state();
        if matches!(state, TrainingState::Completed | TrainingState::Failed | TrainingState::Cancelled) {
            return http_error(
                StatusCode::BAD_REQUEST,
                format!("Job is {}, cannot refresh payment", state.as_str()),
            );
        }
        (r.status.capability.clone(), r.sender)
    };
    let raw = header(&headers, jobs::HEADER_PAYMENT).unwrap_or("");
    if raw.is_empty() {
        return http_error(StatusCode::BAD_REQUEST, "Livepeer-Payment header required");
    }
    let Some(payment) = go_json::std_base64(raw).and_then(|b| Payment::decode(b.as_slice()).ok()) else {
        return http_error(StatusCode::BAD_REQUEST, "Invalid Livepeer-Payment header");
    };
    // `ethcommon.BytesToAddress`: the last 20 bytes, left-padded.
    let mut payer = [0u8; 20];
    let tail = &payment.sender[payment.sender.len().saturating_sub(20)..];
    payer[20 - tail.len()..].copy_from_slice(tail);
    if payer != submitter {
        return http_error(
            StatusCode::FORBIDDEN,
            format!(
                "Refresh sender {} does not match submit sender {}",
                gateway_core::eth::checksum_address(&payer),
                gateway_core::eth::checksum_address(&submitter)
            ),
        );
    }
    if let Err(e) = orch.inner.process_payment(&payment, &capability, PaymentRoute::TrainingRefresh) {
        return http_error(StatusCode::BAD_REQUEST, format!("Payment processing failed: {}", e.1));
    }
    let balance = rounded_balance(orch.balance(&submitter, &capability));
    update(&orch, &job_id, |r| r.status.balance = balance.clone());
    let answer = RefreshPaymentAnswer { job_id, new_balance_wei: balance };
    ([("content-type", "application/json")], json_line(&answer)).into_response()
}

/// go's `json.NewEncoder(w).Encode(v)`: the JSON and a newline.
fn json_line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    body
}

/// A time as go's `time.Time` marshals in UTC: RFC 3339 with nanoseconds, trailing zeros cut.
pub(super) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = ((d.as_secs() / 86_400) as i64, d.as_secs() % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out =
        format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        out.push_str(format!(".{nanos:09}").trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_go_renders_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_777_896_000, 123_456_789);
        assert_eq!(rfc3339(t), "2026-05-04T12:00:00.123456789Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::new(951_782_400, 500_000_000)), "2000-02-29T00:00:00.5Z");
    }
}
