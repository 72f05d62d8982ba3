//! A runner's registration with an orchestrator: the bootstrap heartbeat with the
//! orchestrator's registration secret, then a heartbeat every interval the orchestrator names
//! with the heartbeat secret it handed out, and an unregister at the end.
//!
//! The rules are go's (`ai/runner/live_runner.go` `Heartbeat`, `Unregister`) and the Python
//! SDK's (`LiveRunnerRegistration`): `Authorization` carries the secret as is; a 401 on a
//! heartbeat means the orchestrator forgot the runner (it expired, or the orchestrator
//! restarted), so the runner bootstraps again under the same id; any other failure is counted
//! and retried on the next beat; later heartbeats go to the `orchestrator` the answer names.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::runners::{
    parse_go_duration, unregister_path, HeartbeatRequest, HeartbeatResponse, RunnerChannel, SessionEvent,
    DEFAULT_HEARTBEAT_INTERVAL, HEARTBEAT_PATH,
};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::o2r;

use crate::http::{describe, read_body_capped, HttpClients};

/// Time allowed for a heartbeat or an unregister (the Python SDK's).
pub const REGISTRATION_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a runner's call to its orchestrator (registration, or a session callback) failed.
/// Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// The orchestrator answered with an error status.
    #[error("{endpoint}: HTTP {status}: {message}")]
    Http {
        /// Status.
        status: u16,
        /// Path called.
        endpoint: String,
        /// go's message.
        message: String,
    },
    /// No answer.
    #[error("{endpoint}: {message}")]
    Transport {
        /// Path called.
        endpoint: String,
        /// What failed.
        message: String,
    },
    /// No HTTP client for the orchestrator's URL (its trust policy could not be met).
    #[error("no client for the orchestrator: {0}")]
    ClientBuild(String),
    /// The answer is not what the call answers.
    #[error("{endpoint}: invalid answer: {reason}")]
    InvalidAnswer {
        /// Path called.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The request cannot be made as asked (refused before anything is sent).
    #[error("{0}")]
    Invalid(String),
}

/// Counters of one registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrationStats {
    /// Heartbeats the orchestrator accepted (the bootstrap included).
    pub heartbeats: u64,
    /// Heartbeats that failed.
    pub failures: u64,
    /// Bootstraps after the orchestrator forgot the runner (401).
    pub re_registrations: u64,
}

/// What the heartbeat loop, the O2R follower and the handle share.
struct State {
    orchestrator: String,
    registration_secret: String,
    heartbeat_secret: String,
    /// What the next heartbeat says; its `session_ids` are the sessions the runner holds.
    request: HeartbeatRequest,
    interval: Duration,
    o2r: Option<RunnerChannel>,
    stats: RegistrationStats,
}

/// A registered runner, heartbeating until [`RunnerRegistration::unregister`] or drop.
pub struct RunnerRegistration {
    runner_id: String,
    http: reqwest::Client,
    state: Arc<Mutex<State>>,
    beats: JoinHandle<()>,
    o2r: JoinHandle<()>,
    events: broadcast::Sender<SessionEvent>,
}

impl std::fmt::Debug for RunnerRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerRegistration").field("runner_id", &self.runner_id).finish()
    }
}

impl RunnerRegistration {
    /// Registers `heartbeat` (its `runner_url`, `app`, price...) with the orchestrator at
    /// `orchestrator` (its URL, reached under `clients`' trust policy) using `secret`, and
    /// starts heartbeating on the caller's runtime.
    pub async fn register(
        clients: &HttpClients,
        orchestrator: &str,
        secret: &str,
        heartbeat: HeartbeatRequest,
    ) -> Result<RunnerRegistration, RunnerError> {
        let orchestrator = orchestrator.trim_end_matches('/').to_owned();
        let http =
            clients.orchestrator(&orchestrator).map_err(|e| RunnerError::ClientBuild(e.to_string()))?;
        let answer = send_heartbeat(&http, &orchestrator, secret, &heartbeat).await?;
        if answer.heartbeat_secret.is_empty() {
            return Err(RunnerError::InvalidAnswer {
                endpoint: HEARTBEAT_PATH.into(),
                reason: "no heartbeat_secret in the first answer".into(),
            });
        }
        let mut request = heartbeat;
        request.runner_id = answer.runner_id.clone();
        request.session_ids = answer.session_ids.clone();
        let state = Arc::new(Mutex::new(State {
            orchestrator: if answer.orchestrator.is_empty() {
                orchestrator
            } else {
                answer.orchestrator.clone()
            },
            registration_secret: secret.to_owned(),
            heartbeat_secret: answer.heartbeat_secret.clone(),
            interval: parse_go_duration(&answer.heartbeat_interval).unwrap_or(DEFAULT_HEARTBEAT_INTERVAL),
            o2r: answer.o2r.clone(),
            request,
            stats: RegistrationStats { heartbeats: 1, ..Default::default() },
        }));
        let beats = tokio::spawn(heartbeat_loop(http.clone(), state.clone()));
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let owner = SharedState(state.clone());
        let o2r = tokio::spawn(o2r::follow(clients.segment_reader(), owner, events.clone()));
        Ok(RunnerRegistration { runner_id: answer.runner_id, http, state, beats, o2r, events })
    }

    /// The id the orchestrator knows the runner by.
    pub fn runner_id(&self) -> &str {
        &self.runner_id
    }

