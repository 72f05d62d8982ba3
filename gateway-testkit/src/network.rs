//! The whole local network in one call: orchestrators (gRPC + HTTP + trickle on one port each),
//! a remote signer (which also serves discovery), and an admin API for fault injection.
//!
//! An orchestrator can die and come back like a process: [`LocalNetwork::kill`] closes its
//! port, cuts its connections and ends its workers; [`LocalNetwork::revive`] starts it again
//! on the same address with nothing of the old process but its key and its record (counters,
//! payment ledger).
//!
//! ```no_run
//! # async fn demo() -> Result<(), livepeer_gateway_testkit::network::NetworkError> {
//! use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};
//! let net = LocalNetwork::start(NetworkConfig::default()).await?;
//! println!("orchestrator at {}, signer at {}", net.orchestrator_urls()[0], net.signer_url());
//! net.shutdown().await;
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use gateway_core::capabilities::Capability;
use gateway_core::signer::DiscoveredOrchestrator;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::faults::OrchestratorFault;
use crate::orchestrator::{LocalOrchestrator, OrchestratorConfig, Running};
use crate::serve::{serve, ServerHandle, StillRunning};
use crate::signer::{LocalSigner, SignerConfig, SignerFault};
use crate::tls::SelfSignedTls;
use crate::trickle_server::{TrickleConfig, TrickleFault, TrickleServer};

/// Path prefix of the fault-injection admin API (served on the signer's port).
pub const ADMIN_PREFIX: &str = "/admin";

/// What to start.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Number of orchestrators.
    pub orchestrators: usize,
    /// Serve orchestrators over TLS with a self-signed certificate (as go-livepeer does).
    pub tls: bool,
    /// With `tls`: certificates issued by this CA instead of self-signed ones.
    pub certificate_authority: Option<crate::tls::TestCa>,
    /// Address of the first orchestrator (`127.0.0.1:0` picks a free port); later ones use
    /// free ports.
    pub listen: SocketAddr,
    /// Address of the signer.
    pub signer_listen: SocketAddr,
    /// Orchestrator behaviour (shared by all).
    pub orchestrator: OrchestratorConfig,
    /// Trickle server behaviour (shared by all).
    pub trickle: TrickleConfig,
    /// Signer behaviour.
    pub signer: SignerConfig,
    /// The host orchestrators name in their URLs (service URI, trickle channels) instead of the
    /// address they listen on: for a network reached through a name (`network` in a compose
    /// file, say) while it listens on `0.0.0.0`.
    pub public_host: Option<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            orchestrators: 1,
            tls: true,
            certificate_authority: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            signer_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            orchestrator: OrchestratorConfig::default(),
            trickle: TrickleConfig::default(),
            signer: SignerConfig::default(),
            public_host: None,
        }
    }
}

/// The network failed to start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// There is no orchestrator with this index.
    #[error("there is no orchestrator {0}")]
    NoOrchestrator(usize),
    /// The orchestrator is serving: it must be killed before it can be revived.
    #[error("orchestrator {0} is still serving")]
    StillServing(usize),
    /// The orchestrator's server did not stop in time.
    #[error("orchestrator {index} did not die: {source}")]
    DidNotStop {
        /// Orchestrator index.
        index: usize,
        /// What was still running.
        source: StillRunning,
    },
}

/// How long a killed orchestrator's connections may take to close.
pub const KILL_BOUND: Duration = Duration::from_secs(10);
/// How long a revived orchestrator may wait for its old port.
pub const REBIND_BOUND: Duration = Duration::from_secs(5);

/// One running orchestrator.
#[derive(Debug)]
pub struct OrchestratorNode {
    /// The orchestrator (faults, stats, balances).
    pub orchestrator: LocalOrchestrator,
    /// Its server (address, open connections).
    pub server: ServerHandle,
    /// Its certificate when serving TLS.
    pub tls: Option<SelfSignedTls>,
}

