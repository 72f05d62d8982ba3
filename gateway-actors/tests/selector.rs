//! Orchestrator info and selection over real sockets against the testkit's local network:
//! GetOrchestrator over TLS (pinned) and plaintext, discovery through the signer and an explicit
//! URL, the selection rules (health, capabilities, price, ticket parameters) and ranking, and a
//! certificate change on the same port being refused under strict pinning (the other trust
//! policies are in `orchestrator_tls.rs`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::signer_identity;

use actix::Actor;
use gateway_core::capabilities::CapabilityQuery;
use gateway_core::error::VettingError;
use gateway_core::lp_rpc::OrchestratorRequest;
use gateway_core::rejection::JobError;
use gateway_core::rejection::RejectionReason;
use gateway_core::signer::SignerIdentity;
use gateway_core::token::NetworkSettings;
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig, NetworkError};
use gateway_testkit::orchestrator::OrchestratorConfig;
use gateway_testkit::signer::SignerConfig;
use livepeer_gateway_actors::grpc::{OrchestratorRpc, RpcConfig, RpcErrorKind};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::selector::{
    select_orchestrators, OrchestratorSelector, Select, Selection, SelectorConfig,
};
use livepeer_gateway_actors::tls::{fingerprint, OrchestratorTrust, PinStore, TrustError};

const TEXT_REVERSAL: &str = "byoc/text-reversal";
const NOOP: &str = "live-video-to-video/noop";

fn query(s: &str) -> CapabilityQuery {
    s.parse().expect("valid query")
}

fn clients(trust: &OrchestratorTrust) -> (OrchestratorRpc, HttpClients) {
    (OrchestratorRpc::new(trust.clone()), HttpClients::new(trust.clone()).expect("clients"))
}

async fn network(config: NetworkConfig) -> LocalNetwork {
    LocalNetwork::start(config).await.expect("network starts")
}

fn list(addresses: Vec<String>) -> NetworkSettings {
    NetworkSettings { orchestrators: addresses, ..Default::default() }
}

/// `host:port` of a service URL (the scheme-less form, which means TLS).
fn authority(url: &str) -> String {
    url.split_once("://").map(|(_, rest)| rest).unwrap_or(url).trim_end_matches('/').to_owned()
}

