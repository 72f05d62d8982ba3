//! `POST /process/request/{path}`: one single-shot BYOC request through the node, with go's
//! gateway shapes (`byoc/job_gateway.go` `SubmitJob`): the `Livepeer` job header (400 and go's
//! text when it does not parse), the body passed on whole, the worker's answer streamed back
//! (event streams as they come) with `Livepeer-Balance` and `X-Orchestrator-Url`; a worker's
//! 4xx comes back as it was. The SDK picks, pays and fails over; when no orchestrator takes the
//! request the node answers 503 with why (go answers an empty 200).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_actors::{ByocRequest, GatewayError};
use gateway_core::gateway_api::gateway_job;
use gateway_core::jobs::{HEADER_BALANCE, HEADER_JOB};
use gateway_core::rejection::JobError;

use super::go_http::text;
use super::node::Node;

/// `POST /process/request/{path}` (and the root).
pub async fn request(
    State(node): State<Arc<Node>>,
    path: Option<Path<String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let job_header = headers.get(HEADER_JOB).and_then(|v| v.to_str().ok());
    let (job, _) = match gateway_job(job_header) {
        Ok(parsed) => parsed,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let mut request = ByocRequest::new(job.capability.clone(), path.map(|p| p.0).unwrap_or_default(), body);
    request.content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    request.timeout_seconds = job.timeout_seconds;
    let answer = match node.gateway.byoc_request_stream(request).await {
        Ok(answer) => answer,
        Err(GatewayError::Job(JobError::Http { status, message, .. })) if (400..500).contains(&status) => {
            return text(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), message);
        }
        Err(GatewayError::Job(JobError::InvalidRequest(message))) => {
            return text(StatusCode::BAD_REQUEST, message)
        }
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let mut response =
        Response::builder().status(answer.status).header("x-orchestrator-url", answer.orchestrator.clone());
    if let Some(balance) = &answer.balance {
        response = response.header(HEADER_BALANCE, balance.clone());
    }
    if let Some(ct) = &answer.content_type {
        response = response.header("content-type", ct.clone());
    }
    let chunks = futures_util::stream::unfold(Some(answer), |state| async move {
        let mut answer = state?;
        match answer.chunk().await {
            Ok(Some(bytes)) => Some((Ok(bytes), Some(answer))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
        }
    });
    response.body(Body::from_stream(chunks)).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
