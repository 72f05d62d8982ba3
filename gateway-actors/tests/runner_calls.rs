//! Calls to live runners (issue 17, part) against the orchestrator double that answers as
//! go-livepeer master's `server/ai_http.go` does: single-shot calls paid per call (a 402
//! challenge, then metered payments while the answer streams, or one fixed payment),
//! answers streamed as server-sent events, a signer 480 mid-session refreshed through
//! `/refresh-payment`, runners that die mid-call and mid-session, and go's refusals.

use std::time::Duration;

use gateway_core::rejection::JobError;
use gateway_core::runners::{HeartbeatRequest, RunnerFilter, RunnerPriceInfo, MODE_SINGLE_SHOT};
use gateway_core::token::NetworkSettings;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::{PaymentRoute, LOCAL_RUNNER_SECRET};
use gateway_testkit::runner_app::RunnerApp;
use gateway_testkit::signer::SignerFault;
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::live_runners::{RunnerCall, RunnerCandidate, RunnerRegistration};
use livepeer_gateway_actors::payments::PaymentStop;
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::{Gateway, GatewayConfig, GatewayError};

/// An on-chain network whose runners heartbeat every 200 ms and expire after `ttl`.
async fn network(ttl: Duration) -> LocalNetwork {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.runner_heartbeat_interval = Duration::from_millis(200);
    config.orchestrator.runner_heartbeat_ttl = ttl;
    config.orchestrator.lv2v_accounting_interval = Duration::from_millis(500);
    LocalNetwork::start(config).await.unwrap()
}

fn paying_gateway(net: &LocalNetwork) -> Gateway {
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap()
}

/// A runner for `app` at `url`, `price` USD per `unit`.
fn runner(app: &str, url: &str, mode: &str, price: f64, unit: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        runner_url: url.into(),
        app: app.into(),
        mode: mode.into(),
        capacity: 1,
        price_info: RunnerPriceInfo { price: price.into(), currency: "usd".into(), unit: unit.into() },
        ..Default::default()
    }
}

async fn register(net: &LocalNetwork, req: HeartbeatRequest) -> RunnerRegistration {
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    RunnerRegistration::register(&clients, &net.orchestrator_urls()[0], LOCAL_RUNNER_SECRET, req)
        .await
        .unwrap()
}

async fn find(gw: &Gateway, app: &str) -> RunnerCandidate {
    let filter = RunnerFilter { apps: vec![app.into()], gpus: vec![] };
    gw.discover_runners(&filter).await.unwrap().runners.remove(0)
}