/// An address nothing listens on.
async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// Polls `condition` for up to 5 s.
async fn wait_until(condition: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

fn addresses(s: &Selection) -> Vec<&str> {
    s.candidates.iter().map(|c| c.address.as_str()).collect()
}

fn rejection(rejections: &[gateway_core::rejection::OrchestratorRejection], address: &str) -> String {
    rejections
        .iter()
        .find(|r| r.orchestrator == address)
        .unwrap_or_else(|| panic!("no rejection for {address} in {rejections:?}"))
        .reason
        .to_string()
}

fn no_orchestrator(
    r: Result<Selection, JobError>,
) -> (Vec<gateway_core::rejection::OrchestratorRejection>, String) {
    match r {
        Err(e @ JobError::NoOrchestratorAvailable { .. }) => {
            let text = e.to_string();
            let JobError::NoOrchestratorAvailable { rejections } = e else { unreachable!() };
            (rejections, text)
        }
        other => panic!("expected NoOrchestratorAvailable, got {other:?}"),
    }
}

#[actix_rt::test]
async fn tls_get_orchestrator_pins_the_certificate() {
    let net = network(NetworkConfig::default()).await;
    let pins = PinStore::in_memory();
    let (rpc, _) = clients(&OrchestratorTrust::Pinned(pins.clone()));
    let url = net.orchestrator_urls()[0].clone();

    let info = rpc.get_orchestrator(&authority(&url), OrchestratorRequest::default()).await.unwrap();
    assert_eq!(info.transcoder, url);
    assert!(info.auth_token.is_some() && info.ticket_params.is_some());
    let cert = &net.orchestrators[0].tls.as_ref().unwrap().certificate_der;
    let key = authority(&url);
    assert_eq!(pins.get(&key), Some(fingerprint(cert)), "the gRPC handshake pinned the certificate of {key}");
    let address = net.orchestrator().address();
    assert_eq!(pins.pin(&key).unwrap().address, Some(address), "and the answer its ETH address");

    // The URL form reaches the same orchestrator.
    rpc.get_orchestrator(&url, OrchestratorRequest::default()).await.unwrap();
    assert_eq!(net.orchestrator().stats().get_orchestrator_calls, 2);
    net.shutdown().await;
}

#[actix_rt::test]
async fn plaintext_get_orchestrator_and_typed_errors() {
    let net = network(NetworkConfig { tls: false, ..Default::default() }).await;
    let (rpc, _) = clients(&OrchestratorTrust::default());
    let url = net.orchestrator_urls()[0].clone();
    assert!(url.starts_with("http://"));
    let info = rpc.get_orchestrator(&url, OrchestratorRequest::default()).await.unwrap();
    assert_eq!(info.transcoder, url);

    // An error status from the orchestrator is a status, and the channel stays usable.
    net.orchestrator().set_fault(OrchestratorFault::RespondStatus {
        path: "/net.Orchestrator/".into(),
        status: 503,
        count: 1,
    });
    let e = rpc.get_orchestrator(&url, OrchestratorRequest::default()).await.unwrap_err();
    assert_eq!(e.kind, RpcErrorKind::Status(tonic::Code::Unavailable), "{e}");
    assert!(e.to_string().contains("injected fault"), "{e}");
    rpc.get_orchestrator(&url, OrchestratorRequest::default()).await.unwrap();

    // Speaking TLS to a plaintext port fails quickly as a TLS error.
    let e = rpc.get_orchestrator(&authority(&url), OrchestratorRequest::default()).await.unwrap_err();
    assert_eq!(e.kind, RpcErrorKind::Tls, "{e}");
    assert!(e.to_string().contains("plaintext orchestrator"), "{e}");

    // A closed port is a connect error; a bad address never reaches the network.
    let dead = closed_port().await;
    let e = rpc.get_orchestrator(&dead, OrchestratorRequest::default()).await.unwrap_err();
    assert_eq!(e.kind, RpcErrorKind::Connect, "{e}");
    let e = rpc.get_orchestrator("ftp://127.0.0.1:1", OrchestratorRequest::default()).await.unwrap_err();
    assert_eq!(e.kind, RpcErrorKind::InvalidAddress, "{e}");
    net.shutdown().await;
}

#[actix_rt::test]
async fn slow_and_dead_orchestrators_are_rejected_and_the_rest_ranked() {
    let net = network(NetworkConfig { orchestrators: 4, ..Default::default() }).await;
    let urls = net.orchestrator_urls();
    net.orchestrators[2].orchestrator.set_fault(OrchestratorFault::Delay {
        path: "/net.Orchestrator/".into(),
        delay_ms: 6_000,
        count: 10,
    });
    let dead = closed_port().await;
    let mut candidates = urls.clone();
    candidates.push(dead.clone());
    // Every orchestrator of the local network is 127.0.0.1 with its own certificate, and pins
    // are kept per host, so this test accepts any certificate (see the certificate test for pins).
    let trust = OrchestratorTrust::Insecure;
    let (rpc, http) = clients(&trust);
    let config = SelectorConfig { per_call_timeout: Duration::from_secs(1), ..Default::default() };

    let started = Instant::now();
    let select = Select { queries: vec![query(NOOP)], ..Default::default() };
    let selection = select_orchestrators(&rpc, &http, &list(candidates), &config, &select).await.unwrap();
    let took = started.elapsed();

    let mut chosen = addresses(&selection);
    chosen.sort();
    let mut healthy = vec![urls[0].as_str(), urls[1].as_str(), urls[3].as_str()];
    healthy.sort();
    assert_eq!(chosen, healthy);
    assert!(selection.candidates.windows(2).all(|w| w[0].latency <= w[1].latency), "ranked by latency");
    assert!(selection.candidates.iter().all(|c| c.info.transcoder == c.address));
    assert_eq!(selection.rejections.len(), 2, "{:?}", selection.rejections);
    assert!(rejection(&selection.rejections, &urls[2]).contains("timed out"));
    assert!(rejection(&selection.rejections, &dead).contains("cannot connect"));
    // Bounded by the per-call timeout, not by the slow orchestrator's 6 s.
    assert!(took < Duration::from_secs(4), "selection took {took:?}");

    // The overall deadline cuts a selection short even when calls may take longer, and one
    // slot at a time still reaches every candidate.
    let config = SelectorConfig {
        batch_size: 1,
        per_call_timeout: Duration::from_secs(10),
        deadline: Duration::from_secs(1),
    };
    let started = Instant::now();
    let settings = list(vec![urls[0].clone(), urls[2].clone()]);
    let selection = select_orchestrators(&rpc, &http, &settings, &config, &select).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
    assert_eq!(addresses(&selection), [urls[0].as_str()]);
    assert!(rejection(&selection.rejections, &urls[2]).contains("selection deadline"));
    net.shutdown().await;
}

#[actix_rt::test]
async fn capabilities_and_price_filter_candidates() {
    let dear = network(NetworkConfig::default()).await; // text-reversal at 100 wei per unit
    let mut cheap_config = NetworkConfig::default();
    for offer in &mut cheap_config.orchestrator.offers {
        offer.price_per_unit = 10;
    }
    let cheap = network(cheap_config).await;
    let (dear_url, cheap_url) = (dear.orchestrator_urls()[0].clone(), cheap.orchestrator_urls()[0].clone());
    let (rpc, http) = clients(&OrchestratorTrust::Insecure);
    let settings = list(vec![dear_url.clone(), cheap_url.clone()]);
    let config = SelectorConfig::default();
    // go's orchestrators answer `/process/token` only to a signed sender.
    let identity = Some(signer_identity(&http, &dear).await);

    let unknown = Select { queries: vec![query("live-video-to-video/unknown")], ..Default::default() };
    let (rejections, _) =
        no_orchestrator(select_orchestrators(&rpc, &http, &settings, &config, &unknown).await);
    assert_eq!(rejections.len(), 2);
    // Orchestrators that cannot take the job do not keep a gRPC connection open. (BYOC token
    // requests below use the pooled HTTP client, which the job reuses.)
    for net in [&dear, &cheap] {
        let server = &net.orchestrators[0].server;
        let closed = wait_until(|| server.open_connections() == 0).await;
        assert!(closed, "{} connections still open", server.open_connections());
    }

    let ok = Select { queries: vec![query(TEXT_REVERSAL)], identity: identity.clone(), ..Default::default() };
    let s = select_orchestrators(&rpc, &http, &settings, &config, &ok).await.unwrap();
    assert_eq!(s.candidates.len(), 2);
    assert!(s.rejections.is_empty());
    let price = s.candidates.iter().find(|c| c.address == dear_url).unwrap().info.price_info.clone().unwrap();
    assert_eq!((price.price_per_unit, price.pixels_per_unit), (100, 1), "priced for the requested model");

    let unknown =
        Select { queries: vec![query("byoc/unknown")], identity: identity.clone(), ..Default::default() };
    let (rejections, _) =
        no_orchestrator(select_orchestrators(&rpc, &http, &settings, &config, &unknown).await);
    assert_eq!(rejections.len(), 2);
    for r in &rejections {
        assert!(
            matches!(&r.reason, RejectionReason::Unfit(VettingError::NoCapacity { capability }) if capability == "unknown"),
            "the model is named: {r}"
        );
    }
    let capped = Select {
        queries: vec![query(TEXT_REVERSAL)],
        identity,
        max_price_wei_per_unit: Some(50.0),
        ..Default::default()
    };
    let s = select_orchestrators(&rpc, &http, &settings, &config, &capped).await.unwrap();
    assert_eq!(addresses(&s), [cheap_url.as_str()]);
    assert!(rejection(&s.rejections, &dear_url).contains("above the maximum 50"), "{:?}", s.rejections);

    let excluded = Select { exclude: vec![authority(&cheap_url)], ..capped };
    let (rejections, text) =
        no_orchestrator(select_orchestrators(&rpc, &http, &settings, &config, &excluded).await);
    assert!(rejection(&rejections, &cheap_url).contains("excluded"));
    assert!(text.contains("above the maximum") && text.contains("excluded"), "{text}");
    dear.shutdown().await;
    cheap.shutdown().await;
}

#[actix_rt::test]
async fn paying_needs_ticket_params_and_sends_the_identity() {
    let onchain = network(NetworkConfig::default()).await;
    let offchain = network(NetworkConfig {
        orchestrator: OrchestratorConfig { offchain: true, ..Default::default() },
        ..Default::default()
    })
    .await;
    let (rpc, http) = clients(&OrchestratorTrust::Insecure);
    let identity = signer_identity(&http, &onchain).await;
    let (on_url, off_url) = (onchain.orchestrator_urls()[0].clone(), offchain.orchestrator_urls()[0].clone());
    let settings = list(vec![on_url.clone(), off_url.clone()]);
    let config = SelectorConfig::default();

    let paying = Select { queries: vec![query(NOOP)], identity: Some(identity), ..Default::default() };
    let s = select_orchestrators(&rpc, &http, &settings, &config, &paying).await.unwrap();
    assert_eq!(s.candidates.len(), 2, "{:?}", s.rejections);
    // The offchain one quotes no price: free, so it needs no ticket parameters.
    let off = s.candidates.iter().find(|c| c.address == off_url).unwrap();
    assert!(off.info.ticket_params.is_none() && !off.info.charges());
    let on = s.candidates.iter().find(|c| c.address == on_url).unwrap();
    assert!(
        on.info.ticket_params.is_some() && on.info.charges(),
        "the on-chain orchestrator verified our signature"
    );

    // A wrong signature is refused by the orchestrator, and the reason says so.
    let forged = SignerIdentity { signature: vec![7; 65], ..paying.identity.clone().unwrap() };
    let bad = Select { identity: Some(forged), ..paying.clone() };
    let (rejections, _) =
        no_orchestrator(select_orchestrators(&rpc, &http, &list(vec![on_url.clone()]), &config, &bad).await);
    assert!(rejection(&rejections, &on_url).contains("PermissionDenied"), "{rejections:?}");

    // Offchain, both are fine.
    let free = Select { identity: None, ..paying.clone() };
    let s = select_orchestrators(&rpc, &http, &settings, &config, &free).await.unwrap();
    assert_eq!(s.candidates.len(), 2);
    onchain.shutdown().await;
    offchain.shutdown().await;
}

#[actix_rt::test]
async fn selector_actor_discovers_through_the_signer_with_caps() {
    let token = "signer-secret-token";
    let net = network(NetworkConfig {
        orchestrators: 2,
        signer: SignerConfig { bearer_token: Some(token.into()), ..Default::default() },
        ..Default::default()
    })
    .await;
    let urls = net.orchestrator_urls();
    let trust = OrchestratorTrust::Insecure;
    let (rpc, http) = clients(&trust);
    let settings = NetworkSettings {
        signer: Some(net.signer_url()),
        signer_headers: [("Authorization".to_owned(), format!("Bearer {token}"))].into(),
        ..Default::default()
    };
    let selector =
        OrchestratorSelector::new(rpc.clone(), http.clone(), settings.clone(), SelectorConfig::default())
            .start();

    let s =
        selector.send(Select { queries: vec![query(NOOP)], ..Default::default() }).await.unwrap().unwrap();
    let mut found = addresses(&s);
    found.sort();
    let mut expected: Vec<&str> = urls.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(net.signer.stats().discover_orchestrators_calls, 1);

    // The caps filter reaches the signer: nothing serves that model, so nothing is discovered.
    let unknown = query("live-video-to-video/unknown");
    let r = selector.send(Select { queries: vec![unknown], ..Default::default() }).await.unwrap();
    let (rejections, text) = no_orchestrator(r);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(
        text.contains("discovery returned no orchestrator offering live-video-to-video/unknown"),
        "{text}"
    );
    assert_eq!(net.orchestrator().stats().get_orchestrator_calls, 1, "no orchestrator was asked");

    // Without the signer's credentials discovery fails, and the error does not leak them.
    let wrong = NetworkSettings {
        signer_headers: [("Authorization".to_owned(), "Bearer wrong-secret".to_owned())].into(),
        ..settings
    };
    let r = select_orchestrators(&rpc, &http, &wrong, &SelectorConfig::default(), &Select::default()).await;
    let (_, text) = no_orchestrator(r);
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains("wrong-secret") && !text.contains(token), "{text}");
    net.shutdown().await;
}

