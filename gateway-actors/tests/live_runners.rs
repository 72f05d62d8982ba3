//! Live runners (issue 17, part) against the orchestrator double that answers as go-livepeer
//! master's `ai/runner/live_runner.go` does: a Rust runner registers, heartbeats and
//! unregisters; gateways find runners through `GET /discovery` with app and GPU filters, never
//! seeing a runner's own URL; a runner the orchestrator forgot registers again; and the
//! official Python SDK's `register_runner` and discovery work against the same double.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use gateway_core::rejection::JobError;
use gateway_core::runners::{HeartbeatRequest, RunnerFilter, RunnerGpu, RunnerPriceInfo, SessionEventKind};
use gateway_core::token::NetworkSettings;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::LOCAL_RUNNER_SECRET;
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::live_runners::{RunnerCall, RunnerError, RunnerRegistration};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::{Gateway, GatewayConfig, GatewayError};

const RUNNER_URL: &str = "http://10.1.2.3:9000/private";

async fn network(interval: Duration, ttl: Duration) -> LocalNetwork {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.runner_heartbeat_interval = interval;
    config.orchestrator.runner_heartbeat_ttl = ttl;
    LocalNetwork::start(config).await.unwrap()
}

fn gateway_for(net: &LocalNetwork) -> Gateway {
    let network = NetworkSettings { orchestrators: net.orchestrator_urls(), ..Default::default() };
    Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap()
}

fn echo_runner(app: &str, gpu: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        runner_url: RUNNER_URL.into(),
        app: app.into(),
        capacity: 2,
        version: "0.1.0".into(),
        gpu: Some(RunnerGpu { name: gpu.into(), ..Default::default() }),
        price_info: RunnerPriceInfo { price: 3.6.into(), currency: "usd".into(), unit: "hour".into() },
        ..Default::default()
    }
}

