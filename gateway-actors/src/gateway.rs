//! The `Gateway` handle: what users hold. `Send + Sync + Clone`, usable from any tokio runtime.
//!
//! Actix actors need a running actix `System`, which a user's multi-threaded `#[tokio::main]`
//! service does not have. The gateway therefore runs its actors (signer client, orchestrator
//! selector, payment schedulers) on a System of its own, on a dedicated thread, and talks to
//! them through their addresses. The media path (trickle publishers and subscribers) runs on
//! the caller's runtime, so it scales with the caller's threads.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use gateway_core::capabilities::CapabilityQuery;
use gateway_core::error::{SignerError, TokenError, TrickleError};
use gateway_core::jobs;
use gateway_core::rejection::JobError;
use gateway_core::signer::SignerIdentity;
use gateway_core::token::{GatewayToken, NetworkSettings};

use crate::grpc::OrchestratorRpc;
use crate::http::{ClientBuildError, HttpClients};
use crate::payments::RefreshOrchestratorInfo;
use crate::selector::{OrchestratorSelector, Select, Selection, SelectorConfig};
use crate::signer_client::{GetIdentity, SignerClient, SignerEndpoint};
use crate::tls::OrchestratorTrust;

/// How a gateway reaches the network and pays.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Orchestrators, signer and discovery (merge a token in with [`GatewayConfig::with_token`]).
    pub network: NetworkSettings,
    /// How orchestrator certificates are checked.
    pub trust: OrchestratorTrust,
    /// Selection timeouts and parallelism.
    pub selector: SelectorConfig,
    /// How often an LV2V job pays.
    pub lv2v_payment_interval: Duration,
    /// How often a BYOC stream tops up.
    pub byoc_payment_interval: Duration,
    /// Extra CA certificates (PEM) trusted for signers and discovery, besides the system roots.
    pub signer_ca_pem: Vec<Vec<u8>>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            network: NetworkSettings::default(),
            trust: OrchestratorTrust::default(),
            selector: SelectorConfig::default(),
            lv2v_payment_interval: jobs::LV2V_PAYMENT_INTERVAL,
            byoc_payment_interval: jobs::BYOC_PAYMENT_INTERVAL,
            signer_ca_pem: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// Merges a gateway token: its fields win over the ones already set.
    pub fn with_token(mut self, token: &str) -> Result<GatewayConfig, TokenError> {
        let token = GatewayToken::parse(token)?;
        self.network = GatewayToken::resolve(Some(&token), &self.network);
        Ok(self)
    }
}

/// Anything that can go wrong using the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Selecting, starting or paying for a job failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// The remote signer failed.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// A trickle channel failed.
    #[error(transparent)]
    Trickle(#[from] TrickleError),
    /// The gateway could not be built.
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    /// The gateway has been shut down.
    #[error("the gateway has been shut down")]
    Stopped,
}

struct Actors {
    signer: Addr<SignerClient>,
    selector: Addr<OrchestratorSelector>,
    arbiter: actix::ArbiterHandle,
    system: actix::System,
}

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    /// HTTP clients for the media path (the caller's runtime).
    pub(crate) http: HttpClients,
    /// HTTP client for actors (the gateway's own runtime; separate pools).
    pub(crate) actor_http: HttpClients,
    actors: Actors,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Cancelled by `shutdown`: ends calls running on the caller's runtime (job starts).
    shutdown: tokio_util::sync::CancellationToken,
}

/// A gateway: select orchestrators, start and pay for jobs. Clone it freely.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("network", &self.inner.config.network).finish()
    }
}