#[actix_rt::test]
async fn explicit_discovery_url_wins_over_the_signer() {
    let token = "discovery-secret";
    let net = network(NetworkConfig {
        signer: SignerConfig { bearer_token: Some(token.into()), ..Default::default() },
        ..Default::default()
    })
    .await;
    let (rpc, http) = clients(&OrchestratorTrust::Insecure);
    let dead_signer = format!("http://{}", closed_port().await);
    let settings = NetworkSettings {
        discovery: Some(format!("{}?region=local", net.discovery_url())),
        discovery_headers: [("Authorization".to_owned(), format!("Bearer {token}"))].into(),
        // Would fail if used: the discovery URL takes precedence.
        signer: Some(dead_signer),
        ..Default::default()
    };
    let select = Select { queries: vec![query(NOOP)], ..Default::default() };
    let found =
        livepeer_gateway_actors::discovery::discover(&http, &settings, &select.queries).await.unwrap();
    assert_eq!(found, net.orchestrator_urls());
    let s = select_orchestrators(&rpc, &http, &settings, &SelectorConfig::default(), &select).await.unwrap();
    assert_eq!(addresses(&s), [net.orchestrator_urls()[0].as_str()]);
    assert_eq!(net.signer.stats().discover_orchestrators_calls, 2);
    net.shutdown().await;
}

