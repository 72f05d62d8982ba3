//! The orchestrator's gRPC side: `Orchestrator.GetOrchestrator` over TLS (checked by the
//! [`OrchestratorTrust`] policy) or plaintext HTTP/2.
//!
//! The TLS handshake is ours, not tonic's: a tower connector dials TCP and runs rustls with the
//! policy's verifier, so the pins that guard orchestrator HTTP calls guard gRPC too, and a
//! refusal surfaces as [`RpcErrorKind::Untrusted`] with the typed [`TrustError`] instead of a
//! generic transport failure. Under [`OrchestratorTrust::Pinned`] this is also where a restarted
//! orchestrator's new certificate is confirmed: the handshake lets it through provisionally, and
//! the answer is judged by [`crate::tls::PinStore::observe`] (same ETH identity: re-pinned with a
//! warning; another: refused) before anything else may use the certificate. Every answer over a
//! pinned certificate is checked against the pinned identity the same way. Channels are cached
//! per address; a channel whose call failed at the transport level, or whose answer was
//! refused, is dropped so the next call dials afresh (and re-checks the pin).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_core::error::redact_url;
use gateway_core::lp_rpc::orchestrator_client::OrchestratorClient;
use gateway_core::lp_rpc::{Capabilities, OrchestratorInfo, OrchestratorRequest};
use gateway_core::signer::SignerIdentity;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::http::innermost_cause;
use crate::tls::{client_config, trust_error, OrchestratorTrust, Role, TrustError};

/// go-livepeer's gRPC connect timeout (`GRPCConnectTimeout`).
pub(crate) const GRPC_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// go-livepeer's gRPC call timeout (`GRPCTimeout`).
pub(crate) const GRPC_CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// Most channels kept open at once. Each holds a connection; selection asks every discovered
/// orchestrator, so without a bound a large network would leave hundreds open.
pub(crate) const MAX_CACHED_CHANNELS: usize = 64;
/// Port go-livepeer orchestrators listen on when an address names none.
pub(crate) const DEFAULT_ORCHESTRATOR_PORT: u16 = 8935;

/// Timeouts of [`OrchestratorRpc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcConfig {
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// One call, from sending the request to the decoded reply (connecting included).
    pub call_timeout: Duration,
}

impl Default for RpcConfig {
    fn default() -> Self {
        RpcConfig { connect_timeout: GRPC_CONNECT_TIMEOUT, call_timeout: GRPC_CALL_TIMEOUT }
    }
}

/// What went wrong in a call, for callers that react differently (retry, reject, tell the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcErrorKind {
    /// The address is not `host:port`, `https://host:port` or `http://host:port`.
    InvalidAddress,
    /// TCP connection or HTTP/2 set-up failed (refused, unreachable, reset).
    Connect,
    /// The TLS handshake failed for a reason other than the trust policy (a plaintext port,
    /// an alert, a protocol error).
    Tls,
    /// The trust policy refused the orchestrator: its certificate (changed under strict
    /// pinning, not CA-verified, ...) or the ETH identity its answer names.
    Untrusted(TrustError),
    /// Connecting or the call took longer than allowed.
    Timeout,
    /// The orchestrator answered with a gRPC error status.
    Status(tonic::Code),
}

/// A failed `GetOrchestrator` call. Display names the address without credentials or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorRpcError {
    /// The address as given by the caller.
    pub address: String,
    /// The class of failure.
    pub kind: RpcErrorKind,
    /// Details (server message, TLS alert, socket error).
    pub message: String,
}

impl OrchestratorRpcError {
    /// What went wrong, without the address (for lists that name the orchestrator already,
    /// such as selection rejections).
    pub fn cause(&self) -> String {
        match &self.kind {
            RpcErrorKind::InvalidAddress => format!("invalid address: {}", self.message),
            RpcErrorKind::Connect => format!("cannot connect: {}", self.message),
            RpcErrorKind::Tls => format!("TLS handshake failed: {}", self.message),
            RpcErrorKind::Untrusted(e) => format!("not trusted: {e}"),
            RpcErrorKind::Timeout => format!("timed out: {}", self.message),
            RpcErrorKind::Status(code) => format!("gRPC status {:?}: {}", code, self.message),
        }
    }
}

impl fmt::Display for OrchestratorRpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GetOrchestrator on {} failed: {}", redact_url(&self.address), self.cause())
    }
}

impl std::error::Error for OrchestratorRpcError {}

/// Where and how to dial one orchestrator, parsed from its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestratorTarget {
    /// Host name or IP literal (without IPv6 brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether the port speaks TLS (everything but explicit `http://`).
    pub tls: bool,
}

