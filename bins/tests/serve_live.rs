//! `serve`'s LV2V side (issue 18, part): go-livepeer's `/live/video-to-video/…` routes
//! (`server/ai_mediaserver.go`) called as MediaMTX and go's clients call them, and RTMP ingest
//! from Debian's ffmpeg, against the local network run in this process (so the test sees what
//! the orchestrator was sent): the video goes through the orchestrator and back out of the
//! node, updates reach the orchestrator's control channel, the status is go's shape, the
//! stream stops when its input ends; go's refusals with go's texts.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::serve_node::{answer, client, network, network_config, ServeNode};
use futures_util::StreamExt;
use gateway_core::trickle::SeqSpec;
use gateway_media::ts_demux::TsDemuxer;
use gateway_testkit::network::LocalNetwork;

const TOKEN: &str = "node-token";

/// The node with RTMP ingest and bearer tokens.
fn start_node(net: &LocalNetwork, extra: &[&str]) -> ServeNode {
    let mut args = vec!["--rtmp-listen", "127.0.0.1:0", "--auth-token", TOKEN];
    args.extend_from_slice(extra);
    ServeNode::start(net, &args, &[])
}

/// Video access units in the node's output until `want` arrived (or 20 s passed).
async fn read_output(url: String, want: usize) -> usize {
    read_output_bytes(url, want).await.0
}

/// The same, and the bytes read.
async fn read_output_bytes(url: String, want: usize) -> (usize, Vec<u8>) {
    let r = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], gateway_core::trickle::MIME_MPEGTS);
    let mut body = r.bytes_stream();
    let mut demux = TsDemuxer::new();
    let mut units = 0;
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while units < want {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => {
                units += demux.push(&chunk).len();
                bytes.extend_from_slice(&chunk);
            }
            _ => break,
        }
    }
    (units, bytes)
}

/// The codec names of the streams ffprobe finds in `ts` (each once: it lists a program's
/// streams again).
fn probe_codecs(ts: &[u8]) -> Vec<String> {
    let path = std::env::temp_dir().join(format!("lpgw-live-out-{}.ts", std::process::id()));
    std::fs::write(&path, ts).unwrap();
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .expect("ffprobe runs (scripts/setup.sh installs it)");
    let _ = std::fs::remove_file(&path);
    let mut codecs: Vec<String> = Vec::new();
    for codec in String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|c| !c.is_empty()) {
        if !codecs.iter().any(|c| c == codec) {
            codecs.push(codec.to_owned());
        }
    }
    codecs
}

/// ffmpeg with `seconds` of the test pattern (320x240, 30 fps, keyframe every second, no
/// B-frames) and a 440 Hz tone (48 kHz), as H.264 and AAC, read at live pace; the caller adds
/// the output.
fn test_source(seconds: u32) -> Command {
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(["-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac"]);
    ffmpeg
}

/// Debian's ffmpeg as the RTMP server taking a push at `rtmp://127.0.0.1:{port}/live/out`
/// (as MediaMTX takes go's), writing what it gets to `received` as MPEG-TS.
fn rtmp_server(port: u16, received: &std::path::Path) -> std::process::Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-timeout", "30", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/out"))
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(received)
        .spawn()
        .unwrap()
}

/// Waits (at most 20 s) for the [`rtmp_server`] to end with the push; what it received, which
/// must hold video and audio.
async fn received_over_rtmp(server: &mut std::process::Child, received: &std::path::Path) -> Vec<u8> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the RTMP output never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success());
    let ts = std::fs::read(received).unwrap();
    let _ = std::fs::remove_file(received);
    assert_eq!(probe_codecs(&ts), ["h264", "aac"], "video and audio reached the RTMP server");
    ts
}