/// A running local network. Call [`LocalNetwork::shutdown`] to stop it; dropping stops the
/// servers without waiting.
pub struct LocalNetwork {
    /// The orchestrators.
    pub orchestrators: Vec<OrchestratorNode>,
    /// The signer.
    pub signer: LocalSigner,
    signer_server: Option<ServerHandle>,
    /// The orchestrators the admin API acts on (replaced on revive).
    admin_orchestrators: Arc<Mutex<Vec<LocalOrchestrator>>>,
    /// Trickle behaviour, for revived orchestrators.
    trickle: TrickleConfig,
}

impl std::fmt::Debug for LocalNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNetwork")
            .field("orchestrators", &self.orchestrator_urls())
            .field("signer", &self.signer_url())
            .finish()
    }
}

impl LocalNetwork {
    /// Starts everything and waits until every port accepts connections.
    pub async fn start(config: NetworkConfig) -> Result<LocalNetwork, NetworkError> {
        let signer = LocalSigner::new(config.signer.clone());
        let mut orchestrators = Vec::with_capacity(config.orchestrators);
        for i in 0..config.orchestrators.max(1) {
            let addr = if i == 0 { config.listen } else { SocketAddr::from(([127, 0, 0, 1], 0)) };
            let listener =
                TcpListener::bind(addr).await.map_err(|source| NetworkError::Bind { addr, source })?;
            let bound = listener.local_addr().map_err(|source| NetworkError::Bind { addr, source })?;
            let tls = match (&config.certificate_authority, config.tls) {
                (_, false) => None,
                (Some(ca), true) => Some(SelfSignedTls::issued_by(ca, &[])?),
                (None, true) => Some(SelfSignedTls::generate(&[])?),
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            let uri = match &config.public_host {
                Some(host) => format!("{scheme}://{host}:{}", bound.port()),
                None => format!("{scheme}://{bound}"),
            };
            let trickle = TrickleServer::new(config.trickle.clone());
            let orchestrator = LocalOrchestrator::new(config.orchestrator.clone(), uri, trickle);
            let server =
                serve(listener, orchestrator.router(), tls.as_ref().map(|t| t.server_config.clone()));
            orchestrators.push(OrchestratorNode { orchestrator, server, tls });
        }
        signer.set_discovery(
            orchestrators
                .iter()
                .map(|o| DiscoveredOrchestrator {
                    address: o.orchestrator.service_uri().to_owned(),
                    score: Some(1.0),
                    // go's discovery lists what the capability bit string and constraints hold:
                    // never BYOC, so `caps=byoc/NAME` matches nothing.
                    capabilities: config
                        .orchestrator
                        .offers
                        .iter()
                        .filter(|c| c.capability != Capability::Byoc)
                        .map(|c| format!("{}/{}", c.capability.pipeline_id(), c.model))
                        .collect(),
                })
                .collect(),
        );
        let addr = config.signer_listen;
        let listener = TcpListener::bind(addr).await.map_err(|source| NetworkError::Bind { addr, source })?;
        let admin_orchestrators =
            Arc::new(Mutex::new(orchestrators.iter().map(|o| o.orchestrator.clone()).collect()));
        let admin =
            admin_router(AdminState { signer: signer.clone(), orchestrators: admin_orchestrators.clone() });
        let signer_server = serve(listener, signer.router().merge(admin), None);
        Ok(LocalNetwork {
            orchestrators,
            signer,
            signer_server: Some(signer_server),
            admin_orchestrators,
            trickle: config.trickle,
        })
    }

    fn node(&mut self, i: usize) -> Result<&mut OrchestratorNode, NetworkError> {
        self.orchestrators.get_mut(i).ok_or(NetworkError::NoOrchestrator(i))
    }

    /// Kills orchestrator `i` as a process dies: its port is closed (connections are refused),
    /// its open connections are cut (requests in flight included), and its sessions' workers
    /// and trickle channels end. Returns once all of that has happened. Killing a dead one
    /// does nothing.
    pub async fn kill(&mut self, i: usize) -> Result<(), NetworkError> {
        let node = self.node(i)?;
        node.server
            .stop_and_wait(KILL_BOUND)
            .await
            .map_err(|source| NetworkError::DidNotStop { index: i, source })?;
        // What ran in the process dies with it: nobody can reach it any more.
        node.orchestrator.stop_all_sessions();
        node.orchestrator.trickle().shutdown();
        Ok(())
    }

    /// Starts killed orchestrator `i` again on the same address, as a fresh process (see
    /// [`LocalOrchestrator::restarted`]): no session, no channel, no balance; same key and
    /// certificate; the same record (counters, ledger). Returns once the port accepts
    /// connections.
    pub async fn revive(&mut self, i: usize) -> Result<(), NetworkError> {
        let trickle_config = self.trickle.clone();
        let node = self.node(i)?;
        if !node.server.is_stopped() {
            return Err(NetworkError::StillServing(i));
        }
        let addr = node.server.addr;
        let deadline = tokio::time::Instant::now() + REBIND_BOUND;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(source) if tokio::time::Instant::now() >= deadline => {
                    return Err(NetworkError::Bind { addr, source })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let orchestrator = node.orchestrator.restarted(TrickleServer::new(trickle_config));
        node.server =
            serve(listener, orchestrator.router(), node.tls.as_ref().map(|t| t.server_config.clone()));
        node.orchestrator = orchestrator.clone();
        if let Some(slot) = self.admin_orchestrators.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i) {
            *slot = orchestrator;
        }
        Ok(())
    }

    /// Whether orchestrator `i` is serving (not killed, or revived since).
    pub fn is_serving(&self, i: usize) -> bool {
        self.orchestrators.get(i).is_some_and(|n| n.server.is_accepting())
    }

    /// What orchestrator `i` runs now (sessions, trickle channels); `None` if there is no such
    /// orchestrator.
    pub fn running(&self, i: usize) -> Option<Running> {
        self.orchestrators.get(i).map(|n| n.orchestrator.running())
    }

    /// Orchestrator service URLs (`https://127.0.0.1:port`).
    pub fn orchestrator_urls(&self) -> Vec<String> {
        self.orchestrators.iter().map(|o| o.orchestrator.service_uri().to_owned()).collect()
    }

    /// The signer's base URL.
    pub fn signer_url(&self) -> String {
        self.signer_server.as_ref().map(|s| format!("http://{}", s.addr)).unwrap_or_default()
    }

    /// The discovery URL (the signer's `/discover-orchestrators`).
    pub fn discovery_url(&self) -> String {
        format!("{}{}", self.signer_url(), gateway_core::signer::DISCOVER_ORCHESTRATORS_PATH)
    }

    /// The trickle base URL of the first orchestrator.
    pub fn trickle_url(&self) -> String {
        format!("{}{}", self.orchestrator_urls()[0], gateway_core::trickle::BASE_PATH)
    }

    /// The admin API base URL.
    pub fn admin_url(&self) -> String {
        format!("{}{ADMIN_PREFIX}", self.signer_url())
    }

    /// The first orchestrator.
    pub fn orchestrator(&self) -> &LocalOrchestrator {
        &self.orchestrators[0].orchestrator
    }

    /// Stops every server and session and waits for them.
    pub async fn shutdown(mut self) {
        self.stop_all();
        for node in self.orchestrators.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), node.server.shutdown()).await;
        }
        if let Some(s) = self.signer_server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), s.shutdown()).await;
        }
    }

    fn stop_all(&self) {
        for node in &self.orchestrators {
            node.orchestrator.stop_all_sessions();
            node.orchestrator.trickle().shutdown();
            node.server.stop();
        }
        if let Some(s) = &self.signer_server {
            s.stop();
        }
    }
}

