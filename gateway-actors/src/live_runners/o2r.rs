//! The runner's side of its O2R channel: the orchestrator's session events (reserved,
//! released) read as they come, from the channel's first message, as the Python SDK's
//! `LiveRunnerRegistration` reads them. Each event updates the runner's list of sessions and is
//! passed on to whoever listens. When the orchestrator hands out a new channel (the runner
//! registered again), the follower moves to it.

use std::time::Duration;

use gateway_core::runners::{SessionEvent, SessionEventKind};
use gateway_core::trickle::SeqSpec;
use tokio::sync::broadcast;

use crate::channels::JsonReader;
use crate::trickle::SegmentGetClient;

/// Wait before looking for the channel again after it ended or failed.
const RETRY: Duration = Duration::from_millis(500);

/// What the follower reads and updates of its registration.
pub(super) trait O2rOwner: Send + 'static {
    /// The O2R channel's URL now (the registration's latest), if any.
    fn channel_url(&self) -> Option<String>;
    /// Runs `change` on the runner's sessions.
    fn with_sessions(&self, change: &mut dyn FnMut(&mut Vec<String>));
}

/// Follows the registration's O2R channel until aborted.
pub(super) async fn follow(
    reader: SegmentGetClient,
    owner: impl O2rOwner,
    events: broadcast::Sender<SessionEvent>,
) {
    let mut finished: Option<String> = None;
    loop {
        let url = owner.channel_url();
        let Some(url) = url.filter(|u| finished.as_deref() != Some(u.as_str())) else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let mut messages = JsonReader::new(reader.clone(), &url, SeqSpec::At(0));
        loop {
            match messages.next().await {
                Ok(Some(message)) => {
                    if let Some(event) = SessionEvent::from_o2r(&message) {
                        owner.with_sessions(&mut |sessions| apply(sessions, &event));
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

fn apply(sessions: &mut Vec<String>, event: &SessionEvent) {
    match event.kind {
        SessionEventKind::Reserved if !sessions.contains(&event.session_id) => {
            sessions.push(event.session_id.clone())
        }
        SessionEventKind::Released => sessions.retain(|s| s != &event.session_id),
        SessionEventKind::Reserved => {}
    }
}