impl Gateway {
    /// Starts the gateway's actors on their own thread.
    pub fn start(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let http = HttpClients::with_signer_roots(config.trust.clone(), &config.signer_ca_pem)?;
        let actor_http = HttpClients::with_signer_roots(config.trust.clone(), &config.signer_ca_pem)?;
        let rpc = OrchestratorRpc::new(config.trust.clone());
        let endpoint = config
            .network
            .signer
            .clone()
            .map(|url| SignerEndpoint { url, headers: config.network.signer_headers.clone() });
        let (tx, rx) = std::sync::mpsc::channel();
        let (signer_http, sel_http, sel_rpc) = (actor_http.signer.clone(), actor_http.clone(), rpc);
        let (settings, sel_config) = (config.network.clone(), config.selector);
        let thread = std::thread::Builder::new()
            .name("livepeer-gateway-actors".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let signer = SignerClient::new(signer_http, endpoint).start();
                    let selector = OrchestratorSelector::new(sel_rpc, sel_http, settings, sel_config).start();
                    let _ = tx.send(Actors {
                        signer,
                        selector,
                        arbiter: actix::Arbiter::current(),
                        system: actix::System::current(),
                    });
                });
                let _ = system.run();
            })
            .map_err(|e| ClientBuildError(format!("cannot start the actor thread: {e}")))?;
        let actors = rx.recv().map_err(|_| GatewayError::Stopped)?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                config,
                http,
                actor_http,
                actors,
                thread: Mutex::new(Some(thread)),
                shutdown: tokio_util::sync::CancellationToken::new(),
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// HTTP clients of the media path (for trickle tools built on the gateway's trust policy).
    pub fn http(&self) -> &HttpClients {
        &self.inner.http
    }

    /// The gateway's identity from the signer (`None` offchain).
    pub async fn identity(&self) -> Result<Option<SignerIdentity>, GatewayError> {
        self.inner
            .actors
            .signer
            .send(GetIdentity)
            .await
            .map_err(|_| GatewayError::Stopped)?
            .map_err(Into::into)
    }

    /// Selects orchestrators for `queries` (fastest first), with every rejection.
    pub async fn select(
        &self,
        queries: &[CapabilityQuery],
        max_price_wei_per_unit: Option<f64>,
    ) -> Result<Selection, GatewayError> {
        let identity = self.identity().await?;
        self.select_as(queries, identity, max_price_wei_per_unit, Vec::new()).await
    }

    pub(crate) async fn select_as(
        &self,
        queries: &[CapabilityQuery],
        identity: Option<SignerIdentity>,
        max_price_wei_per_unit: Option<f64>,
        exclude: Vec<String>,
    ) -> Result<Selection, GatewayError> {
        let msg = Select { queries: queries.to_vec(), identity, max_price_wei_per_unit, exclude };
        Ok(self.inner.actors.selector.send(msg).await.map_err(|_| GatewayError::Stopped)??)
    }

    /// Runs `work` until it ends or the gateway shuts down ([`GatewayError::Stopped`]). For
    /// calls that run on the caller's runtime, which stopping the actor system does not reach.
    pub(crate) async fn until_shutdown<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        tokio::select! {
            biased;
            _ = self.inner.shutdown.cancelled() => Err(GatewayError::Stopped),
            result = work => result,
        }
    }

    pub(crate) fn signer_addr(&self) -> Option<Addr<SignerClient>> {
        self.inner.config.network.signer.as_ref().map(|_| self.inner.actors.signer.clone())
    }

    /// The media-path and actor-side HTTP clients for the orchestrator at `origin`.
    pub(crate) fn orchestrator_clients(
        &self,
        origin: &str,
    ) -> Result<(reqwest::Client, reqwest::Client), ClientBuildError> {
        Ok((self.inner.http.orchestrator(origin)?, self.inner.actor_http.orchestrator(origin)?))
    }

    pub(crate) fn arbiter(&self) -> &actix::ArbiterHandle {
        &self.inner.actors.arbiter
    }

    /// Who answers payment sessions' requests for fresh orchestrator info: the selector.
    pub(crate) fn refresh_recipient(&self) -> Recipient<RefreshOrchestratorInfo> {
        self.inner.actors.selector.clone().recipient()
    }

    /// Stops the actors (payment schedulers included). Jobs already started keep their trickle
    /// channels until stopped; call their `stop` first.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.actors.system.stop();
        if let Some(t) = self.inner.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // Joining from inside an async context could block a runtime thread; only join
            // when it finishes promptly.
            let _ = std::thread::spawn(move || t.join());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.actors.system.stop();
    }
}