impl Drop for LocalNetwork {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Which orchestrator a fault targets (index into the network's list; default 0).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Target {
    /// Orchestrator index.
    #[serde(default)]
    pub orchestrator: usize,
}

#[derive(Clone)]
struct AdminState {
    signer: LocalSigner,
    orchestrators: Arc<Mutex<Vec<LocalOrchestrator>>>,
}

impl AdminState {
    fn orch(&self, i: usize) -> Result<LocalOrchestrator, Box<Response>> {
        self.orchestrators.lock().unwrap_or_else(|e| e.into_inner()).get(i).cloned().ok_or_else(|| {
            Box::new((StatusCode::NOT_FOUND, format!("no orchestrator {i}\n")).into_response())
        })
    }
}

/// Admin API: `POST /admin/orchestrators/{i}/faults` (an [`OrchestratorFault`]),
/// `POST /admin/orchestrators/{i}/trickle/{channel}/faults` (a [`TrickleFault`]),
/// `POST /admin/signer/faults` (a [`SignerFault`]), `DELETE` on each to clear,
/// `GET /admin/orchestrators/{i}/stats` (counters, and the sessions and channels running), and `POST /admin/orchestrators/{i}/stop-sessions`
/// (the orchestrator ends every session it runs, closing their channels).
fn admin_router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/orchestrators/{i}/faults", post(orch_fault).delete(orch_clear))
        .route("/admin/orchestrators/{i}/stop-sessions", post(orch_stop_sessions))
        .route("/admin/orchestrators/{i}/trickle/{channel}/faults", post(trickle_fault).delete(trickle_clear))
        .route("/admin/orchestrators/{i}/stats", get(orch_stats))
        .route("/admin/signer/faults", post(signer_fault))
        .route("/admin/signer/faults", delete(signer_clear))
        .with_state(state)
}

