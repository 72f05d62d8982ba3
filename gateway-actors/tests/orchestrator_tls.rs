//! Orchestrator trust policies over real sockets (issue 13.10): an orchestrator restarted on
//! the same port with a new self-signed certificate (go-livepeer regenerates one at every start)
//! is re-pinned with a warning under the default `Pinned` policy when it keeps its ETH key, and
//! refused when its key changed; `Strict` refuses any certificate change; the CA mode refuses a
//! self-signed orchestrator and accepts one whose certificate chains to a CA the test provides.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::signer_identity;

use gateway_core::lp_rpc::OrchestratorRequest;
use gateway_core::token::NetworkSettings;
use gateway_testkit::keys::EthKey;
use gateway_testkit::network::{LocalNetwork, NetworkConfig, NetworkError};
use gateway_testkit::tls::TestCa;
use livepeer_gateway_actors::grpc::{OrchestratorRpc, RpcErrorKind};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::job_tokens::JobTokenError;
use livepeer_gateway_actors::selector::{select_orchestrators, Select, SelectorConfig};
use livepeer_gateway_actors::tls::{
    fingerprint, trust_error, CaRoots, OrchestratorTrust, Pin, PinStore, Repin, TrustError, REPIN_LOG_TARGET,
};

fn clients(trust: &OrchestratorTrust) -> (OrchestratorRpc, HttpClients) {
    (OrchestratorRpc::new(trust.clone()), HttpClients::new(trust.clone()).expect("clients"))
}

/// An orchestrator with a fresh ETH key on a free port: the key, the network, its socket
/// address and its `host:port`.
async fn first_orchestrator() -> (EthKey, LocalNetwork, SocketAddr, String) {
    let key = EthKey::random();
    let net = orchestrator_on(any_port(), &key, None).await;
    let addr = net.orchestrators[0].server.addr;
    (key, net, addr, addr.to_string())
}

/// Starts a network whose orchestrator has ETH key `key` (certificate issued by `ca`, or
/// self-signed) on `addr`, retrying while the port is still held by the previous one.
async fn orchestrator_on(addr: SocketAddr, key: &EthKey, ca: Option<&TestCa>) -> LocalNetwork {
    let mut config = NetworkConfig { listen: addr, certificate_authority: ca.cloned(), ..Default::default() };
    config.orchestrator.key = Some(key.clone());
    let mut last = None;
    for _ in 0..40 {
        match LocalNetwork::start(config.clone()).await {
            Ok(net) => return net,
            Err(e @ NetworkError::Bind { .. }) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("cannot bind {addr} again: {last:?}");
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn cert(net: &LocalNetwork) -> String {
    fingerprint(&net.orchestrators[0].tls.as_ref().expect("TLS").certificate_der)
}

/// One HTTP request to the orchestrator; `Ok` with any status means the TLS handshake passed.
async fn http_get(http: &HttpClients, address: &str) -> Result<u16, reqwest::Error> {
    let origin = format!("https://{address}");
    let client = http.orchestrator(&origin).unwrap();
    client.get(format!("{origin}/healthz")).send().await.map(|r| r.status().as_u16())
}

async fn get_info(rpc: &OrchestratorRpc, address: &str) -> Result<(), RpcErrorKind> {
    rpc.get_orchestrator(address, OrchestratorRequest::default()).await.map(|_| ()).map_err(|e| e.kind)
}

/// Collects what `tracing` writes, for asserting on the re-pin warning.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn repin_log() -> Arc<Mutex<Vec<Repin>>> {
    Arc::default()
}

#[actix_rt::test]
async fn restarted_orchestrator_with_the_same_eth_key_is_repinned_with_a_warning() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let (key, first, addr, address) = first_orchestrator().await;
    let pins = PinStore::in_memory();
    let repins = repin_log();
    let seen = repins.clone();
    pins.on_repin(move |r| seen.lock().unwrap().push(r.clone()));
    let trust = OrchestratorTrust::Pinned(pins.clone());
    let (rpc, http) = clients(&trust);

    get_info(&rpc, &address).await.unwrap();
    let old = cert(&first);
    let expected =
        Pin { fingerprint: old.clone(), address: Some(key.address()), recipient: Some(key.address()) };
    assert_eq!(pins.pin(&address), Some(expected), "certificate and ETH identity pinned");
    http_get(&http, &address).await.unwrap();
    first.shutdown().await;

    let second = orchestrator_on(addr, &key, None).await;
    let new = cert(&second);
    assert_ne!(old, new, "the restart generated a new certificate");

    // HTTP alone cannot confirm the new certificate.
    let e = http_get(&http, &address).await.unwrap_err();
    assert!(
        matches!(trust_error(&e), Some(TrustError::CertificateUnconfirmed { origin, .. }) if *origin == address),
        "{e:?}"
    );
    assert_eq!(pins.get(&address), Some(old.clone()));

    // GetOrchestrator names the pinned identity over the new certificate: re-pinned, warned.
    get_info(&rpc, &address).await.unwrap();
    assert_eq!(pins.get(&address), Some(new.clone()));
    let log = repins.lock().unwrap().clone();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].previous.as_str(), log[0].fingerprint.as_str()), (old.as_str(), new.as_str()));
    assert_eq!((log[0].address, log[0].recipient), (Some(key.address()), key.address()));
    let text = captured.text();
    assert!(text.contains("WARN") && text.contains(REPIN_LOG_TARGET), "{text}");
    assert!(text.contains(&format!("orchestrator {address} presented a new TLS certificate")), "{text}");
    assert!(text.contains("not a proof"), "{text}");

    // From now on everything uses the new certificate, and nothing is re-pinned twice.
    http_get(&http, &address).await.unwrap();
    get_info(&rpc, &address).await.unwrap();
    get_info(&OrchestratorRpc::new(trust.clone()), &address).await.unwrap();
    assert_eq!(repins.lock().unwrap().len(), 1);
    assert_eq!(captured.text().matches("presented a new TLS certificate").count(), 1);
    second.shutdown().await;
}

