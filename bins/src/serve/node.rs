//! What a serving node holds: the SDK's gateway, the streams it runs for its clients (each with
//! the status its events report), who may call it, and its metrics. A stream belongs to the
//! node that started it; nothing here is shared between nodes (the signer is).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_actors::{ByocJob, Gateway};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;

use gateway_core::rejection::JobError;

use super::auth::Auth;
use super::live_registry::LiveEntry;
use super::metrics::NodeMetrics;

/// How often a stream's payment count is read into the metrics.
const PAYMENT_READ_INTERVAL: Duration = Duration::from_secs(1);

/// The node.
pub struct Node {
    /// Runs the jobs.
    pub gateway: Gateway,
    /// Where clients reach this node (the base of the URLs it answers).
    pub base_url: String,
    /// Who may call it.
    pub auth: Auth,
    /// Its metrics.
    pub metrics: NodeMetrics,
    /// The LV2V streams it runs.
    pub live: super::live_registry::LiveStreams,
    /// Start callbacks pull the stream from their caller's RTMP port, as go's gateway behind
    /// MediaMTX does (`--mediamtx`).
    pub mediamtx_rtmp_port: Option<u16>,
    /// `rtmp://host:port` of its RTMP listener as clients reach it (with `--rtmp-listen`).
    pub rtmp_base: std::sync::OnceLock<String>,
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    /// Ids of streams being started: taken before the (slow) start, so two starts of one id
    /// cannot both run.
    starting: Mutex<std::collections::HashSet<String>>,
    draining: AtomicBool,
}

/// An id held for a stream being started; let go when dropped (the start failed, or the
/// stream was added).
pub struct StartingId<'a> {
    node: &'a Node,
    id: String,
}