fn runner_session_payments(net: &LocalNetwork) -> u64 {
    net.orchestrator().ledger().lines().get(&PaymentRoute::RunnerSession).map_or(0, |l| l.payments)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metered_single_shot_call_pays_while_its_events_stream_and_frees_the_runner_after() {
    let net = network(Duration::from_secs(10)).await;
    let app = RunnerApp::start().await.unwrap();
    // $0.036 an hour: 5e9 wei per second.
    let reg = register(&net, runner("gen", &app.url, MODE_SINGLE_SHOT, 0.036, "hour")).await;
    let gw = paying_gateway(&net);
    let candidate = find(&gw, "gen").await;
    assert_eq!(candidate.runner.url, format!("{}/apps/{}/app", net.orchestrator_urls()[0], reg.runner_id()));

    // 5 events 1 s apart: the answer streams for 4 s, across a 3 s payment interval.
    let mut answer =
        gw.call_runner(&candidate, RunnerCall::get("v1/events?count=5&interval_ms=1000")).await.unwrap();
    assert_eq!(answer.status, 200);
    assert!(answer.is_event_stream(), "{:?}", answer.content_type);
    let session = answer.session_id.clone().expect("a paid call names its session");
    assert_eq!(net.orchestrator().runner_sessions(reg.runner_id()), vec![session.clone()]);
    let started = tokio::time::Instant::now();
    let mut seen = Vec::new();
    while let Some(event) = answer.next_event().await.unwrap() {
        assert_eq!(event.event, "token");
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["session"], session, "the proxy named the paid session to the app");
        seen.push((data["i"].as_u64().unwrap(), started.elapsed()));
    }
    assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(
        seen[4].1 - seen[0].1 >= Duration::from_secs(3),
        "events arrived as sent, not at the end: {seen:?}"
    );
    let stats = answer.payment_stats();
    assert!(stats.payments_sent >= 1, "a recurring payment while the answer streamed: {stats:?}");
    assert_eq!(answer.payments_stopped().await, PaymentStop::JobEnded, "payments end with the answer");
    assert!(runner_session_payments(&net) >= 2, "the challenge's payment and the recurring one");
    assert_eq!(net.signer.stats().last_payment_type.as_deref(), Some("live"));
    // The orchestrator released the call's session when the answer ended.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !net.orchestrator().runner_sessions(reg.runner_id()).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the session outlived its call");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...so the runner (capacity 1) takes the next call.
    let echo =
        gw.call_runner(&candidate, RunnerCall::post_json("v1/echo", &serde_json::json!({"x": 1}))).await;
    let echo = echo.unwrap().collect().await.unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&echo.body).unwrap();
    assert_eq!((seen["method"].as_str(), seen["path"].as_str()), (Some("POST"), Some("/runner/v1/echo")));
    assert_eq!(seen["body"], r#"{"x":1}"#);
    gw.shutdown();
    app.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_price_call_and_session_pay_once() {
    let net = network(Duration::from_secs(10)).await;
    let app = RunnerApp::start().await.unwrap();
    // $0.0001 a request: 5e10 wei at the double's $2000 per ETH.
    register(&net, runner("fixed-call", &app.url, MODE_SINGLE_SHOT, 0.0001, "fixed")).await;
    let persistent = register(&net, runner("fixed-session", &app.url, "persistent", 0.0001, "fixed")).await;
    let gw = paying_gateway(&net);
    let candidate = find(&gw, "fixed-call").await;
    assert_eq!(candidate.runner.price_info.as_ref().unwrap().unit, "fixed");

    let answer =
        gw.call_runner(&candidate, RunnerCall::get("v1/events?count=2&interval_ms=3500")).await.unwrap();
    assert_eq!(answer.payments_stopped().await, PaymentStop::FixedPrice);
    let body = answer.collect().await.unwrap();
    assert_eq!(body.status, 200);
    assert_eq!(runner_session_payments(&net), 1, "one payment, though the answer took 3.5 s");
    assert_eq!(net.signer.stats().last_payment_type.as_deref(), Some("fixed"));

    let session = gw.reserve_runner_session(&find(&gw, "fixed-session").await).await.unwrap();
    assert_eq!(session.payments_stopped().await, PaymentStop::FixedPrice);
    assert_eq!(runner_session_payments(&net), 2);
    // go refuses follow-up payments on a fixed-price session.
    let http =
        HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&session.control_url).unwrap();
    let r = http.post(format!("{}/payment", session.control_url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert!(r.text().await.unwrap().contains("do not accept follow-up payments"));
    session.stop().await.unwrap();
    assert!(net.orchestrator().runner_sessions(persistent.runner_id()).is_empty());
    gw.shutdown();
    app.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_price_above_the_discovered_one_is_refused_by_the_signer_and_nothing_is_reserved() {
    let net = network(Duration::from_secs(10)).await;
    let app = RunnerApp::start().await.unwrap();
    let reg = register(&net, runner("pricey", &app.url, MODE_SINGLE_SHOT, 0.036, "hour")).await;
    let gw = paying_gateway(&net);
    let mut candidate = find(&gw, "pricey").await;
    // As if discovery had shown half the price the orchestrator now asks: our ceiling (the
    // discovered price + 1.2 %) is below it, so the signer refuses (481) and nothing is paid.
    let price = candidate.runner.price_info.as_ref().unwrap().price_value().unwrap();
    candidate.runner.price_info.as_mut().unwrap().price = (price / 2.0).into();
    let err = gw.call_runner(&candidate, RunnerCall::get("x")).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Signer(gateway_core::error::SignerError::PriceExceeded { .. })),
        "{err}"
    );
    assert_eq!(net.signer.stats().price_exceeded_responses, 1);
    assert_eq!(runner_session_payments(&net), 0);
    assert!(net.orchestrator().runner_sessions(reg.runner_id()).is_empty());
    // At the discovered price the same call goes through.
    let answer = gw.call_runner(&find(&gw, "pricey").await, RunnerCall::get("x")).await.unwrap();
    assert_eq!(answer.collect().await.unwrap().status, 200);
    gw.shutdown();
    app.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_480_mid_session_refreshes_the_params_through_the_orchestrator() {
    let net = network(Duration::from_secs(10)).await;
    let reg =
        register(&net, runner("refresh-app", "http://127.0.0.1:9/x", "persistent", 0.036, "hour")).await;
    let gw = paying_gateway(&net);
    let session = gw.reserve_runner_session(&find(&gw, "refresh-app").await).await.unwrap();
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 480,
        count: 1,
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while session.payment_stats().payments_sent < 1 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", session.payment_stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = session.payment_stats();
    assert_eq!(
        (stats.failures, stats.stopped.clone()),
        (0, None),
        "the 480 was refreshed, not failed: {stats:?}"
    );
    assert_eq!(net.signer.stats().refresh_session_responses, 1);
    assert_eq!(
        net.orchestrator().stats().payment_refreshes,
        1,
        "the fresh params came from /refresh-payment"
    );
    session.stop().await.unwrap();

    // go's refusals on /refresh-payment.
    let orch = &net.orchestrator_urls()[0];
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(orch).unwrap();
    let refresh = |body: serde_json::Value| http.post(format!("{orch}/refresh-payment")).json(&body).send();
    let sender = format!("0x{}", "11".repeat(20));
    for (body, status, message) in [
        (serde_json::json!({"sender": "nope", "manifest_id": "m"}), 400, "invalid sender"),
        (serde_json::json!({"sender": sender, "manifest_id": " "}), 400, "missing manifest_id"),
        (serde_json::json!({"sender": sender, "manifest_id": "m"}), 409, "fixed price not found for session"),
    ] {
        let r = refresh(body).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["message"], message);
    }
    drop(reg);
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_dies_breaks_the_call_it_was_answering_and_releases_its_sessions() {
    let net = network(Duration::from_millis(800)).await;
    let app = RunnerApp::start().await.unwrap();
    let reg = register(&net, runner("mortal", &app.url, MODE_SINGLE_SHOT, 0.036, "hour")).await;
    let gw = paying_gateway(&net);
    let candidate = find(&gw, "mortal").await;
    let mut answer =
        gw.call_runner(&candidate, RunnerCall::get("events?count=50&interval_ms=200")).await.unwrap();
    assert!(answer.next_event().await.unwrap().is_some());
    app.kill().await;
    let err = loop {
        match answer.next_event().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a cut-off answer must not read as complete"),
            Err(e) => break e,
        }
    };
    assert!(err.to_string().contains("broke off"), "{err}");
    assert_eq!(answer.payments_stopped().await, PaymentStop::JobEnded);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !net.orchestrator().runner_sessions(reg.runner_id()).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the broken call's session is still held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(reg);

    // A persistent runner whose process dies mid-session: its heartbeats stop, the
    // orchestrator forgets it after the TTL, and the session's payment URL answers 404.
    let reg =
        register(&net, runner("mortal-session", "http://127.0.0.1:9/x", "persistent", 0.036, "hour")).await;
    let session = gw.reserve_runner_session(&find(&gw, "mortal-session").await).await.unwrap();
    drop(reg);
    let stop = tokio::time::timeout(Duration::from_secs(15), session.payments_stopped()).await.unwrap();
    assert_eq!(stop, PaymentStop::Released);
    // Stopping it then gets go's 404: the orchestrator forgot the runner.
    let err = session.stop().await.unwrap_err();
    assert!(matches!(err, JobError::Http { status: 404, .. }), "{err}");
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_shot_routes_answer_as_go_does() {
    let net = network(Duration::from_secs(10)).await;
    let app = RunnerApp::start().await.unwrap();
    let mut offchain = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    offchain.orchestrator.offchain = true;
    let free_net = LocalNetwork::start(offchain).await.unwrap();
    let free = |app_name: &str, mode: &str| HeartbeatRequest {
        price_info: RunnerPriceInfo::default(),
        ..runner(app_name, &app.url, mode, 0.0, "")
    };
    let single = register(&free_net, free("one", MODE_SINGLE_SHOT)).await;
    let persistent = register(&free_net, free("many", "persistent")).await;
    let orch = free_net.orchestrator_urls()[0].clone();
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&orch).unwrap();
    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The app's root, the query kept; without the slash go's mux redirects.
    let r = http.get(format!("{orch}/apps/{}/app/?q=1", single.runner_id())).send().await.unwrap();
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!((seen["path"].as_str(), seen["query"].as_str()), (Some("/runner"), Some("q=1")));
    let r = no_redirect.post(format!("{orch}/apps/{}/app", single.runner_id())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 301);
    assert_eq!(r.headers()["location"], format!("/apps/{}/app/", single.runner_id()));
    for (url, status, message) in [
        (format!("{orch}/apps/{}/app/x", persistent.runner_id()), 400, "runner is not single-shot"),
        (format!("{orch}/apps/nobody/app/x"), 404, "runner not found"),
        (format!("{orch}/apps/{}/session", single.runner_id()), 400, "only persistent runners have sessions"),
    ] {
        let r = http.post(&url).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{url}");
        assert_eq!(r.text().await.unwrap(), format!("{message}\n"), "{url}");
    }

    // One call at a time on a runner of capacity 1: go answers 503 while one is in flight.
    let gw = Gateway::start(GatewayConfig {
        network: NetworkSettings { orchestrators: vec![orch.clone()], ..Default::default() },
        ..Default::default()
    })
    .unwrap();
    let candidate = find(&gw, "one").await;
    let mut first =
        gw.call_runner(&candidate, RunnerCall::get("events?count=2&interval_ms=1500")).await.unwrap();
    assert_eq!(first.session_id, None, "a free call is not paid under a session id");
    assert_eq!(first.payments_stopped().await, PaymentStop::FreeOrchestrator);
    assert!(first.next_event().await.unwrap().is_some());
    let busy = gw.call_runner(&candidate, RunnerCall::get("x")).await.unwrap().collect().await.unwrap();
    assert_eq!(busy.status, 503);
    assert_eq!(&busy.body[..], b"no capacity available for runner\n");
    first.close().await;

    // A persistent runner is not called this way.
    let err = gw.call_runner(&find(&gw, "many").await, RunnerCall::get("x")).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::InvalidRequest(_))), "{err}");
    // A runner priced in a unit no signer knows is refused before anything is sent.
    let mut odd = candidate.clone();
    odd.runner.price_info =
        Some(RunnerPriceInfo { price: 1.into(), currency: "wei".into(), unit: "frames".into() });
    let err = gw.call_runner(&odd, RunnerCall::get("x")).await.unwrap_err();
    assert!(err.to_string().contains("frames"), "{err}");
    gw.shutdown();
    drop((single, persistent));
    app.shutdown().await;
    free_net.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_calls_single_shot_runners_here_paying_each_call() {
    let net = network(Duration::from_secs(10)).await;
    let app = RunnerApp::start().await.unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/runner_call_peer.py");
    let args = [orch.clone(), LOCAL_RUNNER_SECRET.to_owned(), net.signer_url(), app.url.clone()];
    let v = gateway_testkit::python::run_peer(script, args.to_vec()).await;
    // The SDK's call to the discovered URL (`…/apps/{id}/app`, no slash) meets go's mux
    // redirect (301), which aiohttp follows as a GET without the body: the app sees the
    // call, paid and with its session headers, but not the SDK's POST body.
    let whole = &v["whole"];
    assert_eq!(whole["paid"], true, "{v}");
    assert_eq!(whole["data"]["session"]["Livepeer-Session-Id"], whole["session_id"], "{v}");
    assert_eq!((whole["data"]["method"].as_str(), whole["data"]["body"].as_str()), (Some("GET"), Some("")));
    assert_eq!(whole["data"]["path"], "/runner");
    // Streamed: every event of the one paid call, as they came.
    let stream = &v["stream"];
    assert_eq!(
        (stream["status"].as_u64(), stream["content_type"].as_str()),
        (Some(200), Some("text/event-stream"))
    );
    let events = stream["data"].as_array().unwrap();
    assert_eq!(events.iter().map(|e| e["i"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 2, 3], "{v}");
    assert!(events.iter().all(|e| e["session"] == events[0]["session"]), "{v}");
    assert_eq!(stream["released"], false, "{v}");
    // Fixed price: paid under the challenge's session, no payment session kept to fund.
    let fixed = &v["fixed"];
    assert_eq!(fixed["paid"], false, "{v}");
    assert_eq!(fixed["data"]["session"]["Livepeer-Session-Id"], fixed["session_id"], "{v}");
    // Three challenges paid, and at least one recurring payment while the 3.6 s stream ran.
    assert!(runner_session_payments(&net) >= 4, "{:?}", net.orchestrator().ledger().lines());
    assert_eq!(net.orchestrator().stats().stopped_for_payment, 0);
    app.shutdown().await;
    net.shutdown().await;
}
