//! Calling a single-shot live runner: one request to `{orchestrator}/apps/{id}/app/{path}`,
//! which go-livepeer master (`server/ai_http.go` `ProxyLiveRunnerSingleShot`) answers by
//! reserving a session for the call, proxying it to the runner and releasing the session when
//! the answer ends.
//!
//! A priced runner is paid as a session reservation is (see `paid.rs`): the first send
//! draws a 402 challenge, the second carries the payment. At a `fixed` price that one payment
//! is all; a metered call (`seconds`, `720p-pixel-seconds`) also pays the challenge's payment
//! URL every [`SESSION_PAYMENT_INTERVAL`] for as long as its answer streams, as the Python
//! SDK's `call_runner` funds its calls. The answer is a [`RunnerAnswer`]: read it as chunks,
//! server-sent events, or whole.

use std::time::Duration;

use bytes::Bytes;
use gateway_core::rejection::JobError;
use gateway_core::runners::{MODE_PERSISTENT, SESSION_PAYMENT_INTERVAL};

use super::answer::{RunnerAnswer, APP_CALL_TIMEOUT};
use super::discovery::RunnerCandidate;
use super::paid::{send_for_headers, PaidAnswer};
use crate::gateway::{Gateway, GatewayError};

/// One call to a runner's app: method, path below the app's URL, body and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerCall {
    /// The HTTP method.
    pub method: reqwest::Method,
    /// The path below the app's URL (`v1/generate`; empty for the app's root).
    pub path: String,
    /// The body (empty for none).
    pub body: Bytes,
    /// More headers (`Content-Type` among them when there is a body).
    pub headers: Vec<(String, String)>,
}

impl RunnerCall {
    /// A call with no body.
    pub fn new(method: reqwest::Method, path: impl Into<String>) -> RunnerCall {
        RunnerCall { method, path: path.into(), body: Bytes::new(), headers: Vec::new() }
    }

    /// A `GET` of `path`.
    pub fn get(path: impl Into<String>) -> RunnerCall {
        RunnerCall::new(reqwest::Method::GET, path)
    }

    /// A `POST` of `body`, of `content_type`, to `path`.
    pub fn post(path: impl Into<String>, body: impl Into<Bytes>, content_type: &str) -> RunnerCall {
        RunnerCall::new(reqwest::Method::POST, path).with_body(body, content_type)
    }

    /// A `POST` of `value` as JSON to `path`.
    pub fn post_json(path: impl Into<String>, value: &serde_json::Value) -> RunnerCall {
        RunnerCall::post(path, value.to_string(), "application/json")
    }

    /// This call with `body` of `content_type`.
    pub fn with_body(mut self, body: impl Into<Bytes>, content_type: &str) -> RunnerCall {
        self.body = body.into();
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        self.headers.push(("Content-Type".into(), content_type.into()));
        self
    }

    /// This call with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> RunnerCall {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The call's URL below `app_url` (go's mux wants the slash after `app`).
    pub(super) fn url_below(&self, app_url: &str) -> String {
        format!("{}/{}", app_url.trim_end_matches('/'), self.path.trim_start_matches('/'))
    }

    /// The request, as `http` sends it to `url`.
    pub(super) fn request(&self, http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
        let mut req = http.request(self.method.clone(), url).header("accept", "*/*");
        for (name, value) in &self.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        if !self.body.is_empty() {
            req = req.body(self.body.clone());
        }
        req
    }

    /// Sends the call (no payment), waiting at most `timeout` for the answer to start.
    pub(super) async fn send(
        &self,
        http: &reqwest::Client,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, JobError> {
        send_for_headers(self.request(http, url), url, timeout).await
    }
}

impl Gateway {
    /// Calls a single-shot runner's app once (see the module docs), paying when the
    /// orchestrator asks. The answer's status is the app's (or the orchestrator's: 503 when
    /// the runner is busy, 502 when it cannot be reached); read its body from the answer.
    ///
    /// Errors: [`JobError::InvalidRequest`] for a persistent runner (reserve a session with
    /// [`Gateway::reserve_runner_session`]) or a price unit this gateway cannot pay; a payment
    /// the orchestrator asks for without a signer to pay it; transport failures.
    pub async fn call_runner(
        &self,
        candidate: &RunnerCandidate,
        call: RunnerCall,
    ) -> Result<RunnerAnswer, GatewayError> {
        self.until_shutdown(self.call_runner_until_shutdown(candidate, call)).await
    }

    async fn call_runner_until_shutdown(
        &self,
        candidate: &RunnerCandidate,
        call: RunnerCall,
    ) -> Result<RunnerAnswer, GatewayError> {
        if candidate.runner.mode == MODE_PERSISTENT || candidate.runner.url.ends_with("/session") {
            return Err(JobError::InvalidRequest(format!(
                "runner {} keeps sessions: reserve one and call its app there",
                candidate.runner.url
            ))
            .into());
        }
        let url = call.url_below(&candidate.runner.url);
        let (http, actor_http) = self.orchestrator_clients(&candidate.orchestrator)?;
        let build = || call.request(&http, &url);
        let PaidAnswer { response, paid, identity } =
            self.send_paying(candidate, &url, &build, APP_CALL_TIMEOUT).await?;
        let session_id = paid.as_ref().map(|(challenge, _)| challenge.manifest_id.clone());
        let payments =
            self.pay_while_running(candidate, paid, identity, actor_http, SESSION_PAYMENT_INTERVAL)?;
        Ok(RunnerAnswer::new(response, url, session_id, payments))
    }
}
