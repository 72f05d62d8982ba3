//! A runner's app calling back to its orchestrator for the session it serves (issue 17, part),
//! against the double that answers as go-livepeer master's `server/ai_http.go` does: a Rust
//! runner app built on `SessionControl` makes trickle channels and a public proxy for a session
//! our gateway reserved, deletes a channel, and ends its own session; go's refusals; and the
//! official Python SDK's runner-side callbacks against the same double.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use axum::http::HeaderMap;
use gateway_core::runners::{ChannelRequest, HeartbeatRequest, RunnerFilter, HEADER_SESSION_TOKEN};
use gateway_core::token::NetworkSettings;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::LOCAL_RUNNER_SECRET;
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::live_runners::{
    RunnerCall, RunnerError, RunnerRegistration, RunnerSession, SessionControl,
};
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::{Gateway, GatewayConfig};

/// An offchain network (callbacks need no payment).
async fn network() -> LocalNetwork {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.offchain = true;
    config.orchestrator.runner_heartbeat_interval = Duration::from_millis(200);
    LocalNetwork::start(config).await.unwrap()
}

fn clients() -> HttpClients {
    HttpClients::new(OrchestratorTrust::Insecure).unwrap()
}

/// A small Rust runner app: `setup` makes two channels and a proxy for the calling session,
/// `bye` ends the session, anything else echoes its path, session id and token.
async fn serve_rust_app() -> (String, gateway_testkit::serve::ServerHandle) {
    async fn setup(headers: HeaderMap) -> axum::Json<serde_json::Value> {
        let control = SessionControl::from_headers(&clients(), &headers).unwrap();
        let wanted = [
            ChannelRequest { name: "out".into(), mime_type: "video/MP2T".into() },
            ChannelRequest { name: "events".into(), mime_type: String::new() },
        ];
        let channels = control.create_channels(&wanted).await.unwrap();
        let proxy = control.create_proxy(None).await.unwrap();
        axum::Json(serde_json::json!({ "channels": channels, "proxy": proxy, "session": control.session_id }))
    }
    async fn bye(headers: HeaderMap) -> &'static str {
        SessionControl::from_headers(&clients(), &headers).unwrap().stop().await.unwrap();
        "bye"
    }
    async fn echo(uri: axum::http::Uri, headers: HeaderMap) -> axum::Json<serde_json::Value> {
        let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let (session, token) = (get("Livepeer-Session-Id"), get(HEADER_SESSION_TOKEN));
        axum::Json(
            serde_json::json!({ "path": uri.path(), "query": uri.query(), "session": session, "token": token }),
        )
    }
    let app = axum::Router::new()
        .route("/app/setup", axum::routing::post(setup))
        .route("/app/bye", axum::routing::post(bye))
        .fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/app", listener.local_addr().unwrap());
    (url, gateway_testkit::serve::serve(listener, app, None))
}

