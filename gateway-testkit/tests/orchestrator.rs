//! The orchestrator double over real sockets: gRPC, LV2V and BYOC endpoints, payments,
//! workers, faults, and the official Python SDK as a peer.

mod common;

use std::time::Duration;

use gateway_core::capabilities::{build_capabilities, CapabilityQuery};
use gateway_core::jobs::{self, JobParameters, JobRequest, LiveVideoToVideoResponse};
use gateway_core::lp_rpc::orchestrator_client::OrchestratorClient;
use gateway_core::lp_rpc::{self, OrchestratorInfo, OrchestratorRequest, PaymentResult};
use gateway_core::signer::{GenerateLivePaymentResponse, SignOrchestratorInfoResponse};
use livepeer_gateway_testkit::faults::OrchestratorFault;
use livepeer_gateway_testkit::network::{LocalNetwork, NetworkConfig};
use prost::Message;
use serde_json::json;

fn plaintext() -> NetworkConfig {
    NetworkConfig { tls: false, ..Default::default() }
}

async fn grpc_info(net: &LocalNetwork, req: OrchestratorRequest) -> Result<OrchestratorInfo, tonic::Status> {
    let endpoint = tonic::transport::Endpoint::from_shared(net.orchestrator_urls()[0].clone()).unwrap();
    let channel = endpoint.connect().await.expect("connect");
    OrchestratorClient::new(channel).get_orchestrator(req).await.map(|r| r.into_inner())
}

async fn signer_identity(http: &reqwest::Client, net: &LocalNetwork) -> SignOrchestratorInfoResponse {
    identity_of(http, &net.signer_url()).await
}

