//! `serve` (issue 18, part): a gateway node on a real socket, called with go-livepeer's BYOC
//! gateway request shapes (the `Livepeer` job header, `StartRequest`, `/process/stream/{id}/…`)
//! by a plain HTTP client, against the local network run in this process (so the test sees
//! what its orchestrator was asked): a stream started, updated, read (status, data) and
//! stopped; go's refusals; bearer tokens and go's auth webhook; and a SIGTERM drain.

mod common;

use std::io::Read;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::serve_node::{answer, client, network, network_config, ServeNode};
use futures_util::StreamExt;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};

const TOKEN: &str = "node-token";

/// go's `Livepeer` header for a job of `capability` (unsigned: the node signs).
fn job_header(capability: &str, parameters: serde_json::Value, timeout: u32) -> String {
    let job = serde_json::json!({
        "capability": capability, "request": "{}", "parameters": parameters.to_string(),
        "timeout_seconds": timeout,
    });
    base64::engine::general_purpose::STANDARD.encode(job.to_string())
}

/// A request to the node with the token and, when given, a job header.
fn call(method: reqwest::Method, url: String, header: Option<&str>) -> reqwest::RequestBuilder {
    let req = client().request(method, url).bearer_auth(TOKEN);
    match header {
        Some(h) => req.header("Livepeer", h),
        None => req,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_started_updated_read_and_stopped_with_gos_shapes() {
    let net = network().await;
    let orch = net.orchestrator_urls()[0].clone();
    let node = ServeNode::start(&net, &["--auth-token", TOKEN], &[]);
    let header = job_header("text-reversal", serde_json::json!({"enable_data_output": true}), 60);
    let body =
        serde_json::json!({"stream_name": "cam", "stream_id": "s1", "params": "{\"prompt\":\"a cat\"}"});
    let start = call(reqwest::Method::POST, format!("{}/process/stream/start", node.url), Some(&header));
    let r = start.json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let urls: serde_json::Value = r.json().await.unwrap();
    let id = "cam-s1";
    assert_eq!(urls["stream_id"], id);
    for (key, action) in
        [("update_url", "update"), ("status_url", "status"), ("stop_url", "stop"), ("data_url", "data")]
    {
        assert_eq!(urls[key], format!("{}/process/stream/{id}/{action}", node.url), "{urls}");
    }
    assert_eq!(
        (urls["whip_url"].as_str(), urls["rtmp_url"].as_str()),
        (Some(""), Some("")),
        "no WHIP, and no RTMP without --rtmp-listen"
    );

    // The data channel as server-sent events: a control message reversed by the worker.
    let data =
        call(reqwest::Method::GET, urls["data_url"].as_str().unwrap().into(), None).send().await.unwrap();
    assert_eq!(data.headers()["content-type"], "text/event-stream");
    let mut sse = data.bytes_stream();
    let control = format!("{orch}/ai/trickle/{id}-control/0");
    assert!(client().post(control).body(r#"{"text":"hello"}"#).send().await.unwrap().status().is_success());
    let first = tokio::time::timeout(Duration::from_secs(10), sse.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(&first[..], b"data: {\"input\":\"hello\",\"reversed\":\"olleh\"}\n\n");

    // An update reaches the worker; the status follows its events.
    let update = call(reqwest::Method::POST, urls["update_url"].as_str().unwrap().into(), Some(&header));
    assert_eq!(answer(update.body(r#"{"prompt":"a dog"}"#)).await, (200, r#"{"status":"ok"}"#.into()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let (code, body) =
            answer(call(reqwest::Method::GET, urls["status_url"].as_str().unwrap().into(), None)).await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["type"] == "status" {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no status event: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["pipeline"], "text-reversal");

    let metrics = answer(client().get(format!("{}/metrics", node.url))).await.1;
    assert!(
        metrics.contains("livepeer_gateway_streams_started_total{capability=\"text-reversal\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("livepeer_gateway_streams_active 1"), "{metrics}");
    assert!(
        metrics.contains(
            "livepeer_gateway_request_seconds_count{route=\"/process/stream/start\",status=\"200\"} 1"
        ),
        "{metrics}"
    );

    // The stop's body reaches the worker; the stream is gone after.
    let stop = call(reqwest::Method::POST, urls["stop_url"].as_str().unwrap().into(), None);
    assert_eq!(answer(stop.body("client done")).await.0, 200);
    assert!(net.orchestrator().stop_reasons().contains(&(id.to_owned(), "client done".to_owned())));
    let (code, body) =
        answer(call(reqwest::Method::GET, urls["status_url"].as_str().unwrap().into(), None)).await;
    assert_eq!((code, body.as_str()), (404, "Stream not found\n"));
    let rest: Vec<u8> =
        tokio::time::timeout(Duration::from_secs(10), sse.map(|c| c.unwrap().to_vec()).concat())
            .await
            .unwrap();
    assert!(String::from_utf8_lossy(&rest).ends_with("event: end\ndata: {\"type\":\"stream_ended\"}\n\n"));
    let metrics = answer(client().get(format!("{}/metrics", node.url))).await.1;
    assert!(metrics.contains("livepeer_gateway_streams_stopped_total 1"), "{metrics}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_gos_status_codes_and_texts() {
    let net = network().await;
    let node = ServeNode::start(&net, &["--auth-token", TOKEN], &[]);
    let start_url = format!("{}/process/stream/start", node.url);
    let ok_header = job_header("text-reversal", serde_json::json!({}), 60);
    let start = |header: Option<&str>| call(reqwest::Method::POST, start_url.clone(), header);

    let (code, body) = answer(client().post(&start_url).header("Livepeer", &ok_header).body("{}")).await;
    assert_eq!((code, body.as_str()), (401, "Unauthorized\n"), "no token");
    let (code, _) = answer(client().post(&start_url).bearer_auth("wrong").body("{}")).await;
    assert_eq!(code, 401);
    let (code, body) = answer(start(None).body("{}")).await;
    assert!(code == 400 && body.starts_with("Unable to parse job request"), "{code} {body}");
    let no_timeout = job_header("text-reversal", serde_json::json!({}), 0);
    let (code, body) = answer(start(Some(&no_timeout)).body("{}")).await;
    assert_eq!(code, 400);
    assert!(body.contains("no timeout_seconds set with request, timeout_seconds is required"), "{body}");
    let (code, body) = answer(start(Some(&ok_header)).body("{not json")).await;
    assert!(code == 400 && body.starts_with("invalid JSON request body"), "{code} {body}");
    let (code, body) = answer(start(Some(&ok_header)).body(r#"{"params":"[1]"}"#)).await;
    assert_eq!((code, body.as_str()), (400, "invalid model params\n"));
    let (code, body) = answer(start(Some(&ok_header)).body(vec![b' '; (10 << 20) + 1])).await;
    assert_eq!((code, body.as_str()), (413, "request body too large (max 10485760 bytes)\n"));
    let nope = job_header("nope", serde_json::json!({}), 60);
    let (code, body) = answer(start(Some(&nope)).body("{}")).await;
    assert!(
        code == 400 && body.starts_with("Unable to find orchestrators for capability nope"),
        "{code} {body}"
    );

    // Unknown streams, on every stream route.
    for (method, action) in [("POST", "update"), ("GET", "status"), ("POST", "stop"), ("GET", "data")] {
        let url = format!("{}/process/stream/nobody/{action}", node.url);
        let (code, body) = answer(call(method.parse().unwrap(), url, Some(&ok_header))).await;
        assert_eq!((code, body.as_str()), (404, "Stream not found\n"), "{action}");
    }
    // A second start of the same id; an update without its header; data on a stream without.
    let (code, _) = answer(start(Some(&ok_header)).body(r#"{"stream_id":"twice"}"#)).await;
    assert_eq!(code, 200);
    let (code, body) = answer(start(Some(&ok_header)).body(r#"{"stream_id":"twice"}"#)).await;
    assert_eq!((code, body.as_str()), (400, "stream already exists: twice\n"));
    // Two starts of one id at once: the id is held from the first's start, so only one runs.
    let raced = r#"{"stream_id":"raced"}"#;
    let (a, b) = tokio::join!(
        answer(start(Some(&ok_header)).body(raced)),
        answer(start(Some(&ok_header)).body(raced))
    );
    let mut codes = [a.0, b.0];
    codes.sort();
    assert_eq!(codes, [200, 400], "{a:?} {b:?}");
    assert_eq!(net.orchestrator().stats().byoc_streams_started, 2, "twice and raced, once each");
    let update = format!("{}/process/stream/twice/update", node.url);
    let (code, body) = answer(call(reqwest::Method::POST, update, None).body("{}")).await;
    assert!(code == 400 && body.starts_with("Unable to parse job request"), "{code} {body}");
    let data = format!("{}/process/stream/twice/data", node.url);
    assert_eq!(
        answer(call(reqwest::Method::GET, data, None)).await,
        (503, "Stream data not available\n".into())
    );
    // Health needs no token.
    assert_eq!(answer(client().get(format!("{}/healthz", node.url))).await, (200, "ok\n".into()));
    assert_eq!(answer(client().get(format!("{}/readyz", node.url))).await, (200, "ready\n".into()));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_webhook_decides_each_start_and_its_key_is_never_printed() {
    let net = network().await;
    // go's webhook: refuses the stream named "blocked", renames and sets parameters otherwise.
    let seen = Arc::new(Mutex::new(Vec::<(Option<String>, serde_json::Value)>::new()));
    let hook = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/auth",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
                    let blocked = body["stream"] == "blocked";
                    seen.lock().unwrap().push((key, body.0));
                    if blocked {
                        return (axum::http::StatusCode::FORBIDDEN, "not you".to_owned());
                    }
                    let answer = serde_json::json!({"stream_id": "hooked-1", "pipeline_parameters": {"prompt": "from hook"}});
                    (axum::http::StatusCode::OK, answer.to_string())
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/auth", listener.local_addr().unwrap());
    let hook_server = gateway_testkit::serve::serve(listener, hook, None);
    let node = ServeNode::start(
        &net,
        &["--auth-token", TOKEN, "--auth-webhook", &hook_url, "--auth-webhook-key", "hook-key-123"],
        &[],
    );
    let header = job_header("text-reversal", serde_json::json!({}), 60);
    let start = || call(reqwest::Method::POST, format!("{}/process/stream/start", node.url), Some(&header));

    let (code, body) = answer(start().body(r#"{"stream_name":"blocked"}"#)).await;
    assert_eq!((code, body.as_str()), (403, "live ai auth failed: status=403 error=not you\n"));
    let r = start().body(r#"{"stream_name":"cam","params":"{\"prompt\":\"mine\"}"}"#).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let urls: serde_json::Value = r.json().await.unwrap();
    assert_eq!(urls["stream_id"], "hooked-1", "the webhook named the stream");
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1].0.as_deref(), Some("hook-key-123"));
    assert_eq!(asked[1].1["stream"], "cam");
    assert_eq!(asked[1].1["stream_key"], "cam");
    assert_eq!(asked[1].1["query_params"], r#"{"prompt":"mine"}"#);
    assert!(asked[1].1["status_url"].as_str().unwrap().starts_with(&node.url));
    // The key and the token never reach the node's output.
    let mut node = node;
    let _ = node.child.kill();
    let _ = node.child.wait();
    let mut stderr = String::new();
    node.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("serving on"), "{stderr}");
    assert!(!stderr.contains("hook-key-123") && !stderr.contains(TOKEN), "{stderr}");
    net.shutdown().await;
    hook_server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_stops_the_streams_left_and_exits_0() {
    let net = network().await;
    let mut node = ServeNode::start(&net, &["--drain-timeout", "1.5"], &[]);
    let header = job_header("text-reversal", serde_json::json!({}), 60);
    let start = call(reqwest::Method::POST, format!("{}/process/stream/start", node.url), Some(&header));
    assert_eq!(answer(start.body(r#"{"stream_id":"left-running"}"#)).await.0, 200);
    assert_eq!(net.orchestrator().running().sessions, 1);

    assert!(Command::new("kill").args(["-TERM", &node.child.id().to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(answer(client().get(format!("{}/readyz", node.url))).await, (503, "draining\n".into()));
    let header2 = job_header("text-reversal", serde_json::json!({}), 60);
    let late = call(reqwest::Method::POST, format!("{}/process/stream/start", node.url), Some(&header2));
    assert_eq!(answer(late.body("{}")).await.0, 503, "no new streams while draining");

    let status = tokio::task::block_in_place(|| node.child.wait()).unwrap();
    let mut stderr = String::new();
    node.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopping stream left-running"), "{stderr}");
    assert_eq!(net.orchestrator().running().sessions, 0, "the node stopped it on the orchestrator");
    net.shutdown().await;
}

/// Starts stream `id` on `node` (video in and out), checks the channel URLs it is answered,
/// and sends three segments through its input that must come back whole from its output (the
/// local worker copies one to the other). Returns the channels' URL prefix and the key.
async fn media_round_trip(node: &ServeNode, id: &str) -> (String, String) {
    use gateway_actors::trickle::{PublisherConfig, SubscriberConfig, TricklePublisher, TrickleSubscriber};
    use gateway_core::trickle::SeqSpec;

    let header = job_header(
        "text-reversal",
        serde_json::json!({"enable_video_ingress": true, "enable_video_egress": true}),
        60,
    );
    let start = call(reqwest::Method::POST, format!("{}/process/stream/start", node.url), Some(&header));
    let urls: serde_json::Value =
        start.body(format!(r#"{{"stream_id":"{id}"}}"#)).send().await.unwrap().json().await.unwrap();
    let (input, output) =
        (urls["trickle_publish_url"].as_str().unwrap(), urls["trickle_subscribe_url"].as_str().unwrap());
    let prefix = format!("{}/process/stream/{id}/trickle/", node.url);
    let key = input.strip_prefix(&prefix).and_then(|k| k.strip_suffix("/in")).expect("…/trickle/{key}/in");
    assert_eq!(key.len(), 32, "{urls}");
    assert_eq!(output, format!("{prefix}{key}/out"), "{urls}");

    let clients =
        gateway_actors::http::HttpClients::new(gateway_actors::tls::OrchestratorTrust::Insecure).unwrap();
    let mut subscriber = TrickleSubscriber::new(
        clients.segment_reader(),
        output,
        SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
    );
    let config = PublisherConfig { mime: "video/mp2t".into(), ..Default::default() };
    let mut publisher = TricklePublisher::start(client(), input, config).await;
    let sent: Vec<bytes::Bytes> = (0..3u8).map(|i| bytes::Bytes::from(vec![i; 300_000])).collect();
    for segment in &sent {
        publisher.write_segment(segment.clone()).await.unwrap();
    }
    for expected in &sent {
        let segment = tokio::time::timeout(Duration::from_secs(10), subscriber.next_segment())
            .await
            .unwrap()
            .unwrap()
            .expect("a segment");
        assert_eq!(segment.read_all().await.unwrap(), expected);
    }
    publisher.close().await;
    (prefix, key.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_is_relayed_to_an_orchestrator_over_tls() {
    // The orchestrator's channels are https with a self-signed certificate, pinned by the node
    // when it selects the orchestrator; the relay's connections are held to the same pins.
    let net = LocalNetwork::start(NetworkConfig { tls: true, ..network_config() }).await.unwrap();
    assert!(net.orchestrator_urls()[0].starts_with("https://"));
    let node = ServeNode::start(&net, &["--auth-token", TOKEN], &[]);
    media_round_trip(&node, "media-tls").await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_through_the_nodes_trickle_channels_both_ways() {
    let net = network().await;
    // With tokens required: trickle peers send none, the stream's key in the URL stands for it.
    let node = ServeNode::start(&net, &["--auth-token", TOKEN], &[]);
    let (prefix, key) = media_round_trip(&node, "media-1").await;
    // A wrong key reads as no such stream; a channel neither in nor out; an unknown stream.
    let r = client().get(format!("{prefix}{}/out/0", "0".repeat(32))).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (404, "Stream not found\n".into()));
    let r = client().get(format!("{prefix}{key}/sideways/0")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r =
        client().get(format!("{}/process/stream/nobody/trickle/{key}/out/0", node.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.text().await.unwrap()), (404, "Stream not found\n".into()));
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_nothing_but_the_network_and_each_stream_names_its_node() {
    let net = network().await;
    let nodes = [ServeNode::start(&net, &[], &[]), ServeNode::start(&net, &[], &[])];
    let header = job_header("text-reversal", serde_json::json!({}), 60);
    // A client spreads six streams over both nodes.
    let mut started = Vec::new();
    for i in 0..6 {
        let node = &nodes[i % 2];
        let start = client().post(format!("{}/process/stream/start", node.url)).header("Livepeer", &header);
        let body = serde_json::json!({ "stream_id": format!("spread-{i}") }).to_string();
        let urls: serde_json::Value = start.body(body).send().await.unwrap().json().await.unwrap();
        assert!(urls["stop_url"].as_str().unwrap().starts_with(&node.url), "the URLs name the node: {urls}");
        started.push((i % 2, urls));
    }
    assert_eq!(net.orchestrator().running().sessions, 6);
    for (owner, urls) in &started {
        let other = &nodes[1 - owner];
        let id = urls["stream_id"].as_str().unwrap();
        let elsewhere =
            client().get(format!("{}/process/stream/{id}/status", other.url)).send().await.unwrap();
        assert_eq!(elsewhere.status().as_u16(), 404, "a stream belongs to the node that started it");
        let stop = client().post(urls["stop_url"].as_str().unwrap()).send().await.unwrap();
        assert_eq!(stop.status().as_u16(), 200);
    }
    assert_eq!(net.orchestrator().running().sessions, 0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_shot_requests_go_through_the_node_whole_or_streamed() {
    let net = network().await;
    let orch = net.orchestrator_urls()[0].clone();
    let node = ServeNode::start(&net, &[], &[]);
    let header = job_header("text-reversal", serde_json::json!({}), 30);
    let r = client()
        .post(format!("{}/process/request/", node.url))
        .header("Livepeer", &header)
        .body(r#"{"text":"abc"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["x-orchestrator-url"], orch.as_str());
    assert!(r.headers().contains_key("livepeer-balance"), "{:?}", r.headers());
    assert_eq!(r.text().await.unwrap(), r#"{"reversed":"cba"}"#);

    let r = client()
        .post(format!("{}/process/request/stream", node.url))
        .header("Livepeer", &header)
        .body(r#"{"text":"hello big world"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let body = r.text().await.unwrap();
    for word in ["olleh", "gib", "dlrow"] {
        assert!(body.contains(&format!("{{\"reversed\":\"{word}\"}}")), "{body}");
    }
    assert!(body.contains("data: [DONE]"), "{body}");

    let (code, body) = answer(client().post(format!("{}/process/request/", node.url)).body("x")).await;
    assert!(code == 400 && body.starts_with("Unable to parse job request"), "{code} {body}");
    let nope = job_header("nope", serde_json::json!({}), 30);
    let r = client().post(format!("{}/process/request/", node.url)).header("Livepeer", &nope).body("x");
    assert_eq!(answer(r).await.0, 503, "no orchestrator takes it");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_without_secrets() {
    let net = network().await;
    let env = [("LIVEPEER_LOG_FORMAT", "json"), ("RUST_LOG", "info")];
    let mut node = ServeNode::start(&net, &["--auth-token", TOKEN, "--drain-timeout", "0.2"], &env);
    let header = job_header("text-reversal", serde_json::json!({}), 60);
    let start = call(reqwest::Method::POST, format!("{}/process/stream/start", node.url), Some(&header));
    assert_eq!(answer(start.body(r#"{"stream_id":"logged"}"#)).await.0, 200);
    assert!(Command::new("kill").args(["-TERM", &node.child.id().to_string()]).status().unwrap().success());
    let status = tokio::task::block_in_place(|| node.child.wait()).unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    node.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    let said = |message: &str| lines.iter().any(|l| l["fields"]["message"] == message);
    assert!(said("serving") && said("stream started") && said("draining"), "{stderr}");
    assert!(lines.iter().any(|l| l["fields"]["stream"] == "logged"), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_come_from_a_toml_file_and_flags_win_over_it() {
    let net = network().await;
    let dir = std::env::temp_dir().join(format!("lpgw-serve-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("node.toml");
    std::fs::write(
        &file,
        "auth_tokens = [\"from-file\"]\ndrain_timeout = 0.2\npublic_url = \"http://file.example\"\nthreads = 3\n",
    )
    .unwrap();
    let node = ServeNode::start(
        &net,
        &["--config", file.to_str().unwrap(), "--public-url", "http://flag.example"],
        &[],
    );
    #[cfg(target_os = "linux")]
    assert_eq!(runtime_workers(node.child.id()), 3, "the file's `threads`");
    let header = job_header("text-reversal", serde_json::json!({}), 60);
    let start = |token: &str| {
        client()
            .post(format!("{}/process/stream/start", node.url))
            .bearer_auth(token)
            .header("Livepeer", &header)
            .body(r#"{"stream_id":"configured"}"#)
    };
    assert_eq!(answer(start(TOKEN)).await.0, 401, "the file's token is the one accepted");
    let urls: serde_json::Value = start("from-file").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        urls["stop_url"], "http://flag.example/process/stream/configured/stop",
        "the flag wins: {urls}"
    );

    std::fs::write(&file, "no_such_option = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["serve", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key `no_such_option`"));
    let out = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(["serve", "--threads", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 is not in 1..=1024"));
    std::fs::remove_dir_all(&dir).unwrap();
    net.shutdown().await;
}

/// How many tokio worker threads process `pid` runs (tokio names them `tokio-rt-worker`).
#[cfg(target_os = "linux")]
fn runtime_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "tokio-rt-worker")
        .count()
}

/// The values of `key: value` lines of `yaml` (flow mappings too: `{ key: value, … }`), in order.
fn yaml_values<'a>(yaml: &'a str, key: &str) -> Vec<&'a str> {
    let mut values = Vec::new();
    for line in yaml.lines() {
        let mut rest = line;
        while let Some(at) = rest.find(&format!("{key}: ")) {
            let before = rest[..at].chars().last();
            rest = &rest[at + key.len() + 2..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '.' || c == '/') {
                continue;
            }
            let value = rest.split([',', '}']).next().unwrap_or("").trim().trim_matches('"');
            values.push(value);
        }
    }
    values
}

/// The Kubernetes manifest runs this binary as written: its container args start a node (with
/// `$(POD_IP)` expanded and the signer replaced by the local one), the tokens come from the
/// environment variable it sets, its probes and scrape path answer, the metric its autoscaler
/// reads is exported as a gauge, its ports agree, and the grace period covers the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_manifest_runs_this_binary_as_written() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/kubernetes/gateway.yaml"))
            .unwrap();
    let args: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .map(|l| l.trim_start().trim_start_matches("- "))
        .collect();
    assert_eq!(args.first(), Some(&"serve"), "{args:?}");
    let listen = args.iter().find_map(|a| a.strip_prefix("--listen=")).expect("a --listen");
    let port = listen.rsplit(':').next().unwrap();
    assert_eq!(yaml_values(&manifest, "containerPort"), [port]);
    assert_eq!(yaml_values(&manifest, "prometheus.io/port"), [port]);
    let drain: u64 = args.iter().find_map(|a| a.strip_prefix("--drain-timeout=")).unwrap().parse().unwrap();
    let grace: u64 = yaml_values(&manifest, "terminationGracePeriodSeconds")[0].parse().unwrap();
    assert!(
        grace >= drain + 10,
        "SIGKILL ({grace} s) would cut the drain ({drain} s) and the stops after it"
    );
    let token_env = yaml_values(&manifest, "name").into_iter().find(|n| n.contains("TOKENS")).unwrap();
    assert_eq!(token_env, "LIVEPEER_GATEWAY_TOKENS");

    let net = network().await;
    let run_args: Vec<String> = args
        .iter()
        .map(|a| match a {
            a if a.starts_with("--listen=") => "--listen=127.0.0.1:0".to_owned(),
            a if a.starts_with("--signer=") => format!("--signer={}", net.signer_url()),
            a => a.replace("$(POD_IP)", "127.0.0.1"),
        })
        .collect();
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let node = ServeNode::run(&run_args, &[(token_env, "k8s-token")]);
    let url = node.url.clone();

    let paths = yaml_values(&manifest, "path");
    assert!(paths.contains(&"/healthz") && paths.contains(&"/readyz"), "{paths:?}");
    for path in &paths {
        let (code, _) = answer(client().get(format!("{url}{path}"))).await;
        assert_eq!(code, 200, "{path}");
    }
    let (_, metrics) =
        answer(client().get(format!("{url}{}", yaml_values(&manifest, "prometheus.io/path")[0]))).await;
    let hpa_metric = yaml_values(&manifest, "name").into_iter().find(|n| n.starts_with("livepeer_")).unwrap();
    assert!(metrics.contains(&format!("# TYPE {hpa_metric} gauge")), "{hpa_metric} not in {metrics}");
    let start = format!("{url}/process/stream/start");
    assert_eq!(answer(client().post(&start).body("{}")).await.0, 401, "a token is required");
    let (code, _) = answer(client().post(&start).bearer_auth("k8s-token").body("{}")).await;
    assert_eq!(code, 400, "the environment's token is taken (the request lacks its job header)");
    drop(node);
}

/// The `command: [...]` lists of a compose file's services, in order (JSON-style flow
/// sequences of strings, as `deploy/compose.yaml` writes them).
fn compose_commands(compose: &str) -> Vec<(String, Vec<String>)> {
    let mut services = Vec::new();
    let mut service = String::new();
    let mut lines = compose.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            service = line.trim().trim_end_matches(':').to_owned();
        }
        if let Some(start) = line.find("command: [") {
            let mut list = line[start + "command: ".len()..].to_owned();
            while !list.trim_end().ends_with(']') {
                list.push_str(lines.next().expect("a closed command list"));
            }
            services.push((service.clone(), serde_json::from_str(&list).unwrap()));
        }
    }
    services
}

/// The compose file runs this binary as written: its network service's command starts the
/// local network, each gateway's starts a node that takes a stream on it and names itself by
/// its `--public-url` (hosts and ports mapped to this machine's), and the stop grace period
/// covers the default drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_file_runs_this_binary_as_written() {
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/compose.yaml")).unwrap();
    let services = compose_commands(&compose);
    let names: Vec<&str> = services.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["network", "gateway-a", "gateway-b"]);
    let local = |arg: &String| match arg.as_str() {
        a if a.starts_with("0.0.0.0:") => "127.0.0.1:0".to_owned(),
        "network" => "127.0.0.1".to_owned(),
        a => a.to_owned(),
    };
    let network_args: Vec<String> = services[0].1.iter().map(local).collect();
    let mut network = Command::new(env!("CARGO_BIN_EXE_livepeer-gateway"))
        .args(&network_args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(network.stdout.take().unwrap());
    let (mut orchestrator, mut signer) = (String::new(), String::new());
    while orchestrator.is_empty() || signer.is_empty() {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0, "the network did not start");
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("orchestrator"), Some(url)) => orchestrator = url.to_owned(),
            (Some("signer"), Some(url)) => signer = url.to_owned(),
            _ => {}
        }
    }
    for (name, command) in &services[1..] {
        let args: Vec<String> = command
            .iter()
            .map(local)
            .map(|a| a.replace("http://network:8935", &orchestrator).replace("http://network:8936", &signer))
            .collect();
        let public = args.iter().skip_while(|a| *a != "--public-url").nth(1).unwrap().clone();
        let node = ServeNode::run(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
        let url = &node.url;
        let header = job_header("text-reversal", serde_json::json!({"enable_data_output": true}), 60);
        let start = client().post(format!("{url}/process/stream/start")).header("Livepeer", header);
        let (code, body) = answer(start.body(format!("{{\"stream_id\":\"{name}\"}}"))).await;
        assert_eq!(code, 200, "{name}: {body}");
        let urls: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(urls["status_url"].as_str().unwrap().starts_with(&public), "{name} names {urls}");
    }
    let grace: Vec<&str> =
        compose.lines().filter_map(|l| l.trim().strip_prefix("stop_grace_period: ")).collect();
    assert_eq!(grace.len(), 2, "each gateway has a stop grace period");
    for g in grace {
        let seconds: u64 = g.trim_end_matches('s').parse().unwrap();
        assert!(seconds >= 30 + 10, "a stop grace of {g} cuts the default 30 s drain and the stops after it");
    }
    let _ = network.kill();
    let _ = network.wait();
}
