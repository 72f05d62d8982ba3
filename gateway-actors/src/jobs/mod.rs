//! The job APIs users call: live video-to-video ([`lv2v`]) and BYOC streams and requests
//! ([`byoc`]). Each selects an orchestrator, pays up front, starts the job, fails over to the
//! next candidate when a start fails, and keeps paying on a timer until the job is stopped.

pub mod byoc;
pub mod lv2v;

use gateway_core::error::{body_excerpt, JobError, OrchestratorRejection};

use crate::http::{describe, read_body_capped, MAX_RESPONSE_BYTES};

/// Time allowed for a job start call.
pub const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A POST's answer reduced to what job code needs.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
}

/// Sends `req` and reads the answer (capped), mapping transport failures to `JobError`.
pub(crate) async fn send(req: reqwest::RequestBuilder, endpoint: &str) -> Result<Answer, JobError> {
    let resp = req.timeout(START_TIMEOUT).send().await.map_err(|e| JobError::Http {
        status: 0,
        endpoint: endpoint.to_owned(),
        message: describe(&e),
    })?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = read_body_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|reason| JobError::InvalidResponse { endpoint: endpoint.to_owned(), reason })?;
    Ok(Answer { status, headers, body })
}

impl Answer {
    pub(crate) fn error(&self, endpoint: &str) -> JobError {
        let message = body_excerpt(&self.body, 300);
        if self.status == gateway_core::jobs::STATUS_PAYMENT_REQUIRED {
            JobError::PaymentRequired { message }
        } else {
            JobError::Http { status: self.status, endpoint: endpoint.to_owned(), message }
        }
    }
}

pub(crate) fn rejection(orchestrator: &str, reason: impl ToString) -> OrchestratorRejection {
    OrchestratorRejection { orchestrator: orchestrator.to_owned(), reason: reason.to_string() }
}