/// A gateway on `orch` reserves a session on `app` and calls its `setup` route: the gateway,
/// the session and what `setup` answered.
async fn reserve_and_set_up(orch: &str, app: &str) -> (Gateway, RunnerSession, serde_json::Value) {
    let network = NetworkSettings { orchestrators: vec![orch.to_owned()], ..Default::default() };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let filter = RunnerFilter { apps: vec![app.into()], gpus: vec![] };
    let candidate = gw.discover_runners(&filter).await.unwrap().runners.remove(0);
    let session = gw.reserve_runner_session(&candidate).await.unwrap();
    let setup =
        session.call_app(RunnerCall::post("setup", "", "text/plain")).await.unwrap().collect().await.unwrap();
    assert_eq!(setup.status, 200, "{setup:?}");
    let answer = serde_json::from_slice(&setup.body).unwrap();
    (gw, session, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_runner_app_makes_channels_and_a_proxy_for_its_session_and_ends_it() {
    let net = network().await;
    let orch = net.orchestrator_urls()[0].clone();
    let (app_url, server) = serve_rust_app().await;
    let heartbeat =
        HeartbeatRequest { runner_url: app_url, app: "rusty".into(), capacity: 1, ..Default::default() };
    let reg = RunnerRegistration::register(&clients(), &orch, LOCAL_RUNNER_SECRET, heartbeat).await.unwrap();
    let (gw, session, v) = reserve_and_set_up(&orch, "rusty").await;
    let sid = session.session_id.clone();
    assert_eq!(v["session"], sid);
    let out = &v["channels"][0];
    assert_eq!(out["name"], "out");
    assert_eq!(out["channel_name"], format!("{sid}-out"));
    assert_eq!(out["url"], format!("{orch}/ai/trickle/{sid}-out"));
    assert_eq!(out["internal_url"], out["url"]);
    assert_eq!(out["mime_type"], "video/MP2T");
    assert_eq!(v["channels"][1]["mime_type"], "application/octet-stream", "go's default");

    // The channel is a trickle channel on the orchestrator: a segment goes in and comes out.
    let http = clients().orchestrator(&orch).unwrap();
    let out_url = out["url"].as_str().unwrap();
    assert!(http.post(format!("{out_url}/0")).body("seg-0").send().await.unwrap().status().is_success());
    let got = http.get(format!("{out_url}/0")).send().await.unwrap();
    assert_eq!(got.bytes().await.unwrap(), "seg-0");

    // The proxy reaches the runner's app with the session's headers.
    let proxy_url = v["proxy"]["url"].as_str().unwrap().to_owned();
    assert_eq!(proxy_url, format!("{orch}/run/{}", v["proxy"]["proxy_id"].as_str().unwrap()));
    assert_eq!(v["proxy"]["proxy_id"].as_str().unwrap().len(), 26);
    let seen: serde_json::Value =
        http.get(format!("{proxy_url}/v1/x?y=1")).send().await.unwrap().json().await.unwrap();
    assert_eq!((seen["path"].as_str(), seen["query"].as_str()), (Some("/app/v1/x"), Some("y=1")));
    assert_eq!(seen["session"], sid);
    let token = seen["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 52);

    // go's refusals, and ours before sending.
    let control_url = format!("{orch}/runner/{}/session/{sid}", reg.runner_id());
    let raw = |method: reqwest::Method, what: &str, token: &str, body: serde_json::Value| {
        http.request(method, format!("{control_url}/{what}"))
            .header(HEADER_SESSION_TOKEN, token)
            .json(&body)
            .send()
    };
    let r =
        raw(reqwest::Method::POST, "channels", "wrong", serde_json::json!({"channels": []})).await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (401, "invalid authorization\n".into()));
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("Livepeer-Runner-Route", reg.runner_id()),
        ("Livepeer-Session-Id", sid.as_str()),
        ("Livepeer-Session-Control", control_url.as_str()),
        ("Livepeer-Session-Token", "made-up"),
    ] {
        headers.insert(k, v.parse().unwrap());
    }
    let forged = SessionControl::from_headers(&clients(), &headers).unwrap();
    let err = forged.create_proxy(None).await.unwrap_err();
    assert!(matches!(err, RunnerError::Http { status: 401, .. }), "{err}");
    let too_many: Vec<ChannelRequest> =
        (0..26).map(|i| ChannelRequest { name: format!("c{i}"), ..Default::default() }).collect();
    assert!(matches!(forged.create_channels(&too_many).await, Err(RunnerError::Invalid(_))));
    assert!(matches!(forged.remove_channels(&["a.b".into()]).await, Err(RunnerError::Invalid(_))));
    headers.remove("Livepeer-Session-Control");
    assert!(matches!(SessionControl::from_headers(&clients(), &headers), Err(RunnerError::Invalid(_))));

    // Deleting: once deleted, a channel is gone, and deleting it again is go's 404.
    let r = raw(reqwest::Method::DELETE, "channels", &token, serde_json::json!({"channels": ["out"]}))
        .await
        .unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"deleted": ["out"]}));
    assert_eq!(http.get(format!("{out_url}/0")).send().await.unwrap().status().as_u16(), 404);
    let r = raw(reqwest::Method::DELETE, "channels", &token, serde_json::json!({"channels": ["out"]}))
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (404, "trickle channel not found\n".into()));
    let r =
        raw(reqwest::Method::POST, "proxy", &token, serde_json::json!({"target_url": "http://elsewhere:1/"}))
            .await
            .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.text().await.unwrap(), "target_url hostname must match registered runner_url hostname\n");

    // The app ends its own session: released, its channels and proxy gone with it.
    let bye =
        session.call_app(RunnerCall::post("bye", "", "text/plain")).await.unwrap().collect().await.unwrap();
    assert_eq!(&bye.body[..], b"bye");
    assert!(net.orchestrator().runner_sessions(reg.runner_id()).is_empty());
    let events_url = v["channels"][1]["url"].as_str().unwrap();
    assert_eq!(http.post(format!("{events_url}/0")).body("x").send().await.unwrap().status().as_u16(), 404);
    let r = http.get(format!("{proxy_url}/v1/x")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (404, "live runner proxy not found\n".into()));
    let r = raw(reqwest::Method::POST, "stop", &token, serde_json::json!({})).await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (404, "runner session not found\n".into()));
    gw.shutdown();
    server.shutdown().await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_runner_app_makes_channels_and_a_proxy_here_and_ends_its_session() {
    let net = network().await;
    let orch = net.orchestrator_urls()[0].clone();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/runner_callbacks_peer.py");
    let mut child = std::process::Command::new(gateway_testkit::python::interpreter())
        .arg(script)
        .args([orch.as_str(), LOCAL_RUNNER_SECRET])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line =
        move || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let registered = tokio::task::block_in_place(&mut next_line);
    let runner_id = registered["runner_id"].as_str().unwrap().to_owned();

    let (gw, session, v) = reserve_and_set_up(&orch, "py-callbacks").await;
    let sid = session.session_id.clone();
    assert_eq!(v["channels"][0]["channel_name"], format!("{sid}-out"), "{v}");
    assert_eq!(v["channels"][1]["mime_type"], "application/octet-stream", "{v}");
    assert_eq!(v["deleted"], serde_json::json!(["scratch"]), "{v}");
    let http = clients().orchestrator(&orch).unwrap();
    let out_url = v["channels"][0]["url"].as_str().unwrap();
    assert!(http.post(format!("{out_url}/0")).body("x").send().await.unwrap().status().is_success());
    let scratch_url = v["channels"][1]["url"].as_str().unwrap();
    assert_eq!(http.post(format!("{scratch_url}/0")).body("x").send().await.unwrap().status().as_u16(), 404);
    // Through the SDK's proxy to its app.
    let proxy_url = v["proxy"]["url"].as_str().unwrap();
    let seen: serde_json::Value =
        http.get(format!("{proxy_url}/hello")).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen, serde_json::json!({ "path": "/py/hello", "session": sid }));

    let bye =
        session.call_app(RunnerCall::post("bye", "", "text/plain")).await.unwrap().collect().await.unwrap();
    assert_eq!(&bye.body[..], b"bye");
    assert!(net.orchestrator().runner_sessions(&runner_id).is_empty(), "the SDK's stop released the session");
    assert_eq!(http.post(format!("{out_url}/1")).body("x").send().await.unwrap().status().as_u16(), 404);

    drop(child.stdin.take());
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert!(status.success());
    gw.shutdown();
    net.shutdown().await;
}