impl OrchestratorTarget {
    /// Parses `host:port` (TLS), `https://host:port` or `http://host:port` (plaintext HTTP/2,
    /// for local and development orchestrators). A path other than `/`, a query, a fragment or
    /// credentials are refused: an orchestrator address names a port, nothing more.
    pub fn parse(address: &str) -> Result<OrchestratorTarget, String> {
        let trimmed = address.trim();
        if trimmed.is_empty() {
            return Err("the address is empty".into());
        }
        let with_scheme =
            if trimmed.contains("://") { trimmed.to_owned() } else { format!("https://{trimmed}") };
        let url = url::Url::parse(&with_scheme).map_err(|e| format!("not host:port or a URL ({e})"))?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("unsupported scheme {other:?} (use https:// or http://)")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials are not allowed in an orchestrator address".into());
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err("a path, query or fragment is not allowed in an orchestrator address".into());
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("no host".into()),
        };
        // `Url` drops a port equal to the scheme default; bare `host` means go-livepeer's port.
        let explicit_port = url.port();
        let port = match explicit_port {
            Some(p) => p,
            None if trimmed.contains("://") => {
                url.port_or_known_default().unwrap_or(DEFAULT_ORCHESTRATOR_PORT)
            }
            None if has_port_suffix(trimmed) => 443,
            None => DEFAULT_ORCHESTRATOR_PORT,
        };
        Ok(OrchestratorTarget { host, port, tls })
    }

    /// `host:port`, with brackets around IPv6 literals.
    pub(crate) fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://host:port` or `http://host:port`.
    pub(crate) fn origin(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.authority())
    }
}

/// Whether a scheme-less address ends in `:<digits>` after its host (`h:443` parsed by `Url`
/// loses the default port, which must not turn into 8935).
fn has_port_suffix(address: &str) -> bool {
    let after_host = address.rsplit(']').next().unwrap_or(address);
    after_host.rsplit_once(':').is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Why our connector could not produce a stream; recovered from tonic's error chain to pick the
/// [`RpcErrorKind`].
#[derive(Debug)]
enum DialError {
    Tcp(std::io::Error),
    Tls(std::io::Error),
    Timeout(Duration),
    ServerName(String),
}

impl fmt::Display for DialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialError::Tcp(e) => write!(f, "{e}"),
            DialError::Tls(e) => match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(rustls::Error::InvalidMessage(_)) => {
                    write!(f, "{e} (is it a plaintext orchestrator? then use http://host:port)")
                }
                _ => write!(f, "{e}"),
            },
            DialError::Timeout(d) => write!(f, "connecting took longer than {d:?}"),
            DialError::ServerName(h) => write!(f, "{h:?} is not a valid TLS server name"),
        }
    }
}

impl std::error::Error for DialError {}

/// One stream to an orchestrator: plaintext or TLS, both wrapped for hyper.
type DialedIo = TokioIo<Box<dyn IoStream>>;

trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> IoStream for T {}

async fn dial(
    target: OrchestratorTarget,
    tls: Option<TlsConnector>,
    timeout: Duration,
) -> Result<DialedIo, DialError> {
    let connect = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port)).await.map_err(DialError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok(TokioIo::new(Box::new(tcp) as Box<dyn IoStream>));
        };
        let name = match target.host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(target.host.clone())
                .map_err(|_| DialError::ServerName(target.host.clone()))?,
        };
        let stream = tls.connect(name, tcp).await.map_err(DialError::Tls)?;
        Ok(TokioIo::new(Box::new(stream) as Box<dyn IoStream>))
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| DialError::Timeout(timeout))?
}

/// The `GetOrchestrator` request a gateway sends: signed by `identity` when paying (so the
/// orchestrator answers ticket parameters for it), asking for `capabilities`. Capacity is
/// checked when a job starts, so a busy orchestrator still answers and ranks.
pub fn orchestrator_request(
    identity: Option<&SignerIdentity>,
    capabilities: Option<Capabilities>,
) -> OrchestratorRequest {
    OrchestratorRequest {
        address: identity.map(|i| i.address_bytes.to_vec()).unwrap_or_default(),
        sig: identity.map(|i| i.signature.clone()).unwrap_or_default(),
        capabilities,
        ignore_capacity_check: true,
    }
}

/// The `host:port` and certificate fingerprint the current connection of a channel presented.
type Presented = Arc<Mutex<Option<(String, String)>>>;

/// A cached channel and what its connection presented.
#[derive(Clone)]
struct Cached {
    channel: Channel,
    presented: Presented,
}