/// Reads the orchestrator's events channel, from the next event on, until a `params_updated`
/// event; its params.
async fn params_updated(net: &LocalNetwork) -> impl std::future::Future<Output = serde_json::Value> {
    let trickle = net.orchestrator().trickle().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let events = loop {
        if let Some(events) = trickle.channel_names().into_iter().find(|n| n.ends_with("-events")) {
            break events;
        }
        assert!(tokio::time::Instant::now() < deadline, "no events channel");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The next write index now, so an event written before the reader first looks is not
    // skipped.
    let next_url = format!("{}/ai/trickle/{events}/next", net.orchestrator_urls()[0]);
    let next: u64 =
        client().get(next_url).send().await.unwrap().text().await.unwrap().trim().parse().unwrap();
    let mut sub = trickle.local_subscriber(&events, SeqSpec::At(next)).unwrap();
    async move {
        while let Ok(Some(segment)) = tokio::time::timeout_at(deadline, sub.next_segment()).await {
            let event: serde_json::Value = serde_json::from_slice(&segment.read_all().await).unwrap();
            if event["type"] == "params_updated" {
                return event["params"].clone();
            }
        }
        panic!("no params_updated event");
    }
}

/// Waits until the orchestrator runs nothing.
async fn wait_idle(net: &LocalNetwork) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !net.orchestrator().running().is_idle() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not stopped: {:?}",
            net.orchestrator().running()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_rtmp_and_the_stream_runs_through_the_orchestrator_and_back() {
    let net = network().await;
    let node = start_node(&net, &[]);
    let orch = net.orchestrator_urls()[0].clone();

    // Without the token the publish is refused before any job starts.
    let refused = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-t", "1"])
        .args(["-c:v", "libx264", "-f", "flv", &format!("{}/live/cam", node.rtmp())])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 0);

    let target = format!("{}/live/cam?pipeline=noop&streamId=sid-1&token={TOKEN}", node.rtmp());
    let mut ffmpeg = test_source(6).args(["-f", "flv", &target]).stderr(Stdio::piped()).spawn().unwrap();
    // The stream is known by its name for updates and its id for the status.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        let (code, body) = answer(client().get(node.live("sid-1/status")).bearer_auth(TOKEN)).await;
        if code == 200 {
            let status: serde_json::Value = serde_json::from_str(&body).unwrap();
            if status["type"] == "status" {
                break status;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no status: {code} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["stream_id"], "sid-1");
    assert_eq!(status["orchestrator_info"]["url"], orch.as_str());
    assert_eq!(status["request_id"].as_str().map(str::len), Some(8));
    assert!(status["gateway_status"].is_object(), "{status}");
    let metrics = || async { answer(client().get(format!("{}/metrics", node.url))).await.1 };
    assert!(metrics().await.contains("livepeer_gateway_streams_active 1"), "LV2V streams count as running");

    let (units, ts) = read_output_bytes(node.live("cam/output"), 45).await;
    assert!(units >= 45, "only {units} access units came back");
    assert_eq!(probe_codecs(&ts), ["h264", "aac"], "the video and its audio came back");

    let updated = params_updated(&net).await;
    let update = client().post(node.live("cam/update")).bearer_auth(TOKEN).body(r#"{"prompt":"a cat"}"#);
    assert_eq!(answer(update).await, (200, String::new()));
    assert_eq!(updated.await, serde_json::json!({"prompt": "a cat"}));

    let out = ffmpeg.wait().unwrap();
    assert!(out.success());
    let _ = ffmpeg.stderr.take();
    // The publisher left: the stream stops on the orchestrator and leaves the node.
    wait_idle(&net).await;
    let (code, _) = answer(client().get(node.live("sid-1/status")).bearer_auth(TOKEN)).await;
    assert_eq!(code, 404);
    assert!(metrics().await.contains("livepeer_gateway_streams_active 0"));
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 1);
    assert!(net.orchestrator().stats().payments_accepted >= 1);
}

/// A form field: name and value.
type Field<'a> = (&'a str, &'a str);

/// A multipart body as `curl -F` sends it (MediaMTX's sample start hook).
fn multipart(fields: &[Field]) -> (String, Vec<u8>) {
    let boundary = "------------------------a1b2c3d4";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/form-data; boundary={boundary}"), body.into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_callback_takes_gos_form_and_refuses_as_go_does() {
    let net = network().await;
    let node = start_node(&net, &[]);
    let post = |path: &str| client().post(node.live(path)).bearer_auth(TOKEN);

    // go's refusals, in go's order, with go's texts.
    let cases: [(&[Field], u16, &str); 4] = [
        (&[("source_type", "rtmpconn")], 400, "Missing source_id\n"),
        (&[("source_id", "c1")], 400, "Missing source_type\n"),
        (&[("source_id", "c1"), ("source_type", "srt")], 400, "unknown media source\n"),
        (
            &[("source_id", "c1"), ("source_type", "rtmpconn"), ("query", "params=[1]")],
            400,
            "Invalid model params\n",
        ),
    ];
    for (fields, code, text) in cases {
        let (content_type, body) = multipart(fields);
        let r = post("cam/start").header("content-type", content_type).body(body);
        assert_eq!(answer(r).await, (code, text.to_owned()), "{fields:?}");
    }
    // An output is not started.
    let r = post("cam-out/start?source_id=c1&source_type=rtmpconn");
    assert_eq!(answer(r).await, (200, String::new()));
    assert_eq!(answer(post("nope/update").body("{}")).await, (404, "Stream not found\n".into()));
    assert_eq!(
        answer(client().get(node.live("nope/status")).bearer_auth(TOKEN)).await,
        (404, "Stream not found\n".into())
    );
    // Without the bearer token, nothing starts.
    let r = client().post(node.live("cam/start?source_id=c1&source_type=rtmpconn"));
    assert_eq!(answer(r).await.0, 401);
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 0);

    // A start as MediaMTX makes it (a prefixed path, the query as a form value), then media
    // over the node's input route.
    let (content_type, body) = multipart(&[
        ("source_id", "conn-7"),
        ("source_type", "rtmpconn"),
        ("query", "pipeline=noop&streamId=s2"),
    ]);
    let r = post("live/cam2/start").header("content-type", content_type).body(body);
    let (code, body) = answer(r).await;
    assert_eq!(code, 200, "{body}");
    let urls: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(urls["stream"], "cam2");
    assert_eq!(urls["status_url"], node.live("s2/status"));
    let output = tokio::spawn(read_output(urls["output_url"].as_str().unwrap().to_owned(), 60));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ts = common::mpegts(3, true);
    let input = post("cam2/input").body(ts);
    let (code, body) = answer(input).await;
    assert_eq!(code, 200, "{body}");
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["access_units"], 90);
    let units = output.await.unwrap();
    assert!(units >= 60, "only {units} access units came back");
    // The input ended: the stream stopped.
    wait_idle(&net).await;
    assert_eq!(answer(post("cam2/update").body("{}")).await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_webhook_decides_live_starts_and_never_sees_the_rtmp_token() {
    // go's webhook: refuses "blocked"; names the stream and sets ComfyUI parameters otherwise.
    let seen = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let hook = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/auth",
            axum::routing::post(move |body: axum::Json<serde_json::Value>| {
                let seen = seen.clone();
                async move {
                    let blocked = body["stream"] == "blocked";
                    seen.lock().unwrap().push(body.0);
                    if blocked {
                        return (axum::http::StatusCode::FORBIDDEN, "not you".to_owned());
                    }
                    let answer = serde_json::json!({
                        "stream_id": "hooked", "pipeline": "comfyui", "pipeline_id": "pip-1",
                        "pipeline_parameters": {"a": 1},
                    });
                    (axum::http::StatusCode::OK, answer.to_string())
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/auth", listener.local_addr().unwrap());
    let hook_server = gateway_testkit::serve::serve(listener, hook, None);
    let mut config = network_config();
    // The webhook picks the `comfyui` pipeline: the orchestrator offers it.
    let mut comfy = config.orchestrator.offers[0].clone();
    comfy.model = "comfyui".into();
    config.orchestrator.offers.push(comfy);
    let net = LocalNetwork::start(config).await.unwrap();
    let node = start_node(&net, &["--auth-webhook", &hook_url]);

    let r = client().post(node.live("blocked/start?source_id=c1&source_type=rtmpconn")).bearer_auth(TOKEN);
    assert_eq!(answer(r).await, (403, "Forbidden\n".into()));

    let target = format!("{}/live/cam?streamId=mine&token={TOKEN}", node.rtmp());
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "3"])
        // MP3 audio is not carried: it is dropped and the video goes on.
        .args(["-c:v", "libx264", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "libmp3lame"])
        .args(["-f", "flv", &target])
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        let (code, body) = answer(client().get(node.live("hooked/status")).bearer_auth(TOKEN)).await;
        if code == 200 {
            break serde_json::from_str::<serde_json::Value>(&body).unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "no status under the webhook's id: {code} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["pipeline_id"], "pip-1");
    assert!(read_output(node.live("cam/output"), 15).await >= 15, "the video goes on without its audio");
    assert!(ffmpeg.wait().unwrap().success());
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[1]["type"], "rtmp");
    assert_eq!(asked[1]["stream"], "cam");
    assert_eq!(asked[1]["query_params"], "streamId=mine", "the token is taken out");
    assert_eq!(asked[1]["update_url"], node.live("cam/update"));
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 1);
    wait_idle(&net).await;
    hook_server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_is_pushed_over_rtmp_to_the_streams_rtmp_output() {
    let net = network().await;
    let node = start_node(&net, &[]);
    // Debian's ffmpeg as the RTMP server taking the output (as MediaMTX takes go's).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = std::env::temp_dir().join(format!("lpgw-rtmp-out-{}.ts", std::process::id()));
    let mut server = rtmp_server(port, &received);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let output = format!("rtmp%3A%2F%2F127.0.0.1%3A{port}%2Flive%2Fout");
    let target = format!("{}/live/cam?rtmpOutput={output}&token={TOKEN}", node.rtmp());
    let publisher = test_source(4).args(["-f", "flv", &target]).status().unwrap();
    assert!(publisher.success());
    // The stream stops with its input; the push ends and the server's ffmpeg with it.
    let ts = received_over_rtmp(&mut server, &received).await;
    let mut demux = TsDemuxer::new();
    let mut frames = demux.push(&ts).len();
    frames += demux.finish().len();
    assert!(frames >= 60, "only {frames} frames reached the RTMP server");
    wait_idle(&net).await;
}

/// Video access units read from the trickle channel `url` (from segment 0) until `want`
/// arrived, the channel ended, or 20 s passed; and the bytes read.
async fn read_trickle_output(url: String, want: usize) -> (usize, Vec<u8>) {
    use gateway_actors::trickle::{SubscriberConfig, TrickleSubscriber};
    let reader = gateway_actors::http::HttpClients::new(gateway_actors::tls::OrchestratorTrust::Insecure)
        .unwrap()
        .segment_reader();
    let config = SubscriberConfig { start: SeqSpec::At(0), ..Default::default() };
    let mut output = TrickleSubscriber::new(reader, &url, config);
    let (mut ts, mut demux, mut units) = (Vec::new(), TsDemuxer::new(), 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while units < want {
        let Ok(Ok(Some(mut segment))) = tokio::time::timeout_at(deadline, output.next_segment()).await else {
            break;
        };
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, segment.chunk()).await {
            units += demux.push(&chunk).len();
            ts.extend_from_slice(&chunk);
        }
    }
    (units, ts)
}

/// Starts a BYOC stream with video in and out on `node`: its URLs.
async fn start_byoc(node: &ServeNode, body: serde_json::Value) -> serde_json::Value {
    let job = gateway_core::jobs::JobRequest {
        capability: "text-reversal".into(),
        request: "{}".into(),
        parameters: serde_json::json!({"enable_video_ingress": true, "enable_video_egress": true})
            .to_string(),
        timeout_seconds: 60,
        ..Default::default()
    };
    let started = client()
        .post(format!("{}/process/stream/start", node.url))
        .bearer_auth(TOKEN)
        .header("Livepeer", job.to_header())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status().as_u16(), 200);
    started.json().await.unwrap()
}

/// A BYOC stream with video ingress is answered an RTMP URL on the node; ffmpeg publishing
/// there feeds the stream's input (its key lets it in), the worker's output comes back through
/// the node's trickle channel as H.264 and AAC, and the publish ending stops the stream (go:
/// "mediamtx ingest disconnected").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_publishing_to_a_byoc_streams_rtmp_url_feeds_its_input_and_ending_stops_it() {
    let net = network().await;
    let node = start_node(&net, &[]);
    let urls = start_byoc(&node, serde_json::json!({"stream_name": "cam", "stream_id": "r1"})).await;
    let rtmp_url = urls["rtmp_url"].as_str().unwrap().to_owned();
    let (without_key, key) = rtmp_url.split_once("?key=").unwrap_or_else(|| panic!("{urls}"));
    assert_eq!(without_key, format!("{}/cam-r1", node.rtmp()));
    assert_eq!(key.len(), 32, "{urls}");

    // Neither the stream id alone nor a wrong key lets a publisher in; the stream runs on.
    for refused in [without_key.to_owned(), format!("{without_key}?key=0123")] {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=30", "-t", "1"])
            .args(["-c:v", "libx264", "-f", "flv", &refused])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{refused} was taken");
    }
    let status = format!("{}/process/stream/cam-r1/status", node.url);
    assert_eq!(answer(client().get(&status).bearer_auth(TOKEN)).await.0, 200);

    let output = read_trickle_output(urls["trickle_subscribe_url"].as_str().unwrap().to_owned(), 60);
    let mut ffmpeg = test_source(4).args(["-f", "flv", &rtmp_url]).spawn().unwrap();
    let (units, ts) = output.await;
    assert!(units >= 60, "only {units} video access units came back");
    assert_eq!(probe_codecs(&ts), ["h264", "aac"]);

    assert!(ffmpeg.wait().unwrap().success());
    wait_idle(&net).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while answer(client().get(&status).bearer_auth(TOKEN)).await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "the stream outlived its publisher");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reasons = net.orchestrator().stop_reasons();
    assert!(reasons.contains(&("cam-r1".to_owned(), "its RTMP publisher left".to_owned())), "{reasons:?}");
}

