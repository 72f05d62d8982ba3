//! The control channel of a live stream, across swaps: a message is sent on the current
//! orchestrator's channel; one that cannot be delivered there because the orchestrator failed
//! waits for the next orchestrator and goes there, or is refused with a typed error when the
//! stream ends or the swap takes too long. Never dropped silently.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Mutex};

use super::LiveStreamError;
use crate::channels::ControlWriter;
use crate::trickle::{ChannelKind, ChannelRoutes};

/// How long a control message waits for a swap in progress to give it a channel.
pub const CONTROL_SWAP_WAIT: Duration = Duration::from_secs(30);

/// Sends control messages to a live stream's worker, wherever the stream runs now. Cheap to
/// clone; clones share the channel.
#[derive(Clone)]
pub struct LiveControl {
    routes: watch::Receiver<ChannelRoutes>,
    writer: Arc<Mutex<Option<(u32, ControlWriter)>>>,
}

impl std::fmt::Debug for LiveControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveControl").finish_non_exhaustive()
    }
}

impl LiveControl {
    pub(crate) fn new(routes: watch::Receiver<ChannelRoutes>) -> LiveControl {
        LiveControl { routes, writer: Arc::new(Mutex::new(None)) }
    }

    /// Sends `message` as one segment and answers its sequence number on the channel that took
    /// it. During a swap it waits (at most [`CONTROL_SWAP_WAIT`]) for the next orchestrator.
    pub async fn send(&self, message: &Value) -> Result<u64, LiveStreamError> {
        let mut routes = self.routes.clone();
        let mut slot = self.writer.lock().await;
        loop {
            let current = routes.borrow_and_update().clone();
            if current.ended {
                return Err(LiveStreamError::Ended);
            }
            let (Some(url), Some(http)) = (current.channels.url(ChannelKind::Control), current.http.clone())
            else {
                return Err(LiveStreamError::NoChannel("control"));
            };
            if slot.as_ref().is_none_or(|(generation, _)| *generation != current.generation) {
                if let Some((_, old)) = slot.take() {
                    tokio::spawn(old.close());
                }
                let writer = ControlWriter::connect(http, url, ControlWriter::default_keepalive()).await;
                *slot = Some((current.generation, writer));
            }
            let Some((_, writer)) = slot.as_ref() else { continue };
            match writer.send(message).await {
                Ok(seq) => return Ok(seq),
                Err(e) => {
                    // Not taken: wait for the stream to move on, then send it there.
                    tracing::info!(error = %e, "control message not delivered; waiting for the next orchestrator");
                    match tokio::time::timeout(
                        CONTROL_SWAP_WAIT,
                        next_generation(&mut routes, current.generation),
                    )
                    .await
                    {
                        Ok(true) => continue,
                        Ok(false) => return Err(LiveStreamError::Ended),
                        Err(_) => return Err(LiveStreamError::Control(e)),
                    }
                }
            }
        }
    }

    /// Closes the channel's writer (the keepalive stops).
    pub(crate) async fn close(&self) {
        if let Some((_, w)) = self.writer.lock().await.take() {
            w.close().await;
        }
    }
}

/// Waits for a generation after `generation`: `false` when the stream ends instead.
async fn next_generation(routes: &mut watch::Receiver<ChannelRoutes>, generation: u32) -> bool {
    loop {
        {
            let r = routes.borrow_and_update();
            if r.ended {
                return false;
            }
            if r.generation != generation {
                return true;
            }
        }
        if routes.changed().await.is_err() {
            return false;
        }
    }
}