#[actix_rt::test]
async fn no_orchestrator_available_lists_every_reason() {
    let net = network(NetworkConfig::default()).await;
    let (rpc, http) = clients(&OrchestratorTrust::Insecure);
    let healthy = net.orchestrator_urls()[0].clone();
    let dead = closed_port().await;
    let settings = list(vec![healthy.clone(), dead.clone(), "ftp://nowhere:1".into()]);
    let select = Select { queries: vec![query("live-video-to-video/unknown")], ..Default::default() };
    let (rejections, text) = no_orchestrator(
        select_orchestrators(&rpc, &http, &settings, &SelectorConfig::default(), &select).await,
    );
    assert_eq!(rejections.len(), 3, "{rejections:?}");
    assert!(rejection(&rejections, &healthy).contains("does not serve model \"unknown\""));
    assert!(rejection(&rejections, &dead).contains("cannot connect"));
    assert!(rejection(&rejections, "ftp://nowhere:1").contains("invalid address"));
    for r in &rejections {
        assert!(text.contains(&r.reason.to_string()), "{text} lacks {r}");
    }

    let none =
        select_orchestrators(&rpc, &http, &NetworkSettings::default(), &SelectorConfig::default(), &select)
            .await;
    assert!(matches!(none, Err(JobError::InvalidRequest(_))), "{none:?}");
    net.shutdown().await;
}