/// A BYOC stream's `rtmp_output` gets its output pushed over RTMP while it runs (go's
/// `rtmpOutputs`), named in the answer's `rtmp_output_url`; one that is not RTMP is refused
/// before any job starts (go's ffmpeg would fail on it after the start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_streams_rtmp_output_gets_its_output_pushed() {
    let net = network().await;
    let node = start_node(&net, &[]);
    let job = gateway_core::jobs::JobRequest {
        capability: "text-reversal".into(),
        request: "{}".into(),
        parameters: serde_json::json!({"enable_video_egress": true}).to_string(),
        timeout_seconds: 60,
        ..Default::default()
    };
    let bad = client()
        .post(format!("{}/process/stream/start", node.url))
        .bearer_auth(TOKEN)
        .header("Livepeer", job.to_header())
        .json(&serde_json::json!({"stream_id": "bad", "rtmp_output": "http://x/y"}));
    let (code, body) = answer(bad).await;
    assert_eq!((code, body.as_str()), (400, "invalid rtmp_output: an RTMP URL must start with rtmp://\n"));
    assert_eq!(net.orchestrator().stats().byoc_streams_started, 0, "refused before any job");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = std::env::temp_dir().join(format!("lpgw-byoc-rtmp-out-{}.ts", std::process::id()));
    let mut server = rtmp_server(port, &received);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let output = format!("rtmp://127.0.0.1:{port}/live/out");
    let urls = start_byoc(&node, serde_json::json!({"stream_id": "pushed", "rtmp_output": output})).await;
    assert_eq!(urls["rtmp_output_url"], output.as_str());
    let publisher = test_source(4).args(["-f", "flv", urls["rtmp_url"].as_str().unwrap()]).status().unwrap();
    assert!(publisher.success());
    // The stream stops with its input; the push ends and the server's ffmpeg with it.
    let ts = received_over_rtmp(&mut server, &received).await;
    let mut demux = TsDemuxer::new();
    let frames = demux.push(&ts).len() + demux.finish().len();
    assert!(frames >= 60, "only {frames} frames reached the RTMP server");
}