/// `GetOrchestrator` client. Cheap to clone, `Send + Sync`; clones share the channel cache.
#[derive(Clone)]
pub struct OrchestratorRpc {
    trust: OrchestratorTrust,
    config: RpcConfig,
    channels: Arc<Mutex<HashMap<String, Cached>>>,
}

impl fmt::Debug for OrchestratorRpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestratorRpc").field("trust", &self.trust).field("config", &self.config).finish()
    }
}

impl OrchestratorRpc {
    /// A client with go-livepeer's timeouts.
    pub fn new(trust: OrchestratorTrust) -> OrchestratorRpc {
        OrchestratorRpc::with_config(trust, RpcConfig::default())
    }

    /// A client with the given timeouts.
    pub fn with_config(trust: OrchestratorTrust, config: RpcConfig) -> OrchestratorRpc {
        OrchestratorRpc { trust, config, channels: Arc::default() }
    }

    /// The timeouts in use.
    pub fn config(&self) -> RpcConfig {
        self.config
    }

    /// How orchestrator certificates are checked.
    pub fn trust(&self) -> &OrchestratorTrust {
        &self.trust
    }

    /// Calls `GetOrchestrator` on `address`, connecting (or reusing a cached channel) first.
    /// The whole call, connecting included, is bounded by the call timeout.
    pub async fn get_orchestrator(
        &self,
        address: &str,
        request: OrchestratorRequest,
    ) -> Result<OrchestratorInfo, OrchestratorRpcError> {
        let err = |kind, message: String| OrchestratorRpcError { address: address.to_owned(), kind, message };
        let target = OrchestratorTarget::parse(address).map_err(|m| err(RpcErrorKind::InvalidAddress, m))?;
        let key = target.origin();
        let call_timeout = self.config.call_timeout;
        let call = async {
            let (conn, cached) = self.channel(&target).await?;
            let result = match call_once(conn.channel.clone(), request.clone(), call_timeout).await {
                // A cached channel whose connection died (the orchestrator restarted, an idle
                // connection was cut) fails once before reconnecting; that says nothing about
                // the orchestrator, so dial afresh and ask again.
                Err((kind, _)) if cached && !matches!(kind, RpcErrorKind::Status(_)) => {
                    self.forget_channel(&key);
                    let (conn, _) = self.channel(&target).await?;
                    call_once(conn.channel.clone(), request, call_timeout).await.map(|info| (info, conn))
                }
                result => result.map(|info| (info, conn)),
            };
            let (info, conn) = result?;
            self.judge(&conn, &info).map_err(|e| (RpcErrorKind::Untrusted(e), String::new()))?;
            Ok(info)
        };
        let result = match tokio::time::timeout(call_timeout, call).await {
            Ok(r) => r,
            Err(_) => Err((RpcErrorKind::Timeout, format!("no answer within {call_timeout:?}"))),
        };
        result.map_err(|(kind, message)| {
            // A status from the server proves the channel works; anything else may mean a dead
            // connection, a changed certificate or a refused identity, so the next call must
            // dial again.
            if !matches!(kind, RpcErrorKind::Status(_)) {
                self.forget_channel(&key);
            }
            err(kind, message)
        })
    }

    /// Closes the cached channel to `address`, if any (for orchestrators that will not be used,
    /// such as ones a selection rejected).
    pub(crate) fn forget(&self, address: &str) {
        if let Ok(target) = OrchestratorTarget::parse(address) {
            self.forget_channel(&target.origin());
        }
    }

    /// Checks an answer against the pins (`Pinned` and `Strict` over TLS): the identity it
    /// names, and, when the connection presented a new certificate, whether it may be re-pinned.
    fn judge(&self, conn: &Cached, info: &OrchestratorInfo) -> Result<(), TrustError> {
        let Some(pins) = self.trust.pins() else { return Ok(()) };
        let presented = conn.presented.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some((origin, fingerprint)) = presented else { return Ok(()) };
        let allow_repin = matches!(self.trust, OrchestratorTrust::Pinned(_));
        pins.observe(&origin, &fingerprint, info, allow_repin).map(|_| ())
    }