/// Starts a network whose first orchestrator listens on `addr`, retrying while the port is still
/// held by the previous one.
async fn network_on(addr: SocketAddr) -> LocalNetwork {
    let mut last = None;
    for _ in 0..40 {
        match LocalNetwork::start(NetworkConfig { listen: addr, ..Default::default() }).await {
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

#[actix_rt::test]
async fn certificate_change_is_refused_when_strict_and_accepted_when_insecure() {
    let first = network(NetworkConfig::default()).await;
    let addr = first.orchestrators[0].server.addr;
    let address = addr.to_string();
    let pins = PinStore::in_memory();
    let tofu = OrchestratorTrust::Strict(pins.clone());
    let (rpc, http) = clients(&tofu);
    rpc.get_orchestrator(&address, OrchestratorRequest::default()).await.unwrap();
    let pinned = pins.get(&address).unwrap();
    first.shutdown().await;

    let second = network_on(addr).await;
    let new_cert = fingerprint(&second.orchestrators[0].tls.as_ref().unwrap().certificate_der);
    assert_ne!(pinned, new_cert, "a new certificate was generated");

    // The cached channel must not carry on over the old connection: it dials again and refuses.
    let e = rpc.get_orchestrator(&address, OrchestratorRequest::default()).await.unwrap_err();
    let refusal = TrustError::CertificateChanged {
        origin: address.clone(),
        pinned: pinned.clone(),
        presented: new_cert.clone(),
    };
    assert_eq!(e.kind, RpcErrorKind::Untrusted(refusal), "{e}");
    assert!(e.to_string().contains(&format!("not trusted: certificate of {address} changed")), "{e}");
    // A fresh client with the same pins refuses too, and selection says why.
    let select = Select::default();
    let (rejections, _) = no_orchestrator(
        select_orchestrators(
            &OrchestratorRpc::new(tofu),
            &http,
            &list(vec![address.clone()]),
            &SelectorConfig::default(),
            &select,
        )
        .await,
    );
    assert!(rejection(&rejections, &address).contains("changed"), "{rejections:?}");
    assert_eq!(pins.get(&address), Some(pinned), "the pin is kept");

    let insecure = OrchestratorRpc::with_config(OrchestratorTrust::Insecure, RpcConfig::default());
    let info = insecure.get_orchestrator(&address, OrchestratorRequest::default()).await.unwrap();
    assert_eq!(info.transcoder, format!("https://{address}"));
    second.shutdown().await;
}

/// Issue 13.1: BYOC is never in go's capability bit string, so BYOC orchestrators are selected
/// by their `/process/token` answers (`byoc/job_gateway.go`, `getJobOrchestrators`).
#[actix_rt::test]
async fn byoc_selection_asks_each_orchestrator_for_a_job_token() {
    let serving = network(NetworkConfig::default()).await;
    let mut lv2v_only = NetworkConfig::default();
    lv2v_only.orchestrator.offers.retain(|o| o.capability != gateway_core::capabilities::Capability::Byoc);
    let other = network(lv2v_only).await;
    let mut free_config = NetworkConfig::default();
    for offer in &mut free_config.orchestrator.offers {
        offer.price_per_unit = 0;
    }
    let free = network(free_config).await;
    let (rpc, http) = clients(&OrchestratorTrust::Insecure);
    let identity = signer_identity(&http, &serving).await;
    let (serving_url, other_url, free_url) = (
        serving.orchestrator_urls()[0].clone(),
        other.orchestrator_urls()[0].clone(),
        free.orchestrator_urls()[0].clone(),
    );

    // The serving orchestrator's bit string has no 37, yet it is a candidate.
    let info = rpc.get_orchestrator(&serving_url, OrchestratorRequest::default()).await.unwrap();
    let bits = info.capabilities.as_ref().unwrap().bitstring.clone();
    assert!(!gateway_core::capabilities::has_bit(&bits, 37), "go never sets bit 37");

    let settings = list(vec![serving_url.clone(), other_url.clone(), free_url.clone()]);
    let select = Select {
        queries: vec![query(TEXT_REVERSAL)],
        identity: Some(identity.clone()),
        ..Default::default()
    };
    let s = select_orchestrators(&rpc, &http, &settings, &SelectorConfig::default(), &select).await.unwrap();
    let mut found = addresses(&s);
    found.sort();
    let mut expected = vec![serving_url.as_str(), free_url.as_str()];
    expected.sort();
    assert_eq!(found, expected);
    assert!(rejection(&s.rejections, &other_url).contains("no available capacity"), "{:?}", s.rejections);
    let paid = s.candidates.iter().find(|c| c.address == serving_url).unwrap();
    let token = paid.token.as_ref().expect("BYOC candidates carry their token");
    assert_eq!((token.price().price_per_unit, token.price().pixels_per_unit), (100, 1));
    assert!(token.available_capacity > 0 && token.ticket_params.is_some());
    assert_eq!(paid.info.transcoder, token.service_addr);
    assert!(paid.info.charges() && paid.info.ticket_params.is_some() && paid.info.auth_token.is_some());
    let gratis = s.candidates.iter().find(|c| c.address == free_url).unwrap();
    assert!(!gratis.info.charges(), "a zero price pays nothing");

    // A forged signature over the address: go answers 400 "Invalid eth address header".
    let forged = SignerIdentity { signature: vec![7; 65], ..identity };
    let bad = Select { identity: Some(forged), ..select.clone() };
    let r =
        select_orchestrators(&rpc, &http, &list(vec![serving_url.clone()]), &SelectorConfig::default(), &bad)
            .await;
    let (rejections, _) = no_orchestrator(r);
    assert!(rejection(&rejections, &serving_url).contains("Invalid eth address header"), "{rejections:?}");

    // Discovery through the signer: go's discovery never lists BYOC, so every orchestrator it
    // knows is asked.
    let through_signer = NetworkSettings { signer: Some(serving.signer_url()), ..Default::default() };
    let s = select_orchestrators(&rpc, &http, &through_signer, &SelectorConfig::default(), &select)
        .await
        .unwrap();
    assert_eq!(addresses(&s), [serving_url.as_str()]);
    for net in [serving, other, free] {
        net.shutdown().await;
    }
}