/// go's `orchestrator` query key: only orchestrators whose URL contains it take the stream
/// (`ai_process.go`: "user requested a specific orchestrator, so ignore all the others"); when
/// none does, nothing starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orchestrator_query_key_picks_the_orchestrator() {
    let mut config = network_config();
    config.orchestrators = 2;
    let net = LocalNetwork::start(config).await.unwrap();
    let second = net.orchestrator_urls()[1].clone();
    let node = start_node(&net, &["--orchestrator", &second]);
    let post = |path: &str| client().post(node.live(path)).bearer_auth(TOKEN);
    let port = second.rsplit(':').next().unwrap().to_owned();
    let query = format!("pipeline=noop&streamId=picked&orchestrator=127.0.0.1:{port}");
    let (content_type, body) =
        multipart(&[("source_id", "c1"), ("source_type", "rtmpconn"), ("query", &query)]);
    let (code, body) = answer(post("cam/start").header("content-type", content_type).body(body)).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = answer(client().get(node.live("picked/status")).bearer_auth(TOKEN)).await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["orchestrator_info"]["url"], second.as_str(), "{status}");

    let query = "pipeline=noop&streamId=none&orchestrator=no-such-host";
    let (content_type, body) =
        multipart(&[("source_id", "c2"), ("source_type", "rtmpconn"), ("query", query)]);
    let (code, body) = answer(post("cam2/start").header("content-type", content_type).body(body)).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("no orchestrator took the stream"), "{body}");
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 0, "the first orchestrator ran nothing");
}