fn filter(apps: &[&str], gpus: &[&str]) -> RunnerFilter {
    RunnerFilter {
        apps: apps.iter().map(|s| s.to_string()).collect(),
        gpus: gpus.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_runner_is_discovered_by_app_and_gpu_until_it_unregisters() {
    let net = network(Duration::from_millis(100), Duration::from_secs(5)).await;
    let orch = net.orchestrator_urls()[0].clone();
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let echo =
        RunnerRegistration::register(&http, &orch, LOCAL_RUNNER_SECRET, echo_runner("echo", "NVIDIA H100"))
            .await
            .unwrap();
    let other =
        RunnerRegistration::register(&http, &orch, LOCAL_RUNNER_SECRET, echo_runner("ping", "NVIDIA L40S"))
            .await
            .unwrap();
    assert!(echo.runner_id().starts_with("runner_") && echo.runner_id().len() == 15, "{}", echo.runner_id());
    let o2r = echo.o2r().expect("an O2R channel");
    assert!(
        o2r.url.contains(&format!("/ai/trickle/{}-", echo.runner_id())) && o2r.url.ends_with("-o2r"),
        "{o2r:?}"
    );

    let gw = gateway_for(&net);
    let found = gw.discover_runners(&filter(&["echo"], &[])).await.unwrap();
    assert!(found.failures.is_empty(), "{:?}", found.failures);
    assert_eq!(found.runners.len(), 1, "{:?}", found.runners);
    let runner = &found.runners[0].runner;
    assert_eq!(
        runner.url,
        format!("{orch}/apps/{}/session", echo.runner_id()),
        "the orchestrator's URL for it"
    );
    assert!(!format!("{found:?}").contains("10.1.2.3"), "the runner's own URL never leaks");
    assert_eq!((runner.capacity, runner.capacity_available, runner.mode.as_str()), (2, 2, "persistent"));
    let price = runner.price_info.as_ref().expect("priced on chain");
    // $3.60 an hour at the double's $2000 per ETH: 5e11 wei per second.
    assert_eq!(
        (price.price_text().as_str(), price.unit.as_str(), price.currency.as_str()),
        ("500000000000", "seconds", "wei")
    );
    assert_eq!(
        gw.discover_runners(&filter(&[], &["NVIDIA L40S"])).await.unwrap().runners[0].runner.app,
        "ping"
    );
    assert_eq!(gw.discover_runners(&filter(&["echo", "ping"], &[])).await.unwrap().runners.len(), 2);
    assert!(gw.discover_runners(&filter(&["echo"], &["NVIDIA L40S"])).await.unwrap().runners.is_empty());

    // Heartbeats keep it: well past several intervals, still listed and counted.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(echo.stats().heartbeats >= 3, "{:?}", echo.stats());
    assert_eq!(echo.stats().failures, 0);

    let id = echo.runner_id().to_owned();
    echo.unregister().await.unwrap();
    let left = gw.discover_runners(&RunnerFilter::default()).await.unwrap();
    assert!(left.runners.iter().all(|c| !c.runner.url.contains(&id)), "{left:?}");
    assert_eq!(left.runners.len(), 1);
    other.unregister().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gos_refusals_are_typed_and_a_forgotten_runner_registers_again() {
    // Told to beat every 400 ms but forgotten after 150 ms: each beat finds it gone.
    let net = network(Duration::from_millis(400), Duration::from_millis(150)).await;
    let orch = net.orchestrator_urls()[0].clone();
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap();

    let err =
        RunnerRegistration::register(&http, &orch, "wrong", echo_runner("echo", "x")).await.unwrap_err();
    assert!(
        matches!(&err, RunnerError::Http { status: 401, message, .. } if message == "invalid registration authorization"),
        "{err}"
    );
    assert!(!err.to_string().contains(LOCAL_RUNNER_SECRET));
    let mut untrimmed = echo_runner(" echo", "x");
    untrimmed.app = " echo".into();
    let err = RunnerRegistration::register(&http, &orch, LOCAL_RUNNER_SECRET, untrimmed).await.unwrap_err();
    assert!(
        matches!(&err, RunnerError::Http { status: 400, message, .. } if message == "app must be trimmed"),
        "{err}"
    );
    let mut euro = echo_runner("echo", "x");
    euro.price_info.currency = "eur".into();
    let err = RunnerRegistration::register(&http, &orch, LOCAL_RUNNER_SECRET, euro).await.unwrap_err();
    assert!(
        matches!(&err, RunnerError::Http { status: 400, message, .. } if message == "price_info.currency must be usd"),
        "{err}"
    );

    let reg = RunnerRegistration::register(&http, &orch, LOCAL_RUNNER_SECRET, echo_runner("echo", "x"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reg.stats().re_registrations < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never registered again: {:?}", reg.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(net.orchestrator().runner_ids(), vec![reg.runner_id().to_owned()], "the same id each time");
    // Unregistered while expired: go's 404.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = reg.unregister().await.unwrap_err();
    assert!(matches!(&err, RunnerError::Http { status: 404, .. }), "{err}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_runner_registers_here_and_both_sdks_discover_it() {
    let net = network(Duration::from_millis(200), Duration::from_secs(5)).await;
    let orch = net.orchestrator_urls()[0].clone();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/runner_peer.py");
    let mut child = Command::new(gateway_testkit::python::interpreter())
        .arg(script)
        .args([orch.as_str(), LOCAL_RUNNER_SECRET, RUNNER_URL])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let seen: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    let runner_id = seen["runner_id"].as_str().unwrap().to_owned();
    let found = &seen["found"][0];
    assert_eq!(found["address"], orch, "{seen}");
    let listed = &found["runners"][0];
    assert_eq!(listed["url"], format!("{orch}/apps/{runner_id}/session"), "{seen}");
    assert_eq!(listed["app"], "py-echo");
    assert_eq!(listed["gpu"]["name"], "NVIDIA L40S");
    assert_eq!(listed["capacity_available"], 2);
    assert_eq!(listed["price_info"]["unit"], "seconds");
    assert_eq!(seen["other_gpu"], serde_json::json!([]), "the SDK's GPU filter: {seen}");
    assert!(seen["o2r"].as_str().unwrap().ends_with("-o2r"), "{seen}");

    // Our gateway sees the Python runner too.
    let gw = gateway_for(&net);
    let ours = gw.discover_runners(&filter(&["py-echo"], &["NVIDIA L40S"])).await.unwrap();
    assert_eq!(ours.runners.len(), 1, "{ours:?}");
    assert_eq!(ours.runners[0].runner.version, "1.2.3");

    // The SDK's close unregisters: gone for both.
    child.stdin.take().unwrap().write_all(b"done\n").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let after: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(after["after_close"], serde_json::json!([]), "{after}");
    assert!(child.wait().unwrap().success());
    assert!(gw.discover_runners(&RunnerFilter::default()).await.unwrap().runners.is_empty());
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_pays_for_a_runner_session_here_and_its_runner_hears_of_it() {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.runner_heartbeat_interval = Duration::from_millis(200);
    config.orchestrator.lv2v_accounting_interval = Duration::from_millis(500);
    let net = LocalNetwork::start(config).await.unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/runner_session_peer.py");
    let args = [orch.as_str(), LOCAL_RUNNER_SECRET, &net.signer_url(), "4"].map(str::to_owned).to_vec();
    let v = gateway_testkit::python::run_peer(script, args).await;
    let (runner_id, session_id) = (v["runner_id"].as_str().unwrap(), v["session_id"].as_str().unwrap());
    let control = format!("{orch}/apps/{runner_id}/session/{session_id}");
    assert_eq!(v["control_url"], control, "{v}");
    assert_eq!(v["app_url"], format!("{control}/app"), "{v}");
    assert_eq!(v["released_before_stop"], false, "paid for: the session held while funded: {v}");
    assert_eq!(
        v["events"],
        serde_json::json!([["reserved", session_id, true], ["released", session_id, true]]),
        "the runner heard both on its O2R channel: {v}"
    );
    // The reservation and the recurring payments (every 3 s in the SDK) were credited.
    let line =
        net.orchestrator().ledger().lines()[&gateway_testkit::orchestrator::PaymentRoute::RunnerSession];
    assert!(line.payments >= 2 && line.ev_wei > 0.0, "{line:?}");
    assert!(net.orchestrator().runner_sessions(runner_id).is_empty());
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_routes_answer_as_go_does() {
    let net = network(Duration::from_millis(200), Duration::from_secs(5)).await;
    let orch = net.orchestrator_urls()[0].clone();
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let http = clients.orchestrator(&orch).unwrap();
    let mut cheap = echo_runner("echo", "x");
    cheap.capacity = 1;
    let reg =
        RunnerRegistration::register(&clients, &orch, LOCAL_RUNNER_SECRET, cheap.clone()).await.unwrap();
    let mut single = echo_runner("single", "x");
    single.mode = "single_shot".into();
    let single = RunnerRegistration::register(&clients, &orch, LOCAL_RUNNER_SECRET, single).await.unwrap();
    let session_url = format!("{orch}/apps/{}/session", reg.runner_id());

    let r = http.post(format!("{orch}/apps/runner_nope/session")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap().as_str()), (404, "runner not found\n"));
    let r = http.post(format!("{orch}/apps/{}/session", single.runner_id())).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap().as_str()),
        (400, "only persistent runners have sessions\n")
    );

    // Priced: a 402 challenge, which needs a payer address.
    let r = http.post(&session_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 402);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "invalid live runner payment signer address");
    let r = http
        .post(&session_url)
        .header("Livepeer-Payer-Address", "0x00000000000000000000000000000000000000aa")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 402);
    let challenge: serde_json::Value = r.json().await.unwrap();
    let manifest = challenge["manifest_id"].as_str().unwrap();
    assert_eq!(challenge["orchestrator"], orch);
    assert_eq!(challenge["payment_url"], format!("{session_url}/{manifest}/payment"));
    let info: gateway_core::lp_rpc::OrchestratorInfo =
        gateway_core::lp_rpc::from_base64("payment_params", challenge["payment_params"].as_str().unwrap())
            .unwrap();
    let price = info.price_info.unwrap();
    assert_eq!(
        (price.price_per_unit, price.pixels_per_unit),
        (500_000_000_000, 1),
        "wei per second, per 1 unit"
    );
    assert_eq!(info.auth_token.unwrap().session_id, manifest, "the session id to pay under");
    assert!(info.ticket_params.is_some());

    // Payments and stops for sessions that do not exist.
    let r = http.post(format!("{session_url}/nope/payment")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http.post(format!("{session_url}/nope/stop")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "go releases an unknown session as a no-op");
    let r = http.post(format!("{orch}/apps/runner_nope/session/x/stop")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    net.shutdown().await;

    // Offchain: reserved at once, up to the runner's capacity.
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.offchain = true;
    let net = LocalNetwork::start(config).await.unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    let http = clients.orchestrator(&orch).unwrap();
    let mut free = cheap;
    free.price_info = RunnerPriceInfo::default();
    let reg = RunnerRegistration::register(&clients, &orch, LOCAL_RUNNER_SECRET, free).await.unwrap();
    let session_url = format!("{orch}/apps/{}/session", reg.runner_id());
    let first: serde_json::Value = http.post(&session_url).send().await.unwrap().json().await.unwrap();
    let sid = first["session_id"].as_str().unwrap();
    assert!(sid.starts_with("session_"), "{first}");
    assert_eq!(first["control_url"], format!("{session_url}/{sid}"));
    let r = http.post(&session_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503, "capacity 1");
    let listed = Gateway::start(GatewayConfig {
        network: NetworkSettings { orchestrators: vec![orch.clone()], ..Default::default() },
        ..Default::default()
    })
    .unwrap();
    let found = listed.discover_runners(&RunnerFilter::default()).await.unwrap();
    assert_eq!((found.runners[0].runner.capacity_used, found.runners[0].runner.capacity_available), (1, 0));
    assert!(found.runners[0].runner.price_info.is_none(), "offchain: no price");
    let r = http.post(format!("{session_url}/{sid}/stop")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    // Our client: reserved at once, nothing to pay.
    let session = listed.reserve_runner_session(&found.runners[0]).await.unwrap();
    assert!(session.session_id.starts_with("session_"), "{}", session.session_id);
    assert_eq!(
        session.payments_stopped().await,
        livepeer_gateway_actors::payments::PaymentStop::FreeOrchestrator
    );
    session.stop().await.unwrap();
    assert_eq!(http.post(&session_url).send().await.unwrap().status().as_u16(), 200, "capacity freed");
    listed.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_gateway_reserves_pays_for_and_stops_a_runner_session() {
    let net = network(Duration::from_millis(200), Duration::from_secs(10)).await;
    let orch = net.orchestrator_urls()[0].clone();
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let mut priced = echo_runner("session-app", "x");
    // $0.036 an hour: 5e9 wei per second, a handful of tickets per payment.
    priced.price_info.price = 0.036.into();
    let reg = RunnerRegistration::register(&clients, &orch, LOCAL_RUNNER_SECRET, priced).await.unwrap();
    let network = NetworkSettings {
        orchestrators: vec![orch.clone()],
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let found = gw.discover_runners(&filter(&["session-app"], &[])).await.unwrap();
    let mut heard = reg.session_events();
    let session = gw.reserve_runner_session(&found.runners[0]).await.unwrap();
    assert_eq!(session.session_id.len(), 8, "the challenge's manifest id: {}", session.session_id);
    // The runner hears of it on its O2R channel.
    let event = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await.unwrap().unwrap();
    assert_eq!(
        (event.kind, event.session_id.as_str()),
        (SessionEventKind::Reserved, session.session_id.as_str())
    );
    assert!(event.timestamp.is_some());
    assert_eq!(reg.sessions(), vec![session.session_id.clone()]);
    assert_eq!(
        session.control_url,
        format!("{orch}/apps/{}/session/{}", reg.runner_id(), session.session_id)
    );
    assert_eq!(session.app_url, format!("{}/app", session.control_url));
    assert_eq!(net.orchestrator().runner_sessions(reg.runner_id()), vec![session.session_id.clone()]);

    // Paid up front, then every 3 s at the challenge's payment URL.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while session.payment_stats().payments_sent < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recurring payment: {:?}",
            session.payment_stats()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line =
        net.orchestrator().ledger().lines()[&gateway_testkit::orchestrator::PaymentRoute::RunnerSession];
    assert!(line.payments >= 2 && line.ev_wei > 0.0, "{line:?}");

    let sid = session.session_id.clone();
    session.stop().await.unwrap();
    assert!(net.orchestrator().runner_sessions(reg.runner_id()).is_empty(), "released on stop");
    let event = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await.unwrap().unwrap();
    assert_eq!((event.kind, event.session_id.as_str()), (SessionEventKind::Released, sid.as_str()));
    assert!(reg.sessions().is_empty());

    // Without a signer this gateway cannot pay: a typed refusal, nothing reserved.
    let unpaid = Gateway::start(GatewayConfig {
        network: NetworkSettings { orchestrators: vec![orch.clone()], ..Default::default() },
        ..Default::default()
    })
    .unwrap();
    let err = unpaid.reserve_runner_session(&found.runners[0]).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::PaymentRequired { .. })), "{err}");
    assert!(net.orchestrator().runner_sessions(reg.runner_id()).is_empty());
    unpaid.shutdown();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_call_reaches_the_runner_through_the_orchestrator_with_the_session_headers() {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.offchain = true;
    let net = LocalNetwork::start(config).await.unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    let app = gateway_testkit::runner_app::RunnerApp::start().await.unwrap();
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let mut runner = echo_runner("echo-app", "x");
    runner.runner_url = app.url.clone();
    runner.price_info = RunnerPriceInfo::default();
    let reg = RunnerRegistration::register(&clients, &orch, LOCAL_RUNNER_SECRET, runner).await.unwrap();
    let gw = gateway_for(&net);
    let found = gw.discover_runners(&filter(&["echo-app"], &[])).await.unwrap();
    let session = gw.reserve_runner_session(&found.runners[0]).await.unwrap();

    let call = RunnerCall::post("v1/echo", &br#"{"hi":1}"#[..], "application/json");
    let answer = session.call_app(call).await.unwrap().collect().await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/runner/v1/echo", "the runner URL's path joined with the app path");
    assert_eq!(seen["body"], r#"{"hi":1}"#);
    let headers = &seen["session"];
    assert_eq!(headers["Livepeer-Runner-Route"], reg.runner_id());
    assert_eq!(headers["Livepeer-Session-Id"], session.session_id);
    assert_eq!(
        headers["Livepeer-Session-Control"],
        format!("{orch}/runner/{}/session/{}", reg.runner_id(), session.session_id)
    );
    let token = headers["Livepeer-Session-Token"].as_str().unwrap();
    assert_eq!(token.len(), 52, "base32 of an HMAC-SHA256: {token}");

    // After the stop the orchestrator no longer proxies the session.
    let app_url = session.app_url.clone();
    session.stop().await.unwrap();
    let http = clients.orchestrator(&orch).unwrap();
    let r = http.post(format!("{app_url}/v1/echo")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // A runner that went away: 502 from the orchestrator.
    let again = gw.reserve_runner_session(&found.runners[0]).await.unwrap();
    app.shutdown().await;
    let answer = again.call_app(RunnerCall::get("x")).await.unwrap().collect().await.unwrap();
    assert_eq!(answer.status, 502, "{answer:?}");
    again.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}