    /// The orchestrator-to-runner channel (session reserved / released events).
    pub fn o2r(&self) -> Option<RunnerChannel> {
        self.lock().o2r.clone()
    }

    /// The sessions the runner holds, oldest first: as the last heartbeat answer listed them,
    /// updated by each O2R event since.
    pub fn sessions(&self) -> Vec<String> {
        self.lock().request.session_ids.clone()
    }

    /// The O2R session events from now on (reserved, released). A listener that falls more
    /// than 64 events behind misses the oldest (`RecvError::Lagged`).
    pub fn session_events(&self) -> broadcast::Receiver<SessionEvent> {
        self.events.subscribe()
    }

    /// Counters so far.
    pub fn stats(&self) -> RegistrationStats {
        self.lock().stats
    }

    /// Changes what the next heartbeats say (status, capacity, sessions...).
    pub fn update(&self, change: impl FnOnce(&mut HeartbeatRequest)) {
        change(&mut self.lock().request);
    }

    /// Stops heartbeating and unregisters (the orchestrator stops listing the runner at once).
    pub async fn unregister(self) -> Result<(), RunnerError> {
        self.beats.abort();
        self.o2r.abort();
        let (orchestrator, secret) = {
            let s = self.lock();
            (s.orchestrator.clone(), s.heartbeat_secret.clone())
        };
        let endpoint = unregister_path(&self.runner_id);
        let resp = self
            .http
            .post(format!("{orchestrator}{endpoint}"))
            .header("authorization", secret)
            .timeout(REGISTRATION_CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| RunnerError::Transport { endpoint: endpoint.clone(), message: describe(&e) })?;
        let status = resp.status().as_u16();
        if status >= 300 {
            let body = read_body_capped(resp, 4096).await.unwrap_or_default();
            return Err(RunnerError::Http { status, endpoint, message: excerpt(&body) });
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for RunnerRegistration {
    fn drop(&mut self) {
        self.beats.abort();
        self.o2r.abort();
    }
}

/// Events kept for a listener that falls behind.
const EVENT_BACKLOG: usize = 64;

/// The O2R follower's view of the shared state.
struct SharedState(Arc<Mutex<State>>);

impl o2r::O2rOwner for SharedState {
    fn channel_url(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).o2r.as_ref().map(|c| c.url.clone())
    }

    fn with_sessions(&self, change: &mut dyn FnMut(&mut Vec<String>)) {
        change(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()).request.session_ids);
    }
}

/// Heartbeats every interval until aborted.
async fn heartbeat_loop(http: reqwest::Client, state: Arc<Mutex<State>>) {
    loop {
        let interval = state.lock().unwrap_or_else(|e| e.into_inner()).interval;
        tokio::time::sleep(interval).await;
        let (orchestrator, secret, request) = {
            let s = state.lock().unwrap_or_else(|e| e.into_inner());
            (s.orchestrator.clone(), s.heartbeat_secret.clone(), s.request.clone())
        };
        let result = match send_heartbeat(&http, &orchestrator, &secret, &request).await {
            Err(RunnerError::Http { status: 401, .. }) => {
                // Forgotten (expired, or the orchestrator restarted): bootstrap again.
                let bootstrap = state.lock().unwrap_or_else(|e| e.into_inner()).registration_secret.clone();
                let again = send_heartbeat(&http, &orchestrator, &bootstrap, &request).await;
                if again.is_ok() {
                    state.lock().unwrap_or_else(|e| e.into_inner()).stats.re_registrations += 1;
                }
                again
            }
            other => other,
        };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(answer) => {
                s.stats.heartbeats += 1;
                if !answer.heartbeat_secret.is_empty() {
                    s.heartbeat_secret = answer.heartbeat_secret;
                }
                if answer.o2r.is_some() {
                    s.o2r = answer.o2r;
                }
                // The orchestrator's list is authoritative (go's `sessionIDsLocked`).
                s.request.session_ids = answer.session_ids;
                if !answer.orchestrator.is_empty() {
                    s.orchestrator = answer.orchestrator.trim_end_matches('/').to_owned();
                }
                if let Some(i) = parse_go_duration(&answer.heartbeat_interval).filter(|i| !i.is_zero()) {
                    s.interval = i;
                }
            }
            Err(e) => {
                s.stats.failures += 1;
                tracing::warn!(runner = %s.request.runner_id, error = %e, "live runner heartbeat failed");
            }
        }
    }
}

async fn send_heartbeat(
    http: &reqwest::Client,
    orchestrator: &str,
    secret: &str,
    request: &HeartbeatRequest,
) -> Result<HeartbeatResponse, RunnerError> {
    let endpoint = HEARTBEAT_PATH.to_owned();
    let resp = http
        .post(format!("{orchestrator}{HEARTBEAT_PATH}"))
        .header("authorization", secret)
        .json(request)
        .timeout(REGISTRATION_CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| RunnerError::Transport { endpoint: endpoint.clone(), message: describe(&e) })?;
    let status = resp.status().as_u16();
    let body = read_body_capped(resp, 64 * 1024)
        .await
        .map_err(|message| RunnerError::Transport { endpoint: endpoint.clone(), message })?;
    if status != 200 {
        return Err(RunnerError::Http { status, endpoint, message: excerpt(&body) });
    }
    serde_json::from_slice(&body).map_err(|e| RunnerError::InvalidAnswer { endpoint, reason: e.to_string() })
}

fn excerpt(body: &[u8]) -> String {
    gateway_core::error::body_excerpt(body, 300)
}