/// Behind MediaMTX, as go's gateway: the start callback's `rtmp_url` (go's form value) is pulled
/// over RTMP into the stream's input (ffmpeg serves the stream as MediaMTX would), the output
/// comes back as H.264 and AAC, and the source ending stops the stream ("mediamtx ingest
/// disconnected").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_callback_pulls_the_stream_from_its_rtmp_url() {
    let net = network().await;
    let node = start_node(&net, &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = format!("rtmp://127.0.0.1:{port}/live/cam");
    let mut server = test_source(5).args(["-f", "flv", "-listen", "1", &source]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (content_type, body) = multipart(&[
        ("source_id", "conn-1"),
        ("source_type", "rtmpconn"),
        ("query", "pipeline=noop&streamId=pulled"),
        ("rtmp_url", &source),
    ]);
    let start = client().post(node.live("live/cam/start")).bearer_auth(TOKEN);
    let (code, body) = answer(start.header("content-type", content_type).body(body)).await;
    assert_eq!(code, 200, "{body}");
    let (units, ts) = read_output_bytes(node.live("cam/output"), 60).await;
    assert!(units >= 60, "only {units} video access units came back");
    assert_eq!(probe_codecs(&ts), ["h264", "aac"]);
    assert!(server.wait().unwrap().success());
    wait_idle(&net).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while answer(client().get(node.live("pulled/status")).bearer_auth(TOKEN)).await.0 != 404 {
        assert!(tokio::time::Instant::now() < deadline, "the stream outlived its source");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// go's BYOC RTMP callback (`POST /process/stream/{id}/rtmp`, MediaMTX's when a publisher is
/// ready): the node pulls the stream into the stream's input (from the form's `rtmp_url`, ours;
/// go: `rtmp://{caller}/{id}`), the output comes back, the source ending stops the stream;
/// go's refusals for an unknown stream and missing form values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byoc_rtmp_callback_pulls_the_stream_into_its_input() {
    let net = network().await;
    let node = start_node(&net, &[]);
    let callback =
        |id: &str| client().post(format!("{}/process/stream/{id}/rtmp", node.url)).bearer_auth(TOKEN);
    let urlencoded = |body: &'static str| ("content-type", "application/x-www-form-urlencoded", body);
    let (name, value, body) = urlencoded("source_id=c1&source_type=rtmpconn");
    let r = callback("nope").header(name, value).body(body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), "stream not found: nope");
    let urls = start_byoc(&node, serde_json::json!({"stream_id": "mtx"})).await;
    let (name, value, body) = urlencoded("source_type=rtmpconn");
    let (code, body) = answer(callback("mtx").header(name, value).body(body)).await;
    assert_eq!((code, body.as_str()), (400, "missing source_id\n"));
    let (name, value, body) = urlencoded("source_id=c1");
    let (code, body) = answer(callback("mtx").header(name, value).body(body)).await;
    assert_eq!((code, body.as_str()), (400, "missing source_type\n"));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let source = format!("rtmp://127.0.0.1:{port}/mtx");
    let mut server = test_source(5).args(["-f", "flv", "-listen", "1", &source]).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let output = read_trickle_output(urls["trickle_subscribe_url"].as_str().unwrap().to_owned(), 60);
    let (content_type, body) =
        multipart(&[("source_id", "c1"), ("source_type", "rtmpConn"), ("rtmp_url", &source)]);
    let (code, body) = answer(callback("mtx").header("content-type", content_type).body(body)).await;
    assert_eq!(code, 200, "{body}");
    let (units, ts) = output.await;
    assert!(units >= 60, "only {units} video access units came back");
    assert_eq!(probe_codecs(&ts), ["h264", "aac"]);
    assert!(server.wait().unwrap().success());
    wait_idle(&net).await;
    let reasons = net.orchestrator().stop_reasons();
    assert!(reasons.contains(&("mtx".to_owned(), "mediamtx ingest disconnected".to_owned())), "{reasons:?}");
}

/// With `--mediamtx PORT`, a callback without `rtmp_url` pulls from its caller, as go's gateway
/// does from MediaMTX: `rtmp://{caller}:{PORT}/{prefix}/{stream}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mediamtx_a_callback_pulls_the_stream_from_its_caller() {
    let net = network().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let node = start_node(&net, &["--mediamtx", &port.to_string()]);
    let mut server = test_source(4)
        .args(["-f", "flv", "-listen", "1", &format!("rtmp://127.0.0.1:{port}/live/cam3")])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (content_type, body) =
        multipart(&[("source_id", "conn-3"), ("source_type", "rtmpconn"), ("query", "streamId=caller")]);
    let start = client().post(node.live("live/cam3/start")).bearer_auth(TOKEN);
    let (code, body) = answer(start.header("content-type", content_type).body(body)).await;
    assert_eq!(code, 200, "{body}");
    let units = read_output(node.live("cam3/output"), 30).await;
    assert!(units >= 30, "only {units} video access units came back");
    assert!(server.wait().unwrap().success());
    wait_idle(&net).await;
}
