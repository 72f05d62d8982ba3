//! The LV2V streams a serving node runs, by name (go's `LivePipelines`), and what it keeps of
//! each: the SDK's `LiveStream`, its input's publisher and control channel, go's status store.
//! A registry only: starting, following and stopping them is `live`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gateway_actors::live::{LiveControl, LiveStream};
use gateway_actors::media::VideoPublisher;
use serde_json::{Map, Value};

/// The LV2V streams the node runs, by name (go's `LivePipelines`).
#[derive(Default)]
pub struct LiveStreams {
    by_name: Mutex<HashMap<String, Arc<LiveEntry>>>,
}

impl LiveStreams {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveEntry>>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LiveEntry>> {
        self.lock().get(name).cloned()
    }

    /// The stream whose id is `stream_id`.
    pub(super) fn by_id(&self, stream_id: &str) -> Option<Arc<LiveEntry>> {
        self.lock().values().find(|e| e.stream_id == stream_id).cloned()
    }

    /// Names of the streams running now.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Forgets `entry` if it is still the stream under its name.
    pub(super) fn forget(&self, entry: &Arc<LiveEntry>) -> bool {
        let mut map = self.lock();
        if map.get(&entry.name).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            map.remove(&entry.name);
            return true;
        }
        false
    }
}

/// One LV2V stream the node runs.
pub struct LiveEntry {
    /// Its name (the path's `{stream}`, the RTMP stream key).
    pub name: String,
    /// The id its status is kept under.
    pub stream_id: String,
    pub(super) stream: tokio::sync::Mutex<Option<LiveStream>>,
    pub(super) video: Arc<VideoPublisher>,
    pub(super) control: LiveControl,
    /// go's status store for the stream and its `gateway_status`.
    pub(super) status: Mutex<Map<String, Value>>,
    pub(super) gateway_status: Mutex<Map<String, Value>>,
    /// Whether an input has connected (one at a time).
    pub(super) input_taken: AtomicBool,
}

impl LiveEntry {
    /// The video publisher the stream's input goes to.
    pub fn video(&self) -> &Arc<VideoPublisher> {
        &self.video
    }

    /// Claims the stream's input; `false` when another input has it.
    pub fn take_input(&self) -> bool {
        !self.input_taken.swap(true, Ordering::SeqCst)
    }

    pub(super) fn status_json(&self) -> Value {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let gateway = self.gateway_status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        status.insert("gateway_status".into(), Value::Object(gateway));
        Value::Object(status)
    }
}
