//! Scope (issue 17, part) against the orchestrator double, both ways the Python SDK's
//! `start_scope` knows: an orchestrator's serverless worker (`POST /scope`, go's `StartScope`
//! with its 402 challenge and LV2V accounting) and a persistent `live-video-to-video/scope`
//! runner app started in a session; go's refusals; and the official Python SDK's `start_scope`
//! against the same double, both ways.

use std::time::Duration;

use gateway_core::jobs::LiveVideoToVideoRequest;
use gateway_core::rejection::{JobError, RejectionReason};
use gateway_core::runners::{HeartbeatRequest, RunnerFilter, SCOPE_APP};
use gateway_core::token::NetworkSettings;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::{PaymentRoute, LOCAL_RUNNER_SECRET};
use gateway_testkit::runner_app::RunnerApp;
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::live_runners::RunnerRegistration;
use livepeer_gateway_actors::payments::PaymentStop;
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::{Gateway, GatewayConfig, GatewayError};

/// An on-chain network whose orchestrator has a serverless worker running `scope` (capacity
/// `capacity`, 1 wei per 1000 pixels) beside `noop`.
async fn serverless_network(capacity: u32) -> LocalNetwork {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.serve_scope(capacity);
    config.orchestrator.lv2v_accounting_interval = Duration::from_millis(500);
    config.orchestrator.event_interval = Duration::from_millis(300);
    LocalNetwork::start(config).await.unwrap()
}

/// An offchain network with the sample Scope app registered as a persistent runner.
async fn scope_app_network() -> (LocalNetwork, RunnerApp, RunnerRegistration) {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.offchain = true;
    let net = LocalNetwork::start(config).await.unwrap();
    let app = RunnerApp::start().await.unwrap();
    let heartbeat = HeartbeatRequest {
        runner_url: app.url.clone(),
        app: SCOPE_APP.into(),
        capacity: 1,
        ..Default::default()
    };
    let orch = &net.orchestrator_urls()[0];
    let reg = RunnerRegistration::register(&clients(), orch, LOCAL_RUNNER_SECRET, heartbeat).await.unwrap();
    (net, app, reg)
}

fn clients() -> HttpClients {
    HttpClients::new(OrchestratorTrust::Insecure).unwrap()
}

fn gateway(net: &LocalNetwork, signer: bool) -> Gateway {
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: signer.then(|| net.signer_url()),
        ..Default::default()
    };
    Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap()
}

fn request(prompt: &str) -> LiveVideoToVideoRequest {
    LiveVideoToVideoRequest { params: Some(serde_json::json!({ "prompt": prompt })), ..Default::default() }
}