impl Drop for StartingId<'_> {
    fn drop(&mut self) {
        self.node.starting.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// One stream the node runs.
pub struct Stream {
    /// What a media channel's URL must carry (trickle peers send no bearer token).
    pub media_key: String,
    /// Whether it has a data channel.
    pub has_data: bool,
    /// The job (`None` once stopped).
    pub job: tokio::sync::Mutex<Option<ByocJob>>,
    /// An RTMP publisher feeds its input (one at a time).
    pub rtmp_input: AtomicBool,
    /// What `/status` answers: go's status store for the stream.
    status: Arc<Mutex<Map<String, Value>>>,
    monitor: JoinHandle<()>,
}

impl Stream {
    /// The stream's status now.
    pub fn status(&self) -> Map<String, Value> {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

impl Node {
    /// A node running jobs with `gateway`, reached at `base_url`.
    pub fn new(gateway: Gateway, base_url: String, auth: Auth) -> Node {
        Node {
            gateway,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            metrics: NodeMetrics::new(),
            live: Default::default(),
            rtmp_base: Default::default(),
            mediamtx_rtmp_port: None,
            streams: Mutex::new(HashMap::new()),
            starting: Mutex::new(Default::default()),
            draining: AtomicBool::new(false),
        }
    }

    /// Whether the node is shutting down (no new streams).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Takes no new streams from now on.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The stream `id`, if the node runs it.
    pub fn stream(&self, id: &str) -> Option<Arc<Stream>> {
        self.lock().get(id).cloned()
    }

    /// Holds `id` for a stream about to start; `None` when a stream runs or is starting under it.
    pub fn hold_id(&self, id: &str) -> Option<StartingId<'_>> {
        let streams = self.lock();
        let mut starting = self.starting.lock().unwrap_or_else(|e| e.into_inner());
        if streams.contains_key(id) || !starting.insert(id.to_owned()) {
            return None;
        }
        Some(StartingId { node: self, id: id.to_owned() })
    }

    /// Ids of the streams running now.
    pub fn stream_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Adds a started stream and follows it: its status events become its status (as go's
    /// gateway stores the last `status` event), its payments are counted.
    pub fn add(
        self: &Arc<Node>,
        id: String,
        capability: String,
        has_data: bool,
        media_key: String,
        job: ByocJob,
    ) {
        let mut initial = Map::new();
        initial.insert("whep_url".into(), Value::String(String::new()));
        initial.insert("orchestrator".into(), Value::String(job.orchestrator.clone()));
        let status = Arc::new(Mutex::new(initial));
        let monitor = tokio::spawn(follow(self.clone(), job.events().ok(), status.clone(), id.clone()));
        let stream = Stream {
            media_key,
            has_data,
            job: tokio::sync::Mutex::new(Some(job)),
            rtmp_input: AtomicBool::new(false),
            status,
            monitor,
        };
        self.lock().insert(id, Arc::new(stream));
        self.metrics.streams_started.get_or_create(&super::metrics::CapabilityLabel { capability }).inc();
        self.count_active();
    }

    /// Stops BYOC stream `id` on the node, then on its orchestrator with `body` for the worker:
    /// the worker's reply, or `None` when the node runs no such stream.
    pub async fn stop_byoc(&self, id: &str, body: bytes::Bytes) -> Option<Result<bytes::Bytes, JobError>> {
        let stream = self.stream(id)?;
        let job = stream.job.lock().await.take();
        self.remove(id);
        Some(job?.stop_with_body(body).await)
    }

    /// Stops LV2V stream `entry` (its input's last segment goes out first) and forgets it.
    pub async fn stop_live(&self, entry: &Arc<LiveEntry>, why: &str) {
        self.live.forget(entry);
        self.count_active();
        let Some(stream) = entry.stream.lock().await.take() else { return };
        tracing::info!(stream = %entry.name, reason = why, "stopping a live stream");
        let report = stream.stop().await;
        self.metrics.streams_stopped.inc();
        let payments: u64 = report.status.payments.iter().map(|(_, p)| p.payments_sent).sum();
        self.metrics.payments_sent.inc_by(payments);
    }

    /// Forgets a stream (after its stop).
    pub fn remove(&self, id: &str) -> Option<Arc<Stream>> {
        let removed = self.lock().remove(id);
        self.count_active();
        if removed.is_some() {
            self.metrics.streams_stopped.inc();
        }
        removed
    }

    /// Sets the running-streams gauge: BYOC and LV2V streams (what an autoscaler reads).
    pub fn count_active(&self) {
        let running = self.lock().len() + self.live.names().len();
        self.metrics.streams_active.set(running as i64);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads the stream's events into its status, and its payments into the metrics.
async fn follow(
    node: Arc<Node>,
    events: Option<gateway_actors::channels::JsonReader>,
    status: Arc<Mutex<Map<String, Value>>>,
    id: String,
) {
    let mut counted = 0u64;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(16);
    // On a task of its own: `JsonReader::next` is not cancel-safe.
    let reader = events.map(|mut events| {
        tokio::spawn(async move {
            while let Ok(Some(event)) = events.next().await {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        })
    });
    let mut tick = tokio::time::interval(PAYMENT_READ_INTERVAL);
    let mut events_open = reader.is_some();
    loop {
        tokio::select! {
            event = rx.recv(), if events_open => match event {
                Some(Value::Object(event)) if event.get("type").and_then(Value::as_str) == Some("status") => {
                    *status.lock().unwrap_or_else(|e| e.into_inner()) = event;
                }
                Some(_) => {}
                None => events_open = false,
            },
            _ = tick.tick() => {
                let Some(stream) = node.stream(&id) else { break };
                let sent = match stream.job.try_lock() {
                    Ok(guard) => guard.as_ref().map(|j| j.payment_stats().payments_sent),
                    Err(_) => None,
                };
                if let Some(sent) = sent.filter(|s| *s > counted) {
                    node.metrics.payments_sent.inc_by(sent - counted);
                    counted = sent;
                }
            }
        }
    }
    if let Some(reader) = reader {
        reader.abort();
    }
}