async fn orch_fault(
    State(s): State<AdminState>,
    Path(i): Path<usize>,
    Json(f): Json<OrchestratorFault>,
) -> Response {
    match s.orch(i) {
        Ok(o) => {
            o.set_fault(f);
            StatusCode::OK.into_response()
        }
        Err(r) => *r,
    }
}

async fn orch_clear(State(s): State<AdminState>, Path(i): Path<usize>) -> Response {
    match s.orch(i) {
        Ok(o) => {
            o.clear_faults();
            StatusCode::OK.into_response()
        }
        Err(r) => *r,
    }
}

async fn orch_stop_sessions(State(s): State<AdminState>, Path(i): Path<usize>) -> Response {
    match s.orch(i) {
        Ok(o) => {
            o.stop_all_sessions();
            StatusCode::OK.into_response()
        }
        Err(r) => *r,
    }
}

async fn orch_stats(State(s): State<AdminState>, Path(i): Path<usize>) -> Response {
    match s.orch(i) {
        Ok(o) => {
            let st = o.stats();
            let running = o.running();
            Json(serde_json::json!({
                "running_sessions": running.sessions,
                "running_channels": running.channels,
                "get_orchestrator_calls": st.get_orchestrator_calls,
                "lv2v_sessions_started": st.lv2v_sessions_started,
                "byoc_streams_started": st.byoc_streams_started,
                "payments_accepted": st.payments_accepted,
                "tickets_accepted": st.tickets_accepted,
                "stopped_for_payment": st.stopped_for_payment,
                "requests_served": st.requests_served,
                "active_sessions": st.active_sessions,
            }))
            .into_response()
        }
        Err(r) => *r,
    }
}

async fn trickle_fault(
    State(s): State<AdminState>,
    Path((i, channel)): Path<(usize, String)>,
    Json(f): Json<TrickleFault>,
) -> Response {
    match s.orch(i) {
        Ok(o) => {
            o.trickle().set_fault(&channel, f);
            StatusCode::OK.into_response()
        }
        Err(r) => *r,
    }
}

async fn trickle_clear(State(s): State<AdminState>, Path((i, channel)): Path<(usize, String)>) -> Response {
    match s.orch(i) {
        Ok(o) => {
            o.trickle().clear_faults(&channel);
            StatusCode::OK.into_response()
        }
        Err(r) => *r,
    }
}

async fn signer_fault(State(s): State<AdminState>, Json(f): Json<SignerFault>) -> Response {
    s.signer.set_fault(f);
    StatusCode::OK.into_response()
}

async fn signer_clear(State(s): State<AdminState>) -> Response {
    s.signer.clear_faults();
    StatusCode::OK.into_response()
}

/// The BYOC capabilities the network's orchestrators serve.
pub fn byoc_capabilities(config: &NetworkConfig) -> Vec<String> {
    config
        .orchestrator
        .offers
        .iter()
        .filter(|o| o.capability == Capability::Byoc)
        .map(|o| o.model.clone())
        .collect()
}