/// The next event of `kind` within 10 s.
async fn event_of(
    events: &mut livepeer_gateway_actors::channels::JsonReader,
    kind: &str,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = events.next().await.unwrap().expect("events ended");
            if event["type"] == kind {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_scope_job_is_paid_takes_control_and_reports_events() {
    let net = serverless_network(4).await;
    let orch = net.orchestrator_urls()[0].clone();
    let gw = gateway(&net, true);
    // Discovery lists every LV2V model of the worker at the orchestrator's /scope.
    let found = gw.discover_runners(&RunnerFilter::default()).await.unwrap();
    let scope = found.runners.iter().find(|c| c.runner.app == SCOPE_APP).expect("scope listed");
    assert_eq!(scope.runner.url, format!("{orch}/scope"));
    assert_eq!(scope.runner.version, "serverless-1.0.0");
    assert_eq!(scope.runner.price_info.as_ref().unwrap().unit, "720p-pixel-seconds");
    assert!(found.runners.iter().any(|c| c.runner.app == "live-video-to-video/noop"));

    let job = gw.start_scope(&request("a cat")).await.unwrap();
    let mid = job.started.manifest_id.clone();
    assert_eq!(mid.len(), 8, "the challenge's manifest id: {mid}");
    assert_eq!(job.started.control_url, format!("{orch}/ai/trickle/{mid}-control"));
    assert_eq!(job.started.events_url, format!("{orch}/ai/trickle/{mid}-events"));
    assert_eq!(net.orchestrator().stats().scope_sessions_started, 1);
    assert_eq!(net.signer.stats().last_payment_type.as_deref(), Some("lv2v"));

    let mut events = job.events();
    assert_eq!(event_of(&mut events, "status").await["pipeline"], "scope");
    let control = job.control().await;
    control.send(&serde_json::json!({ "prompt": "a dog" })).await.unwrap();
    assert_eq!(event_of(&mut events, "params_updated").await["params"]["prompt"], "a dog");

    // Paid at the orchestrator's /payment every 3 s while it runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while job.payment_stats().payments_sent < 1 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", job.payment_stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = net.orchestrator().ledger().lines();
    assert_eq!(lines[&PaymentRoute::ScopeStart].payments, 1, "{lines:?}");
    assert!(lines[&PaymentRoute::Lv2vPayment].payments >= 1, "{lines:?}");
    assert_eq!(net.orchestrator().stats().stopped_for_payment, 0);
    control.close().await;
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_runner_app_starts_the_job_in_a_session_and_stopping_releases_it() {
    let (net, app, reg) = scope_app_network().await;
    let orch = net.orchestrator_urls()[0].clone();
    let gw = gateway(&net, false);

    let job = gw.start_scope(&request("a cat")).await.unwrap();
    let sid = job.started.manifest_id.clone();
    assert_eq!(net.orchestrator().runner_sessions(reg.runner_id()), vec![sid.clone()]);
    assert_eq!(job.started.control_url, format!("{orch}/ai/trickle/{sid}-control"));
    let mut events = job.events();
    let first = event_of(&mut events, "status").await;
    assert_eq!(first["session"], sid, "the app's first event, on the session's channel");
    assert_eq!(job.payment_stats().stopped, Some(PaymentStop::FreeOrchestrator));
    let events_url = job.started.events_url.clone();
    job.stop().await.unwrap();
    assert!(net.orchestrator().runner_sessions(reg.runner_id()).is_empty());
    let http = clients().orchestrator(&orch).unwrap();
    let r = http.post(format!("{events_url}/5")).body("x").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404, "the session's channels closed with it");
    gw.shutdown();
    app.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_refusals_are_gos_and_every_runner_tried_is_reported() {
    let net = serverless_network(1).await;
    let orch = net.orchestrator_urls()[0].clone();
    let gw = gateway(&net, true);
    let held = gw.start_scope(&request("one")).await.unwrap();
    // The only scope slot is taken: go answers 503 after the payment; the rejection says so.
    let err = gw.start_scope(&request("two")).await.unwrap_err();
    let GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) = &err else { panic!("{err}") };
    assert_eq!(rejections.len(), 1, "{err}");
    assert!(
        matches!(&rejections[0].reason, RejectionReason::Http { status: 503, excerpt, .. } if excerpt.contains("insufficient capacity")),
        "{err}"
    );
    held.stop().await.unwrap();

    let http = clients().orchestrator(&orch).unwrap();
    let r = http.post(format!("{orch}/scope")).body("{}").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 402);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "invalid live runner payment signer address");
    let r = http.post(format!("{orch}/scope")).body("{not json").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http.post(format!("{orch}/scope")).body(vec![b' '; (1 << 20) + 1]).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (400, "http: request body too large\n".into())
    );

    // Nothing serves Scope: no runner to try.
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.offchain = true;
    let bare = LocalNetwork::start(config).await.unwrap();
    let gw2 = gateway(&bare, false);
    let err = gw2.start_scope(&request("x")).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) if rejections.is_empty()),
        "{err}"
    );
    gw2.shutdown();
    bare.shutdown().await;
    gw.shutdown();
    net.shutdown().await;
}

async fn python_scope(args: Vec<String>) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/scope_peer.py");
    gateway_testkit::python::run_peer(script, args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_start_scope_works_here_both_ways() {
    // Serverless, paid through the signer.
    let net = serverless_network(4).await;
    let orch = net.orchestrator_urls()[0].clone();
    let args = vec![orch.clone(), net.signer_url(), "--control".into()];
    let v = python_scope(args).await;
    let mid = v["manifest_id"].as_str().unwrap();
    assert_eq!(v["control_url"], format!("{orch}/ai/trickle/{mid}-control"), "{v}");
    assert_eq!(v["status"]["pipeline"], "scope", "{v}");
    assert_eq!(v["updated"]["params"]["prompt"], "a dog", "{v}");
    assert_eq!(v["paid"], true, "{v}");
    assert_eq!(net.orchestrator().ledger().lines()[&PaymentRoute::ScopeStart].payments, 1);
    assert_eq!(net.signer.stats().last_payment_type.as_deref(), Some("lv2v"));
    net.shutdown().await;

    // A runner app, offchain.
    let (net, app, reg) = scope_app_network().await;
    let orch = net.orchestrator_urls()[0].clone();
    let args = vec![orch.clone()];
    let v = python_scope(args).await;
    let sid = v["manifest_id"].as_str().unwrap();
    assert_eq!(v["control_url"], format!("{orch}/ai/trickle/{sid}-control"), "{v}");
    assert_eq!(v["status"]["session"], sid, "{v}");
    // The SDK leaves the session reserved (its Scope job has no session to stop).
    assert_eq!(net.orchestrator().runner_sessions(reg.runner_id()), vec![sid.to_owned()]);
    app.shutdown().await;
    net.shutdown().await;
}
