//! The runner's side of its O2R channel: the orchestrator's session events (reserved,
//! released) read as they come, from the channel's first message, as the Python SDK's
//! `LiveRunnerRegistration` reads them. Each event updates the runner's list of sessions and is
//! passed on to whoever listens. When the orchestrator hands out a new channel (the runner
//! registered again), the follower moves to it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::runners::{SessionEvent, SessionEventKind};
use gateway_core::trickle::SeqSpec;
use tokio::sync::broadcast;

use super::registration::State;
use crate::channels::JsonReader;
use crate::trickle::SegmentGetClient;

/// Wait before looking for the channel again after it ended or failed.
const RETRY: Duration = Duration::from_millis(500);
/// Events kept for a listener that falls behind.
pub(super) const EVENT_BACKLOG: usize = 64;

/// Follows the registration's O2R channel until aborted.
pub(super) async fn follow(
    reader: SegmentGetClient,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<SessionEvent>,
) {
    let mut finished: Option<String> = None;
    loop {
        let url = state.lock().unwrap_or_else(|e| e.into_inner()).o2r.as_ref().map(|c| c.url.clone());
        let Some(url) = url.filter(|u| finished.as_deref() != Some(u.as_str())) else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let mut messages = JsonReader::new(reader.clone(), &url, SeqSpec::At(0));
        loop {
            match messages.next().await {
                Ok(Some(message)) => {
                    if let Some(event) = SessionEvent::from_o2r(&message) {
                        apply(&state, &event);
                        let _ = events.send(event);
                    }
                }
                // The channel closed: wait for a new one.
                Ok(None) => {
                    finished = Some(url);
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "O2R channel read failed; reading it again");
                    tokio::time::sleep(RETRY).await;
                    break;
                }
            }
        }
    }
}

fn apply(state: &Mutex<State>, event: &SessionEvent) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let sessions = &mut s.request.session_ids;
    match event.kind {
        SessionEventKind::Reserved if !sessions.contains(&event.session_id) => {
            sessions.push(event.session_id.clone())
        }
        SessionEventKind::Released => sessions.retain(|s| s != &event.session_id),
        SessionEventKind::Reserved => {}
    }
}