async fn identity_of(http: &reqwest::Client, signer_url: &str) -> SignOrchestratorInfoResponse {
    http.post(format!("{signer_url}/sign-orchestrator-info"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GetOrchestrator with the signer's identity, as a gateway does.
async fn signed_info(http: &reqwest::Client, net: &LocalNetwork, query: &str) -> OrchestratorInfo {
    info_for(http, net, &net.signer_url(), query).await
}

/// GetOrchestrator with the identity of the signer at `signer_url`.
async fn info_for(
    http: &reqwest::Client,
    net: &LocalNetwork,
    signer_url: &str,
    query: &str,
) -> OrchestratorInfo {
    let id = identity_of(http, signer_url).await.identity().unwrap();
    let caps = build_capabilities(&[query.parse::<CapabilityQuery>().unwrap()]);
    grpc_info(
        net,
        OrchestratorRequest {
            address: id.address_bytes.to_vec(),
            sig: id.signature,
            capabilities: Some(caps),
            ignore_capacity_check: true,
        },
    )
    .await
    .unwrap()
}

async fn pay(
    http: &reqwest::Client,
    net: &LocalNetwork,
    info: &OrchestratorInfo,
    body: serde_json::Value,
) -> GenerateLivePaymentResponse {
    pay_with(http, &net.signer_url(), info, body).await
}

async fn pay_with(
    http: &reqwest::Client,
    signer_url: &str,
    info: &OrchestratorInfo,
    body: serde_json::Value,
) -> GenerateLivePaymentResponse {
    let mut body = body;
    body["orchestrator"] = json!(lp_rpc::to_base64(info));
    let resp = http.post(format!("{signer_url}/generate-live-payment")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

#[tokio::test]
async fn get_orchestrator_quotes_model_prices_and_checks_the_sender() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let info = signed_info(&http, &net, "live-video-to-video/noop").await;
    assert_eq!(info.transcoder, net.orchestrator_urls()[0]);
    let price = info.price_info.unwrap();
    // go's `priceInfo` sums prices into a bare ratio: no capability or constraint named.
    assert_eq!((price.price_per_unit, price.pixels_per_unit, price.constraint.as_str()), (1, 1000, ""));
    assert!(info.ticket_params.is_some() && info.auth_token.is_some());
    // Without capabilities: the base price and the per-capability price list.
    let bare = grpc_info(&net, OrchestratorRequest::default()).await.unwrap();
    assert_eq!(bare.price_info.unwrap().price_per_unit, 1);
    assert_eq!(bare.capabilities_prices.len(), 2);
    // A signature that does not match the address is refused.
    let id = signer_identity(&http, &net).await.identity().unwrap();
    let mut bad_sig = id.signature.clone();
    bad_sig[10] ^= 0xff;
    let err = grpc_info(
        &net,
        OrchestratorRequest { address: id.address_bytes.to_vec(), sig: bad_sig, ..Default::default() },
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    // Injected gRPC faults.
    net.orchestrator().set_fault(OrchestratorFault::RespondStatus {
        path: "/net.Orchestrator/".into(),
        status: 503,
        count: 1,
    });
    assert!(grpc_info(&net, OrchestratorRequest::default()).await.is_err());
    assert!(grpc_info(&net, OrchestratorRequest::default()).await.is_ok());
    net.shutdown().await;
}

#[tokio::test]
async fn lv2v_session_pays_relays_media_and_ends_when_input_is_deleted() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let info = signed_info(&http, &net, "live-video-to-video/noop").await;
    let caps = lp_rpc::to_base64(&build_capabilities(&["live-video-to-video/noop".parse().unwrap()]));
    let payment = pay(&http, &net, &info, json!({"type": "lv2v", "capabilities": caps})).await;

    // Credentials are checked: a garbage payment is 402, missing segment credentials 403.
    let r = http
        .post(format!("{orch}/live-video-to-video"))
        .header(jobs::HEADER_PAYMENT, "%%%")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let r = http
        .post(format!("{orch}/live-video-to-video"))
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let payment = pay(&http, &net, &info, json!({"type": "lv2v", "capabilities": caps})).await;
    let r = http
        .post(format!("{orch}/live-video-to-video"))
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .header(jobs::HEADER_SEGMENT, &payment.seg_creds)
        .json(&json!({"model_id": "noop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let job: LiveVideoToVideoResponse = r.json().await.unwrap();
    assert!(job.publish_url.ends_with(&format!("/ai/trickle/{}", job.manifest_id)));
    let sender: [u8; 20] =
        lp_rpc::from_base64::<lp_rpc::Payment>("p", &payment.payment).unwrap().sender.try_into().unwrap();
    assert!(
        net.orchestrator().balance(&sender, &job.manifest_id) > 0.0,
        "first payment credited to the new session"
    );

    // Media goes in and comes out of the passthrough worker.
    let reader = tokio::spawn({
        let http = http.clone();
        let url = format!("{}/0", job.subscribe_url);
        async move { http.get(url).send().await.unwrap().bytes().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = http.post(format!("{}/0", job.publish_url)).body(data.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let echoed = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
    assert_eq!(echoed.as_ref(), data.as_slice());

    // Events flow.
    let ev = http.get(format!("{}/-2", job.events_url)).send().await.unwrap();
    let ev: serde_json::Value = ev.json().await.unwrap();
    assert_eq!(ev["type"], "status");

    // A later payment names the manifest; the answer is fresh orchestrator info.
    let second = pay(
        &http,
        &net,
        &info,
        json!({"type": "lv2v", "capabilities": caps, "state": payment.state, "ManifestID": job.manifest_id}),
    )
    .await;
    let r = http
        .post(format!("{orch}/payment"))
        .header(jobs::HEADER_PAYMENT, &second.payment)
        .header(jobs::HEADER_SEGMENT, &second.seg_creds)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let result = PaymentResult::decode(r.bytes().await.unwrap()).unwrap();
    assert!(result.info.unwrap().ticket_params.is_some());

    // Deleting the input channel ends the session: every channel goes away.
    assert_eq!(http.delete(&job.publish_url).send().await.unwrap().status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = http.get(format!("{}/next", job.subscribe_url)).send().await.unwrap().status();
        if s == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "output channel still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    net.shutdown().await;
}

async fn signed_job(
    http: &reqwest::Client,
    net: &LocalNetwork,
    id: &str,
    params: &JobParameters,
) -> JobRequest {
    let job = JobRequest {
        id: id.into(),
        request: json!({"stream_id": id}).to_string(),
        parameters: serde_json::to_string(params).unwrap(),
        capability: "text-reversal".into(),
        timeout_seconds: 70,
        ..Default::default()
    };
    common::sign_byoc_job(http, &net.signer_url(), job).await
}

#[tokio::test]
async fn byoc_stream_needs_payment_reverses_text_and_stops() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let params = JobParameters { enable_data_output: true, ..Default::default() };
    let job = signed_job(&http, &net, "stream-a", &params).await;

    // No payment: 402.
    let r = http
        .post(format!("{orch}/ai/stream/start"))
        .header(jobs::HEADER_JOB, job.to_header())
        .json(&json!({"params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);

    // Token, then a BYOC payment, then start.
    let identity = signer_identity(&http, &net).await;
    let eth = jobs::EthAddressHeader { addr: identity.address.clone(), sig: identity.signature.clone() };
    let token: jobs::JobToken = http
        .get(format!("{orch}/process/token"))
        .header(jobs::HEADER_ETH_ADDRESS, eth.to_header())
        .header(jobs::HEADER_CAPABILITY, "text-reversal")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token.price.unwrap().price_per_unit, 100);
    let info = signed_info(&http, &net, "byoc/text-reversal").await;
    let caps = lp_rpc::to_base64(&build_capabilities(&[CapabilityQuery::byoc("text-reversal").unwrap()]));
    let payment =
        pay(&http, &net, &info, json!({"type": "byoc", "capabilities": caps, "preloadSeconds": 120})).await;
    let r = http
        .post(format!("{orch}/ai/stream/start"))
        .header(jobs::HEADER_JOB, job.to_header())
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .json(&json!({"params": {"x": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let urls = jobs::StreamUrls::from_headers(|n| r.headers().get(n).and_then(|v| v.to_str().ok()));
    let (control, data) = (urls.control_url.unwrap(), urls.data_url.unwrap());
    assert!(urls.publish_url.is_none(), "ingress was not asked for");

    let reply = tokio::spawn({
        let http = http.clone();
        async move { http.get(format!("{data}/-1")).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        http.post(format!("{control}/-1")).body(r#"{"text":"hello"}"#).send().await.unwrap().status(),
        200
    );
    let line = tokio::time::timeout(Duration::from_secs(10), reply).await.unwrap().unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["reversed"], "olleh");

    // Stop closes the channels.
    let stop = signed_job(&http, &net, "stream-a", &params).await;
    assert_eq!(
        http.post(format!("{orch}/ai/stream/stop"))
            .header(jobs::HEADER_JOB, stop.to_header())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(http.get(format!("{control}/next")).send().await.unwrap().status(), 404);
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    net.shutdown().await;
}

#[tokio::test]
async fn byoc_stream_stops_when_payments_stop() {
    let mut config = plaintext();
    // Each 100 ms tick bills 30 s of usage: the 60 s the first payment bought lasts two ticks.
    config.orchestrator.byoc_debit_interval = Duration::from_millis(100);
    config.orchestrator.usage_time_scale = 300.0;
    // One ticket is worth 6000 wei = 60 s at 100 wei/s, exactly what the first payment buys.
    config.orchestrator.ticket_ev_wei = 6_000;
    config.orchestrator.ticket_face_value_wei = 6_000_000;
    let net = LocalNetwork::start(config).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let job = signed_job(&http, &net, "stream-b", &JobParameters::default()).await;
    let info = signed_info(&http, &net, "byoc/text-reversal").await;
    let caps = lp_rpc::to_base64(&build_capabilities(&[CapabilityQuery::byoc("text-reversal").unwrap()]));
    let payment =
        pay(&http, &net, &info, json!({"type": "byoc", "capabilities": caps, "preloadSeconds": 1})).await;
    let started = tokio::time::Instant::now();
    let r = http
        .post(format!("{orch}/ai/stream/start"))
        .header(jobs::HEADER_JOB, job.to_header())
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while net.orchestrator().stats().stopped_for_payment == 0 {
        assert!(tokio::time::Instant::now() < deadline, "stream never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Not before the credit ran out: two paid ticks and one warning tick.
    assert!(started.elapsed() >= Duration::from_millis(250), "stopped too early: {:?}", started.elapsed());
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    net.shutdown().await;
}

#[tokio::test]
async fn single_shot_request_and_admin_faults() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let job = signed_job(&http, &net, "req-1", &JobParameters::default()).await;
    let info = signed_info(&http, &net, "byoc/text-reversal").await;
    let caps = lp_rpc::to_base64(&build_capabilities(&[CapabilityQuery::byoc("text-reversal").unwrap()]));
    let payment = pay(&http, &net, &info, json!({"type": "byoc", "capabilities": caps})).await;
    let r = http
        .post(format!("{orch}/process/request/reverse"))
        .header(jobs::HEADER_JOB, job.to_header())
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .json(&json!({"text": "abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key(jobs::HEADER_BALANCE));
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["reversed"], "cba");

    // A fault set through the admin API answers 402 once, then requests pass again.
    let admin = net.admin_url();
    let r = http
        .post(format!("{admin}/orchestrators/0/faults"))
        .json(&json!({"kind": "respond_status", "path": "/process/request/", "status": 402, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let url = format!("{orch}/process/request/reverse");
    let again =
        || http.post(&url).header(jobs::HEADER_JOB, job.to_header()).json(&json!({"text": "x"})).send();
    assert_eq!(again().await.unwrap().status(), 402);
    assert_eq!(again().await.unwrap().status(), 200);
    let stats: serde_json::Value =
        http.get(format!("{admin}/orchestrators/0/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["requests_served"], 2);
    assert_eq!(
        http.post(format!("{admin}/orchestrators/9/faults"))
            .json(&json!({"kind": "respond_status", "path": "/", "status": 500, "count": 1}))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    net.shutdown().await;
}

#[test]
fn python_sdk_gets_info_and_starts_lv2v_over_tls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let net = rt.block_on(LocalNetwork::start(NetworkConfig::default())).unwrap();
    let orch = net.orchestrator_urls()[0].clone();
    assert!(orch.starts_with("https://"));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/lv2v_peer.py");
    let out = std::process::Command::new(common::python())
        .arg(script)
        .arg(&orch)
        .arg(net.signer_url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed:\n{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["transcoder"], orch);
    assert_eq!(v["has_price"], true);
    // BYOC never shows in go's capability constraints (its bit 37 is never set).
    assert_eq!(v["caps"], json!([35]));
    assert!(v["publish_url"].as_str().unwrap().starts_with(&orch));
    assert_eq!(v["sent_sha256"], v["received_sha256"]);
    assert_eq!(net.orchestrator().stats().lv2v_sessions_started, 1);
    rt.block_on(net.shutdown());
}

#[tokio::test]
async fn lv2v_session_closes_when_its_balance_runs_out() {
    let mut config = plaintext();
    // Each 100 ms accounting tick bills 30 s of 720p30 usage; the first payment buys 60 s
    // (1.66e6 wei: two 1e6 wei tickets, ~72 s).
    config.orchestrator.lv2v_accounting_interval = Duration::from_millis(100);
    config.orchestrator.usage_time_scale = 300.0;
    config.orchestrator.ticket_ev_wei = 1_000_000;
    config.orchestrator.ticket_face_value_wei = 1_000_000_000;
    let net = LocalNetwork::start(config).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let info = signed_info(&http, &net, "live-video-to-video/noop").await;
    let caps = lp_rpc::to_base64(&build_capabilities(&["live-video-to-video/noop".parse().unwrap()]));
    let payment = pay(&http, &net, &info, json!({"type": "lv2v", "capabilities": caps})).await;
    let job: LiveVideoToVideoResponse = http
        .post(format!("{orch}/live-video-to-video"))
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .header(jobs::HEADER_SEGMENT, &payment.seg_creds)
        .json(&json!({"model_id": "noop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Accounting is driven by input: keep sending segments until the session is closed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seq = 0;
    while net.orchestrator().stats().stopped_for_payment == 0 {
        assert!(tokio::time::Instant::now() < deadline, "LV2V session never ran out of balance");
        let _ = http.post(format!("{}/{seq}", job.publish_url)).body(vec![0u8; 1000]).send().await;
        seq += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seq >= 2, "closed after {seq} segments: before the credit could have run out");
    assert_eq!(http.get(format!("{}/next", job.subscribe_url)).send().await.unwrap().status(), 404);
    net.shutdown().await;
}

/// `POST /payment` (LV2V) with a payment and its segment credentials: status and body.
async fn post_payment(
    http: &reqwest::Client,
    orch: &str,
    payment: &lp_rpc::Payment,
    seg_creds: &str,
) -> reqwest::Result<(u16, String)> {
    let r = http
        .post(format!("{orch}/payment"))
        .header(jobs::HEADER_PAYMENT, lp_rpc::to_base64(payment))
        .header(jobs::HEADER_SEGMENT, seg_creds)
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, if status == 200 { String::new() } else { r.text().await? }))
}

fn payment_of(p: &GenerateLivePaymentResponse) -> lp_rpc::Payment {
    lp_rpc::from_base64("payment", &p.payment).unwrap()
}

fn manifest_of(p: &GenerateLivePaymentResponse) -> String {
    let seg: lp_rpc::SegData = lp_rpc::from_base64("seg", &p.seg_creds).unwrap();
    String::from_utf8(seg.manifest_id).unwrap()
}

fn ev_of(info: &OrchestratorInfo) -> f64 {
    let p = info.ticket_params.as_ref().unwrap();
    livepeer_gateway_testkit::tickets::rat_to_f64(&livepeer_gateway_testkit::tickets::ticket_ev(
        &p.face_value,
        &p.win_prob,
    ))
}

#[tokio::test]
async fn signer_tickets_pass_and_tampered_ones_get_go_errors() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let caps = lp_rpc::to_base64(&build_capabilities(&["live-video-to-video/noop".parse().unwrap()]));
    let info = signed_info(&http, &net, "live-video-to-video/noop").await;
    // Realistic params: go-livepeer's 8 gwei EV on a 0.0012 ETH face value.
    let params = info.ticket_params.clone().unwrap();
    assert_eq!(params.face_value, livepeer_gateway_testkit::tickets::be_bytes(1_200_000_000_000_000));
    assert!((ev_of(&info) - 8e9).abs() < 1.0);

    // A payment minted by the signer is accepted and credited at EV per ticket.
    let first = pay(&http, &net, &info, json!({"type": "lv2v", "capabilities": caps})).await;
    let p1 = payment_of(&first);
    let sender: [u8; 20] = p1.sender.clone().try_into().unwrap();
    let mid = manifest_of(&first);
    assert_eq!(post_payment(&http, &orch, &p1, &first.seg_creds).await.unwrap(), (200, String::new()));
    let credited = net.orchestrator().balance(&sender, &mid);
    let expected = p1.ticket_sender_params.len() as f64 * ev_of(&info);
    assert!((credited - expected).abs() < 1.0, "credited {credited}, expected {expected}");

    // The same tickets again: go's replay error, with the checksummed sender.
    let (status, body) = post_payment(&http, &orch, &p1, &first.seg_creds).await.unwrap();
    assert_eq!(status, 400);
    let who = gateway_core::eth::checksum_address(&sender);
    assert_eq!(body, format!("invalid ticket senderNonce: already seen sender={who} nonce=1\n"));

    // The next payment on the same state, tampered in each field recipientRand binds.
    let next = pay(
        &http,
        &net,
        &info,
        json!({"type": "lv2v", "capabilities": caps, "state": first.state, "ManifestID": mid}),
    )
    .await;
    let p2 = payment_of(&next);
    let rand_error = "invalid recipientRand for ticket recipientRandHash\n";
    let mut dearer = p2.clone();
    dearer.expected_price.as_mut().unwrap().price_per_unit *= 2;
    assert_eq!(post_payment(&http, &orch, &dearer, &next.seg_creds).await.unwrap(), (400, rand_error.into()));
    let mut other_round = p2.clone();
    other_round.expiration_params.as_mut().unwrap().creation_round += 1;
    assert_eq!(
        post_payment(&http, &orch, &other_round, &next.seg_creds).await.unwrap(),
        (400, rand_error.into())
    );
    let mut later = p2.clone();
    let block = &mut later.ticket_params.as_mut().unwrap().expiration_block;
    *block = livepeer_gateway_testkit::tickets::be_bytes(
        livepeer_gateway_testkit::tickets::from_be_bytes(block) + 1,
    );
    assert_eq!(post_payment(&http, &orch, &later, &next.seg_creds).await.unwrap(), (400, rand_error.into()));
    let mut elsewhere = p2.clone();
    elsewhere.ticket_params.as_mut().unwrap().recipient = vec![0x42; 20];
    let wrong_recipient = post_payment(&http, &orch, &elsewhere, &next.seg_creds).await.unwrap();
    assert_eq!(wrong_recipient, (400, "invalid ticket recipient\n".into()));
    let mut forged = p2.clone();
    forged.ticket_sender_params[0].sig[5] ^= 0x01;
    let bad_sig = post_payment(&http, &orch, &forged, &next.seg_creds).await.unwrap();
    assert_eq!(bad_sig, (400, "invalid ticket signature\n".into()));

    // go-livepeer dereferences the missing expiration params: the handler panics and the
    // connection drops without an answer.
    let mut bare = p2.clone();
    bare.expiration_params = None;
    assert!(
        post_payment(&http, &orch, &bare, &next.seg_creds).await.is_err(),
        "expected a dropped connection"
    );

    // Rand and signature failures come before go records the nonce, and the server still
    // answers after the dropped connection: the untouched payment is accepted.
    assert_eq!(p2.ticket_sender_params.len(), 1);
    assert_eq!(post_payment(&http, &orch, &p2, &next.seg_creds).await.unwrap(), (200, String::new()));
    net.shutdown().await;
}

#[tokio::test]
async fn ticket_params_are_bound_to_the_sender_that_asked() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let caps = lp_rpc::to_base64(&build_capabilities(&["live-video-to-video/noop".parse().unwrap()]));
    // A second signer (another address) on its own socket.
    let other = livepeer_gateway_testkit::signer::LocalSigner::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_url = format!("http://{}", listener.local_addr().unwrap());
    let router = other.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    // Params the first signer asked for, paid by the other: go's fatal rand error.
    let info = signed_info(&http, &net, "live-video-to-video/noop").await;
    let stolen = pay_with(&http, &other_url, &info, json!({"type": "lv2v", "capabilities": caps})).await;
    let (status, body) = post_payment(&http, &orch, &payment_of(&stolen), &stolen.seg_creds).await.unwrap();
    assert_eq!((status, body.as_str()), (400, "invalid recipientRand for ticket recipientRandHash\n"));
    // Params the other signer asked for itself: accepted.
    let own = info_for(&http, &net, &other_url, "live-video-to-video/noop").await;
    let paid = pay_with(&http, &other_url, &own, json!({"type": "lv2v", "capabilities": caps})).await;
    assert_eq!(post_payment(&http, &orch, &payment_of(&paid), &paid.seg_creds).await.unwrap().0, 200);
    // Params asked for anonymously are bound to the zero address: nobody can pay with them.
    let anonymous = grpc_info(
        &net,
        OrchestratorRequest {
            capabilities: Some(build_capabilities(&["live-video-to-video/noop".parse().unwrap()])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let unbound = pay(&http, &net, &anonymous, json!({"type": "lv2v", "capabilities": caps})).await;
    let (status, _) = post_payment(&http, &orch, &payment_of(&unbound), &unbound.seg_creds).await.unwrap();
    assert_eq!(status, 400);
    net.shutdown().await;
}

#[tokio::test]
async fn byoc_minutes_at_100_wei_per_second_are_one_ticket() {
    let net = LocalNetwork::start(plaintext()).await.unwrap();
    let http = common::http();
    let orch = net.orchestrator_urls()[0].clone();
    let info = signed_info(&http, &net, "byoc/text-reversal").await;
    let price = info.price_info.clone().unwrap();
    assert_eq!((price.price_per_unit, price.pixels_per_unit), (100, 1));
    let caps = lp_rpc::to_base64(&build_capabilities(&[CapabilityQuery::byoc("text-reversal").unwrap()]));
    // Five minutes at 100 wei/s is 30 000 wei: one 8 gwei ticket covers it many times over.
    let payment =
        pay(&http, &net, &info, json!({"type": "byoc", "capabilities": caps, "preloadSeconds": 300})).await;
    let p = payment_of(&payment);
    assert_eq!(p.ticket_sender_params.len(), 1);
    let job = signed_job(&http, &net, "req-ev", &JobParameters::default()).await;
    let r = http
        .post(format!("{orch}/process/request/reverse"))
        .header(jobs::HEADER_JOB, job.to_header())
        .header(jobs::HEADER_PAYMENT, &payment.payment)
        .json(&json!({"text": "abc"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let sender: [u8; 20] = p.sender.try_into().unwrap();
    let balance = net.orchestrator().balance(&sender, "text-reversal");
    // One ticket's EV less a second or so of work.
    assert!(balance > ev_of(&info) - 1_000.0 && balance < ev_of(&info), "{balance}");
    net.shutdown().await;
}