#[actix_rt::test]
async fn restarted_orchestrator_is_refused_under_strict() {
    let (key, first, addr, address) = first_orchestrator().await;
    let pins = PinStore::in_memory();
    let (rpc, http) = clients(&OrchestratorTrust::Strict(pins.clone()));
    get_info(&rpc, &address).await.unwrap();
    let old = cert(&first);
    first.shutdown().await;

    let second = orchestrator_on(addr, &key, None).await;
    let new = cert(&second);
    let kind = get_info(&rpc, &address).await.unwrap_err();
    let expected =
        TrustError::CertificateChanged { origin: address.clone(), pinned: old.clone(), presented: new };
    assert_eq!(kind, RpcErrorKind::Untrusted(expected.clone()));
    let e = http_get(&http, &address).await.unwrap_err();
    assert_eq!(trust_error(&e), Some(&expected), "{e:?}");
    assert_eq!(pins.get(&address), Some(old), "the pin is kept");

    // Removing the pin (an operator's decision) lets the new certificate in.
    pins.forget(&address);
    get_info(&rpc, &address).await.unwrap();
    second.shutdown().await;
}

#[actix_rt::test]
async fn same_port_new_certificate_and_another_eth_key_is_refused_under_pinned() {
    let (key, first, addr, address) = first_orchestrator().await;
    let pins = PinStore::in_memory();
    let (rpc, http) = clients(&OrchestratorTrust::Pinned(pins.clone()));
    get_info(&rpc, &address).await.unwrap();
    let old = cert(&first);
    first.shutdown().await;

    let impostor = EthKey::random();
    let second = orchestrator_on(addr, &impostor, None).await;
    let kind = get_info(&rpc, &address).await.unwrap_err();
    assert_eq!(
        kind,
        RpcErrorKind::Untrusted(TrustError::IdentityChanged {
            origin: address.clone(),
            pinned: key.address(),
            claimed: Some(impostor.address()),
            certificate_changed: true,
        })
    );
    let e = rpc.get_orchestrator(&address, OrchestratorRequest::default()).await.unwrap_err();
    assert!(e.to_string().contains("not trusted") && e.to_string().contains("ETH address"), "{e}");
    assert_eq!(pins.get(&address), Some(old.clone()), "the pin is kept");
    let e = http_get(&http, &address).await.unwrap_err();
    assert!(matches!(trust_error(&e), Some(TrustError::CertificateUnconfirmed { .. })), "{e:?}");
    second.shutdown().await;

    // The real orchestrator coming back (same key, yet another certificate) is let in.
    let third = orchestrator_on(addr, &key, None).await;
    get_info(&rpc, &address).await.unwrap();
    assert_eq!(pins.get(&address), Some(cert(&third)));
    third.shutdown().await;
}

