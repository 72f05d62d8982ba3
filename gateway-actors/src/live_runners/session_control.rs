//! The runner side of a session: what a runner's app asks of the orchestrator while it serves
//! a session, with the credentials the orchestrator's proxy put on the call
//! (`Livepeer-Session-Control`, `Livepeer-Session-Token`).
//!
//! go-livepeer master serves these (`server/ai_http.go` `CreateLiveRunnerTrickleChannel`,
//! `DeleteLiveRunnerTrickleChannels`, `CreateLiveRunnerSessionProxy`,
//! `StopLiveRunnerSessionInternal`); the Python SDK's `create_trickle_channels`,
//! `remove_trickle_channels`, `create_proxy` and `stop_runner_session` call them. Channels are
//! trickle channels on the orchestrator the session's clients read and write; a proxy is a
//! public URL that reaches the runner (or another URL on its host) with the session headers.

use gateway_core::runners::{
    session_channel_name, ChannelRequest, ChannelsBody, ChannelsDeleted, RunnerChannel, SessionProxy,
    HEADER_RUNNER_ROUTE, HEADER_SESSION_CONTROL, HEADER_SESSION_ID, HEADER_SESSION_TOKEN,
    MAX_CHANNELS_PER_REQUEST,
};
use reqwest::header::HeaderMap;

use super::registration::{RunnerError, REGISTRATION_CALL_TIMEOUT};
use crate::http::{describe, read_body_capped, HttpClients};

/// Largest callback answer read, bytes.
const MAX_CALLBACK_ANSWER_BYTES: usize = 1024 * 1024;

/// A session's callbacks, made from the headers of a call the orchestrator proxied.
pub struct SessionControl {
    /// The runner's route (its id).
    pub runner_id: String,
    /// The session.
    pub session_id: String,
    /// `{svc}/runner/{id}/session/{sid}`.
    pub control_url: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionControl")
            .field("session_id", &self.session_id)
            .field("control_url", &self.control_url)
            .finish()
    }
}

impl SessionControl {
    /// Reads the session's credentials from `headers` (a proxied call's); the control URL is
    /// reached under `clients`' trust policy.
    ///
    /// Errors: [`RunnerError::Invalid`] when a header is missing (the call did not come through
    /// an orchestrator's proxy); [`RunnerError::ClientBuild`].
    pub fn from_headers(clients: &HttpClients, headers: &HeaderMap) -> Result<SessionControl, RunnerError> {
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| RunnerError::Invalid(format!("the call carries no {name} header")))
        };
        let control_url = get(HEADER_SESSION_CONTROL)?.trim_end_matches('/').to_owned();
        let http = clients.orchestrator(&control_url).map_err(|e| RunnerError::ClientBuild(e.to_string()))?;
        Ok(SessionControl {
            runner_id: get(HEADER_RUNNER_ROUTE)?,
            session_id: get(HEADER_SESSION_ID)?,
            token: get(HEADER_SESSION_TOKEN)?,
            control_url,
            http,
        })
    }

    /// Makes trickle channels for the session (an existing name answers the channel it has).
    ///
    /// Errors: [`RunnerError::Invalid`] for 0 or more than [`MAX_CHANNELS_PER_REQUEST`]
    /// channels or a name go refuses, before anything is sent; the orchestrator's refusals.
    pub async fn create_channels(
        &self,
        channels: &[ChannelRequest],
    ) -> Result<Vec<RunnerChannel>, RunnerError> {
        self.check_names(channels.iter().map(|c| c.name.as_str()))?;
        let body = ChannelsBody { channels: channels.to_vec() };
        let answer: ChannelsBody<RunnerChannel> = self
            .call(reqwest::Method::POST, "channels", Some(serde_json::to_value(body).unwrap_or_default()))
            .await?;
        Ok(answer.channels)
    }

    /// Closes the named channels; answers the names deleted.
    pub async fn remove_channels(&self, names: &[String]) -> Result<Vec<String>, RunnerError> {
        self.check_names(names.iter().map(String::as_str))?;
        let body = serde_json::json!({ "channels": names });
        let answer: ChannelsDeleted = self.call(reqwest::Method::DELETE, "channels", Some(body)).await?;
        Ok(answer.deleted)
    }

    /// A public URL for the session reaching `target_url` (the runner's URL when `None`; another
    /// URL must be on the runner's host).
    pub async fn create_proxy(&self, target_url: Option<&str>) -> Result<SessionProxy, RunnerError> {
        let body = match target_url.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => serde_json::json!({ "target_url": t }),
            None => serde_json::json!({}),
        };
        self.call(reqwest::Method::POST, "proxy", Some(body)).await
    }

    /// Ends the session from the runner's side (the orchestrator releases it).
    pub async fn stop(&self) -> Result<(), RunnerError> {
        self.send(reqwest::Method::POST, "stop", None).await.map(|_| ())
    }

    fn check_names<'a>(&self, names: impl ExactSizeIterator<Item = &'a str>) -> Result<(), RunnerError> {
        if names.len() == 0 || names.len() > MAX_CHANNELS_PER_REQUEST {
            return Err(RunnerError::Invalid(format!(
                "name 1 to {MAX_CHANNELS_PER_REQUEST} channels ({} named)",
                names.len()
            )));
        }
        for name in names {
            session_channel_name(&self.session_id, name).map_err(RunnerError::Invalid)?;
        }
        Ok(())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        what: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, RunnerError> {
        let (endpoint, answer) = self.send(method, what, body).await?;
        serde_json::from_slice(&answer)
            .map_err(|e| RunnerError::InvalidAnswer { endpoint, reason: e.to_string() })
    }

    /// Sends one callback; its path and answer body when it succeeded.
    async fn send(
        &self,
        method: reqwest::Method,
        what: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(String, bytes::Bytes), RunnerError> {
        let endpoint = format!("/runner/{}/session/{}/{what}", self.runner_id, self.session_id);
        let mut req = self
            .http
            .request(method, format!("{}/{what}", self.control_url))
            .header(HEADER_SESSION_TOKEN, &self.token)
            .timeout(REGISTRATION_CALL_TIMEOUT);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RunnerError::Transport { endpoint: endpoint.clone(), message: describe(&e) })?;
        let status = resp.status().as_u16();
        let answer = read_body_capped(resp, MAX_CALLBACK_ANSWER_BYTES)
            .await
            .map_err(|message| RunnerError::Transport { endpoint: endpoint.clone(), message })?;
        if !(200..300).contains(&status) {
            let message = gateway_core::error::body_excerpt(&answer, 300);
            return Err(RunnerError::Http { status, endpoint, message });
        }
        Ok((endpoint, answer))
    }
}