    fn forget_channel(&self, key: &str) {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// The cached channel for `target` (`true`), or a newly connected one (`false`).
    async fn channel(&self, target: &OrchestratorTarget) -> Result<(Cached, bool), (RpcErrorKind, String)> {
        let key = target.origin();
        if let Some(c) = self.channels.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok((c.clone(), true));
        }
        // The connector ignores the URI it is handed and dials `target` itself, so the endpoint
        // URI only feeds the `:authority`/`:scheme` of requests (hence `origin`).
        let invalid = |e: &dyn fmt::Display| (RpcErrorKind::InvalidAddress, e.to_string());
        let origin: Uri = key.parse().map_err(|e| invalid(&e))?;
        let endpoint = Endpoint::from_shared(format!("http://{}", target.authority()))
            .map_err(|e| invalid(&e))?
            .origin(origin)
            .connect_timeout(self.config.connect_timeout)
            .tcp_nodelay(true);
        // Pins are per host:port, so the TLS config is made for this target's port.
        let presented = Presented::default();
        let tls = target.tls.then(|| {
            let role = Role::Probe(presented.clone());
            TlsConnector::from(Arc::new(client_config(&self.trust, &[b"h2"], target.port, role)))
        });
        let (target, connect_timeout) = (target.clone(), self.config.connect_timeout);
        let connector =
            tower::service_fn(move |_uri: Uri| dial(target.clone(), tls.clone(), connect_timeout));
        let channel = endpoint.connect_with_connector(connector).await.map_err(|e| classify_transport(&e))?;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.len() >= MAX_CACHED_CHANNELS && !channels.contains_key(&key) {
            // Any entry will do: a dropped channel only costs a new dial on its next use.
            if let Some(victim) = channels.keys().next().cloned() {
                channels.remove(&victim);
            }
        }
        let cached = Cached { channel, presented };
        channels.insert(key, cached.clone());
        Ok((cached, false))
    }
}

async fn call_once(
    channel: Channel,
    request: OrchestratorRequest,
    timeout: Duration,
) -> Result<OrchestratorInfo, (RpcErrorKind, String)> {
    let mut req = tonic::Request::new(request);
    // Tells the orchestrator our deadline (grpc-timeout) so it can give up too.
    req.set_timeout(timeout);
    OrchestratorClient::new(channel)
        .get_orchestrator(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| classify_status(&s))
}

fn classify_transport(e: &(dyn std::error::Error + 'static)) -> (RpcErrorKind, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(dial) = s.downcast_ref::<DialError>() {
            if let DialError::Tls(io) = dial {
                if let Some(refusal) = trust_error(io) {
                    return (RpcErrorKind::Untrusted(refusal.clone()), String::new());
                }
            }
            let kind = match dial {
                DialError::Tcp(_) => RpcErrorKind::Connect,
                DialError::Tls(_) | DialError::ServerName(_) => RpcErrorKind::Tls,
                DialError::Timeout(_) => RpcErrorKind::Timeout,
            };
            return (kind, dial.to_string());
        }
        if s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return (RpcErrorKind::Timeout, s.to_string());
        }
        source = s.source();
    }
    (RpcErrorKind::Connect, innermost_cause(e))
}

fn classify_status(s: &tonic::Status) -> (RpcErrorKind, String) {
    // Transport failures on an established channel come back as statuses carrying the
    // underlying error as source; a real orchestrator answer has none.
    if let Some(src) = std::error::Error::source(s) {
        return classify_transport(src);
    }
    match s.code() {
        tonic::Code::DeadlineExceeded => (RpcErrorKind::Timeout, s.message().to_owned()),
        code => (RpcErrorKind::Status(code), s.message().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_address_forms() {
        let t = OrchestratorTarget::parse("o.example:8935").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("o.example", 8935, true));
        let t = OrchestratorTarget::parse("https://o.example:9000/").unwrap();
        assert_eq!((t.port, t.tls), (9000, true));
        let t = OrchestratorTarget::parse("http://127.0.0.1:7000").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 7000, false));
        let t = OrchestratorTarget::parse("[::1]:8935").unwrap();
        assert_eq!((t.host.as_str(), t.authority()), ("::1", "[::1]:8935".to_owned()));
        assert_eq!(OrchestratorTarget::parse("o.example").unwrap().port, DEFAULT_ORCHESTRATOR_PORT);
        assert_eq!(OrchestratorTarget::parse("o.example:443").unwrap().port, 443);
        assert_eq!(OrchestratorTarget::parse("https://o.example").unwrap().port, 443);
    }

    #[test]
    fn refuses_bad_addresses_without_panicking() {
        for bad in [
            "",
            "   ",
            "ftp://o:1",
            "https://o:1/path",
            "https://o:1?key=secret",
            "https://user:pw@o:1",
            "o:99999",
            "http://",
            "[::1",
            "://",
            "o:1#frag",
        ] {
            assert!(OrchestratorTarget::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn client_is_shareable() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<OrchestratorRpc>();
        shareable::<OrchestratorRpcError>();
    }

    #[tokio::test]
    async fn invalid_address_is_typed_and_redacted() {
        let rpc = OrchestratorRpc::new(OrchestratorTrust::Insecure);
        let e = rpc
            .get_orchestrator("https://o:1/x?key=secret", OrchestratorRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind, RpcErrorKind::InvalidAddress);
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