/// BYOC selection asks `/process/token` over HTTP, which never accepts an unconfirmed
/// certificate: after a restart it confirms the certificate with GetOrchestrator first.
#[actix_rt::test]
async fn byoc_selection_confirms_a_restarted_orchestrator_through_get_orchestrator() {
    let (key, first, addr, address) = first_orchestrator().await;
    let pins = PinStore::in_memory();
    let (rpc, http) = clients(&OrchestratorTrust::Pinned(pins.clone()));
    let identity = signer_identity(&http, &first).await;
    let settings = NetworkSettings { orchestrators: vec![address.clone()], ..Default::default() };
    let select = Select {
        queries: vec!["byoc/text-reversal".parse().unwrap()],
        identity: Some(identity),
        ..Default::default()
    };
    let config = SelectorConfig::default();
    select_orchestrators(&rpc, &http, &settings, &config, &select).await.unwrap();
    assert_eq!(pins.pin(&address).unwrap().recipient, Some(key.address()), "the token's recipient is pinned");
    first.shutdown().await;

    let second = orchestrator_on(addr, &key, None).await;
    let s = select_orchestrators(&rpc, &http, &settings, &config, &select).await.unwrap();
    assert_eq!(s.candidates[0].address, address);
    assert_eq!(pins.get(&address), Some(cert(&second)), "re-pinned through GetOrchestrator");
    second.shutdown().await;

    let impostor = EthKey::random();
    let third = orchestrator_on(addr, &impostor, None).await;
    let e = select_orchestrators(&rpc, &http, &settings, &config, &select).await.unwrap_err();
    assert!(e.to_string().contains("not trusted") && e.to_string().contains("ETH address"), "{e}");
    // The typed error, straight from the token fetch.
    let e = livepeer_gateway_actors::job_tokens::fetch_job_token_confirmed(
        &http,
        &rpc,
        &address,
        "text-reversal",
        select.identity.as_ref(),
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, JobTokenError::Untrusted(TrustError::IdentityChanged { .. })), "{e}");
    third.shutdown().await;
}

#[actix_rt::test]
async fn ca_mode_refuses_a_self_signed_orchestrator_and_accepts_one_issued_by_the_ca() {
    let ca = TestCa::generate("livepeer-gateway test CA").unwrap();
    let key = EthKey::random();
    let issued = orchestrator_on(any_port(), &key, Some(&ca)).await;
    let self_signed = orchestrator_on(any_port(), &key, None).await;
    let (issued_addr, self_addr) = (
        issued.orchestrators[0].server.addr.to_string(),
        self_signed.orchestrators[0].server.addr.to_string(),
    );

    let only_ca = CaRoots::none().with_pem(ca.certificate_pem.as_bytes()).unwrap();
    let with_system = CaRoots::system().with_pem(ca.certificate_pem.as_bytes()).unwrap();
    for roots in [only_ca, with_system] {
        let trust = OrchestratorTrust::certificate_authority(roots).unwrap();
        let (rpc, http) = clients(&trust);
        get_info(&rpc, &issued_addr).await.unwrap();
        http_get(&http, &issued_addr).await.unwrap();

        let kind = get_info(&rpc, &self_addr).await.unwrap_err();
        let RpcErrorKind::Untrusted(TrustError::NotTrustedByCa { origin, reason }) = kind else {
            panic!("expected a CA refusal, got {kind:?}")
        };
        assert_eq!(origin, self_addr);
        assert!(reason.to_lowercase().contains("unknown"), "{reason}");
        let e = http_get(&http, &self_addr).await.unwrap_err();
        assert!(matches!(trust_error(&e), Some(TrustError::NotTrustedByCa { .. })), "{e:?}");
    }

    // Without the test CA, its orchestrator is as unknown as a self-signed one.
    let other = TestCa::generate("another CA").unwrap();
    let trust = OrchestratorTrust::certificate_authority(
        CaRoots::none().with_pem(other.certificate_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let (rpc, _) = clients(&trust);
    assert!(matches!(
        get_info(&rpc, &issued_addr).await,
        Err(RpcErrorKind::Untrusted(TrustError::NotTrustedByCa { .. }))
    ));
    issued.shutdown().await;
    self_signed.shutdown().await;
}
