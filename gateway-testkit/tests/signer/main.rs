//! The remote signer double over real sockets: identity, payments with the state round trip,
//! 480/481/482, BYOC, discovery, bearer auth, faults and error bodies.

#[path = "../common/mod.rs"]
mod common;
mod pm;

use std::time::{Duration, Instant};

use base64::Engine;
use gateway_core::capabilities::{build_capabilities, parse_capability_queries};
use gateway_core::eth::{checksum_address, keccak256};
use gateway_core::jobs::LV2V_PIXELS_PER_SECOND;
use gateway_core::lp_rpc::{
    from_base64, to_base64, AuthToken, Capabilities, OrchestratorInfo, Payment, PriceInfo, SegData,
    TicketExpirationParams, TicketParams,
};
use gateway_core::signer::{
    byoc_job_v1_encoding, DiscoveredOrchestrator, SignByocJobRequest, SignerState,
    DISCOVER_ORCHESTRATORS_PATH, GENERATE_LIVE_PAYMENT_PATH, HEADER_ORCHESTRATOR_URL, SIGN_BYOC_JOB_PATH,
    SIGN_ORCHESTRATOR_INFO_PATH,
};
use livepeer_gateway_testkit::keys::{recover_signer, EthKey};
use livepeer_gateway_testkit::signer::{
    verify_payment, LocalSigner, PaymentRejection, PaymentState, SignerConfig, SignerFault,
};
use livepeer_gateway_testkit::tickets::{
    be_bytes, biguint_bytes, block_at, max_win_prob, rat_string, rat_to_f64, seg_data_message, ticket_ev,
    unix_now, win_prob_for, Rat, Ticket, TICKET_PARAMS_VALIDITY_BLOCKS,
};
use num_bigint::BigUint;
use serde_json::{json, Value};

const ORCH_URL: &str = "https://127.0.0.1:8935";
/// go-livepeer's default ticket EV (8 gwei) with an Arbitrum-like 0.0012 ETH face value.
const TICKET_EV_WEI: u64 = 8_000_000_000;
const FACE_VALUE_WEI: u128 = 1_200_000_000_000_000;
/// 15 wei per pixel: 60 s of LV2V costs ~2.5e10 wei, three to four tickets.
const LV2V_PRICE: i64 = 15;

/// A running signer and where it listens.
struct Running {
    signer: LocalSigner,
    base: String,
    http: reqwest::Client,
}

async fn start(config: SignerConfig) -> Running {
    let signer = LocalSigner::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = signer.router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Running { signer, base, http: common::http() }
}

/// Status, headers and body (JSON when it parses, else the raw text as a string).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error message in {}", self.body))
    }

    fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

impl Running {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer { status, headers, body }
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_raw(path, serde_json::to_vec(body).unwrap()).await
    }

    async fn post_raw(&self, path: &str, body: Vec<u8>) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    async fn get(&self, path_and_query: &str) -> Answer {
        self.send(self.http.get(format!("{}{path_and_query}", self.base))).await
    }

    async fn pay(&self, body: &Value) -> Answer {
        self.post(GENERATE_LIVE_PAYMENT_PATH, body).await
    }
}

fn orch_address() -> [u8; 20] {
    [0x0a; 20]
}

/// An `OrchestratorInfo` shaped like a live on-chain answer: fresh ticket params, a price, an
/// auth token valid for 30 minutes.
fn orchestrator_info(price_per_unit: i64, pixels_per_unit: i64) -> OrchestratorInfo {
    let now = unix_now();
    OrchestratorInfo {
        transcoder: ORCH_URL.into(),
        ticket_params: Some(TicketParams {
            recipient: orch_address().to_vec(),
            face_value: be_bytes(FACE_VALUE_WEI),
            win_prob: biguint_bytes(&win_prob_for(
                &BigUint::from(FACE_VALUE_WEI),
                &BigUint::from(TICKET_EV_WEI),
            )),
            recipient_rand_hash: keccak256(b"recipient rand").to_vec(),
            seed: vec![0x5e; 32],
            expiration_block: be_bytes(u128::from(block_at(now) + TICKET_PARAMS_VALIDITY_BLOCKS)),
            expiration_params: Some(TicketExpirationParams {
                creation_round: 3_500,
                creation_round_block_hash: vec![0xbb; 32],
            }),
        }),
        price_info: Some(PriceInfo { price_per_unit, pixels_per_unit, ..Default::default() }),
        address: orch_address().to_vec(),
        auth_token: Some(AuthToken {
            token: vec![0xa7; 32],
            session_id: "session-1".into(),
            expiration: now + 30 * 60,
        }),
        ..Default::default()
    }
}

fn lv2v_caps() -> Capabilities {
    build_capabilities(&parse_capability_queries(["live-video-to-video/streamdiffusion"]).unwrap())
}

/// The exact ticket EV (over 2^256 − 1), as `f64`.
fn ev_of(info: &OrchestratorInfo) -> f64 {
    let p = info.ticket_params.as_ref().unwrap();
    rat_to_f64(&ticket_ev(&p.face_value, &p.win_prob))
}

fn payment_of(answer: &Answer) -> Payment {
    from_base64("payment", answer.body["payment"].as_str().unwrap()).unwrap()
}

fn seg_of(answer: &Answer) -> SegData {
    from_base64("segCreds", answer.body["segCreds"].as_str().unwrap()).unwrap()
}

fn state_of(answer: &Answer) -> PaymentState {
    PaymentState::decode(&SignerState(answer.body["state"].clone())).unwrap()
}

fn balance_of(answer: &Answer) -> f64 {
    state_of(answer).balance_wei().unwrap()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

fn lv2v_request(info: &OrchestratorInfo) -> Value {
    json!({"orchestrator": to_base64(info), "type": "lv2v", "capabilities": to_base64(&lv2v_caps())})
}

#[tokio::test]
async fn identity_signature_recovers_to_signer_address() {
    let mut secret = [0u8; 32];
    secret[31] = 7;
    let key = EthKey::from_secret(&secret).unwrap();
    let net = start(SignerConfig { key: Some(key.clone()), ..Default::default() }).await;
    assert_eq!(net.signer.address(), key.address());

    let a = net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await;
    assert_eq!(a.status, 200);
    let address = a.body["address"].as_str().unwrap();
    assert_eq!(address, checksum_address(&key.address()));
    let sig = hex::decode(a.body["signature"].as_str().unwrap().strip_prefix("0x").unwrap()).unwrap();
    assert_eq!(sig.len(), 65);
    assert_eq!(recover_signer(address.as_bytes(), &sig), Some(key.address()));
    // go-livepeer's own gateway sends an empty body.
    let empty = net.post_raw(SIGN_ORCHESTRATOR_INFO_PATH, Vec::new()).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.body, a.body);
    assert_eq!(net.signer.stats().sign_orchestrator_info_calls, 2);
}

#[tokio::test]
async fn lv2v_payments_round_trip_state() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let ev = ev_of(&info);
    assert!(close(ev, 8e9, 1e-4), "fixture EV is ~8 gwei, got {ev}");

    // First call: 60 s of 1280×720×30 at the orchestrator's price.
    let first = net.pay(&lv2v_request(&info)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let fee1 = 60.0 * LV2V_PIXELS_PER_SECOND as f64 * LV2V_PRICE as f64;
    let n1 = (fee1 / ev).ceil() as usize;
    let payment = payment_of(&first);
    let verified = verify_payment(&payment).unwrap();
    assert_eq!(verified.sender, net.signer.address());
    assert_eq!(verified.ticket_count, n1);
    assert_eq!(verified.nonces, (1..=n1 as u32).collect::<Vec<_>>());
    assert_eq!(verified.ticket_ev_wei, ev);
    let params = info.ticket_params.clone().unwrap();
    let sent = payment.ticket_params.clone().unwrap();
    assert_eq!((sent.recipient_rand_hash, sent.face_value), (params.recipient_rand_hash, params.face_value));
    assert_eq!(payment.expiration_params, params.expiration_params);
    assert_eq!(payment.expected_price, info.price_info);

    let seg = seg_of(&first);
    assert!(!seg.manifest_id.is_empty(), "a random manifest id on the first call");
    assert_eq!(seg.hash, keccak256(b"").to_vec());
    assert_eq!(seg.auth_token, info.auth_token);
    assert_eq!(seg.capabilities, Some(lv2v_caps()));
    assert_eq!(recover_signer(&seg_data_message(&seg), &seg.sig), Some(net.signer.address()));

    let s1 = state_of(&first);
    assert_eq!(s1.sequence_number, 0);
    assert_eq!(s1.payment_type, "lv2v");
    assert_eq!((s1.initial_price_per_unit, s1.initial_pixels_per_unit), (LV2V_PRICE, 1));
    // Go marshals a `common.Address` as lowercase hex.
    assert_eq!(s1.orchestrator_address, format!("0x{}", hex::encode(orch_address())));
    let b1 = balance_of(&first);
    assert!(close(b1, n1 as f64 * ev - fee1, 1e-9), "balance {b1}");
    assert!(b1 > 0.0 && b1 < ev);

    // Second call right away (other key spelling): the credit is below one ticket's EV, so one
    // ticket; the nonce continues; the balance is carried.
    let mut second_req = lv2v_request(&info);
    second_req["state"] = first.body["state"].clone();
    second_req["manifestId"] = json!("mid-1");
    let second = net.pay(&second_req).await;
    assert_eq!(second.status, 200, "{}", second.body);
    let v2 = verify_payment(&payment_of(&second)).unwrap();
    assert_eq!(v2.nonces, vec![n1 as u32 + 1]);
    assert_eq!(seg_of(&second).manifest_id, b"mid-1");
    let s2 = state_of(&second);
    assert_eq!(s2.sequence_number, 1);
    assert_eq!(s2.state_id, s1.state_id);
    let b2 = balance_of(&second);
    assert!(b2 > b1 && b2 < b1 + ev, "b1 {b1} + one ticket minus a few ms of use, got {b2}");

    // Third call right away: the credit covers max(fee, EV), nothing to mint.
    let mut third_req = lv2v_request(&info);
    third_req["state"] = second.body["state"].clone();
    third_req["ManifestID"] = json!("mid-1");
    let third = net.pay(&third_req).await;
    assert_eq!(third.status, 482);
    assert_eq!(third.error_message(), "no tickets");

    // Sixty seconds later the same state pays for sixty seconds of use.
    net.signer.advance_clock(Duration::from_secs(60));
    let fourth = net.pay(&third_req).await;
    assert_eq!(fourth.status, 200, "{}", fourth.body);
    let v4 = verify_payment(&payment_of(&fourth)).unwrap();
    let elapsed = (state_of(&fourth).last_update_unix_nano - s2.last_update_unix_nano) as f64 / 1e9;
    assert!(elapsed >= 60.0);
    let fee4 = (elapsed * LV2V_PIXELS_PER_SECOND as f64) as i64 as f64 * LV2V_PRICE as f64;
    assert_eq!(v4.ticket_count, ((fee4 - b2) / ev).ceil() as usize);
    assert!(close(balance_of(&fourth), b2 + v4.total_ev_wei() - fee4, 1e-9));
    assert_eq!(state_of(&fourth).sequence_number, 2);

    let stats = net.signer.stats();
    assert_eq!(stats.generate_live_payment_calls, 4);
    assert_eq!(stats.payments_minted, 3);
    assert_eq!(stats.tickets_minted, (n1 + 1 + v4.ticket_count) as u64);
    assert_eq!(stats.no_tickets_responses, 1);
}

#[tokio::test]
async fn other_payment_types_bill_their_units() {
    let net = start(SignerConfig::default()).await;
    // A price high enough per unit that the fee, not the EV floor, decides the ticket count.
    let info = orchestrator_info(3_000_000_000, 1);
    let ev = ev_of(&info);
    let tickets = |a: &Answer| verify_payment(&payment_of(a)).unwrap().ticket_count;

    let live = net.pay(&json!({"orchestrator": to_base64(&info), "type": "live"})).await;
    assert_eq!(live.status, 200, "{}", live.body);
    assert_eq!(tickets(&live), (10.0 * 3e9 / ev).ceil() as usize, "first live call bills 10 s");

    let fixed = net.pay(&json!({"orchestrator": to_base64(&info), "type": "fixed"})).await;
    assert_eq!(tickets(&fixed), 1, "one unit, floored at one ticket");

    let pixels = net.pay(&json!({"orchestrator": to_base64(&info), "type": "", "inPixels": 40})).await;
    assert_eq!(tickets(&pixels), (40.0 * 3e9 / ev).ceil() as usize);

    let none = net.pay(&json!({"orchestrator": to_base64(&info), "type": ""})).await;
    assert_eq!(none.status, 400);
    assert_eq!(none.error_message(), "missing billable unit or job type");
}

#[tokio::test]
async fn tampered_or_foreign_state_is_rejected() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let first = net.pay(&lv2v_request(&info)).await;
    assert_eq!(first.status, 200);

    // Raise the balance inside the blob and keep the signature.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut inner: Value =
        serde_json::from_slice(&b64.decode(first.body["state"]["State"].as_str().unwrap()).unwrap()).unwrap();
    inner["Balance"] = json!("1000000000000000");
    let mut req = lv2v_request(&info);
    req["ManifestID"] = json!("mid");
    req["state"] =
        json!({"State": b64.encode(serde_json::to_vec(&inner).unwrap()), "Sig": first.body["state"]["Sig"]});
    let tampered = net.pay(&req).await;
    assert_eq!(tampered.status, 400);
    assert_eq!(tampered.error_message(), "invalid sig");

    // A state minted by another signer.
    let other = start(SignerConfig::default()).await;
    let foreign = other.pay(&lv2v_request(&info)).await;
    req["state"] = foreign.body["state"].clone();
    assert_eq!(net.pay(&req).await.error_message(), "invalid sig");

    // Not base64.
    req["state"] = json!({"State": "%%%", "Sig": "AA=="});
    let junk = net.pay(&req).await;
    assert_eq!(junk.status, 400);
    assert!(junk.error_message().contains("not base64"), "{}", junk.body);
}

#[tokio::test]
async fn state_must_match_orchestrator_app_type_and_manifest() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let mut first_req = lv2v_request(&info);
    first_req["app"] = json!("demo");
    let first = net.pay(&first_req).await;
    assert_eq!(first.status, 200);
    assert_eq!(state_of(&first).app, "demo");

    let next = |edit: &dyn Fn(&mut Value)| {
        let mut r = first_req.clone();
        r["state"] = first.body["state"].clone();
        r["ManifestID"] = json!("mid");
        edit(&mut r);
        r
    };
    let ok = net.pay(&next(&|_| {})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);

    let wrong_type = net.pay(&next(&|r| r["type"] = json!("live"))).await;
    assert_eq!((wrong_type.status, wrong_type.error_message()), (400, "job type mismatch"));
    let wrong_app = net.pay(&next(&|r| r["app"] = json!("other"))).await;
    assert_eq!((wrong_app.status, wrong_app.error_message()), (400, "app mismatch"));
    let no_manifest = net.pay(&next(&|r| r["ManifestID"] = Value::Null)).await;
    assert_eq!((no_manifest.status, no_manifest.error_message()), (400, "missing manifestID"));
    let mut moved = info.clone();
    moved.address = vec![0x0b; 20];
    let wrong_orch = net.pay(&next(&|r| r["orchestrator"] = json!(to_base64(&moved)))).await;
    assert_eq!((wrong_orch.status, wrong_orch.error_message()), (400, "orchestratorAddress mismatch"));
}

#[tokio::test]
async fn refresh_on_expiring_token_or_expired_ticket_params() {
    let net = start(SignerConfig::default()).await;

    let mut expiring = orchestrator_info(LV2V_PRICE, 1);
    expiring.auth_token.as_mut().unwrap().expiration = unix_now() + 60; // inside the last 10 %
    let a = net.pay(&lv2v_request(&expiring)).await;
    assert_eq!(a.status, 480);
    assert_eq!(a.headers.get(HEADER_ORCHESTRATOR_URL).unwrap(), ORCH_URL);
    assert!(a.error_message().contains("refresh session"));
    assert!(a.content_type().starts_with("application/json"));

    let mut stale = orchestrator_info(LV2V_PRICE, 1);
    stale.ticket_params.as_mut().unwrap().expiration_block = be_bytes(u128::from(block_at(unix_now()) - 2));
    let b = net.pay(&lv2v_request(&stale)).await;
    assert_eq!(b.status, 480);
    assert_eq!(b.headers.get(HEADER_ORCHESTRATOR_URL).unwrap(), ORCH_URL);

    // A token well inside its validity is fine, also after the clock moves 20 minutes.
    let fresh = orchestrator_info(LV2V_PRICE, 1);
    assert_eq!(net.pay(&lv2v_request(&fresh)).await.status, 200);
    net.signer.advance_clock(Duration::from_secs(28 * 60));
    assert_eq!(net.pay(&lv2v_request(&fresh)).await.status, 480, "the signer's clock decides");

    let mut tokenless = orchestrator_info(LV2V_PRICE, 1);
    tokenless.auth_token = None;
    let c = net.pay(&lv2v_request(&tokenless)).await;
    assert_eq!(c.status, 400);
    assert!(c.error_message().contains("missing auth token"));

    let stats = net.signer.stats();
    assert_eq!(stats.refresh_session_responses, 3);
    assert_eq!(stats.payments_minted, 1);
}

#[tokio::test]
async fn price_ceilings_answer_481() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let first = net.pay(&lv2v_request(&info)).await;
    assert_eq!(first.status, 200);
    let with_state = |info: &OrchestratorInfo| {
        let mut r = lv2v_request(info);
        r["state"] = first.body["state"].clone();
        r["ManifestID"] = json!("mid");
        r
    };

    // A rise over the session's initial price.
    let risen = net.pay(&with_state(&orchestrator_info(LV2V_PRICE + 1, 1))).await;
    assert_eq!(risen.status, 481);
    assert!(risen.error_message().contains("initial session price"), "{}", risen.body);
    // The same price written differently is no rise (compared exactly).
    let same = net.pay(&with_state(&orchestrator_info(LV2V_PRICE * 3, 3))).await;
    assert_eq!(same.status, 200, "{}", same.body);
    // A drop is fine.
    assert_eq!(net.pay(&with_state(&orchestrator_info(LV2V_PRICE - 1, 1))).await.status, 200);

    // The request's maxPrice.
    let mut capped = lv2v_request(&info);
    capped["maxPrice"] = json!({"price": 10, "currency": "wei", "unit": "720p-pixel-seconds"});
    let over = net.pay(&capped).await;
    assert_eq!(over.status, 481);
    assert!(over.error_message().contains("request maxPrice"));
    capped["maxPrice"]["price"] = json!("15");
    assert_eq!(net.pay(&capped).await.status, 200, "a ceiling equal to the price passes");
    capped["maxPrice"]["unit"] = json!("seconds");
    assert_eq!(net.pay(&capped).await.status, 400, "unit must match lv2v");

    // The signer's configured ceiling.
    let strict = start(SignerConfig { max_price_wei_per_unit: Some(5.0), ..Default::default() }).await;
    let refused = strict.pay(&lv2v_request(&info)).await;
    assert_eq!(refused.status, 481);
    assert!(refused.error_message().contains("configured maximum price"));
    assert_eq!(strict.signer.stats().price_exceeded_responses, 1);
    assert_eq!(net.signer.stats().price_exceeded_responses, 2);
}

#[tokio::test]
async fn more_than_100_tickets_is_400() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(1_000, 1);
    let a = net.pay(&lv2v_request(&info)).await;
    assert_eq!(a.status, 400);
    let expected = (60.0 * LV2V_PIXELS_PER_SECOND as f64 * 1_000.0 / ev_of(&info)).ceil();
    assert_eq!(a.error_message(), format!("numTickets {expected} exceeds maximum of 100"));
    assert_eq!(net.signer.stats().tickets_minted, 0);
}

#[tokio::test]
async fn byoc_preloads_and_pins_manifest_to_state_id() {
    let net = start(SignerConfig::default()).await;
    // 1 gwei per second, quoted per 1000 units.
    let (ppu, ppx) = (1_000_000_000i64, 1_000i64);
    let info = orchestrator_info(ppu, ppx);
    let ev = ev_of(&info);
    let caps = build_capabilities(&parse_capability_queries(["byoc/text-reversal"]).unwrap());
    let request = |preload: u32| {
        json!({"orchestrator": to_base64(&info), "type": "byoc", "preloadSeconds": preload,
               "capabilities": to_base64(&caps), "ManifestID": "ignored-for-byoc"})
    };
    let per_second = ppu as f64; // units = seconds × ppx, fee = units × ppu / ppx

    let long = net.pay(&request(90)).await;
    assert_eq!(long.status, 200, "{}", long.body);
    assert_eq!(
        verify_payment(&payment_of(&long)).unwrap().ticket_count,
        (90.0 * per_second / ev).ceil() as usize
    );
    let state = state_of(&long);
    assert_eq!(seg_of(&long).manifest_id, state.state_id.as_bytes(), "BYOC credits the state id");
    assert_eq!(seg_of(&long).capabilities, Some(caps.clone()));

    let short = net.pay(&request(10)).await;
    assert_eq!(
        verify_payment(&payment_of(&short)).unwrap().ticket_count,
        (60.0 * per_second / ev).ceil() as usize,
        "preload is floored at 60 s"
    );

    // A later call bills at least one second and keeps the manifest.
    let mut next = request(90);
    next["state"] = long.body["state"].clone();
    net.signer.advance_clock(Duration::from_millis(7_500));
    let later = net.pay(&next).await;
    assert_eq!(later.status, 200, "{}", later.body);
    let b1 = balance_of(&long);
    // The signer bills the whole seconds between the two payments on its own clock.
    let elapsed_ns = state_of(&later).last_update_unix_nano - state.last_update_unix_nano;
    assert!(elapsed_ns >= 7_500_000_000);
    let fee = (elapsed_ns as f64 / 1e9).ceil() * per_second;
    let expected = ((fee.max(ev) - b1) / ev).ceil() as usize;
    assert_eq!(verify_payment(&payment_of(&later)).unwrap().ticket_count, expected);
    assert!(close(balance_of(&later), b1 + expected as f64 * ev - fee, 1e-9));
    assert_eq!(seg_of(&later).manifest_id, state.state_id.as_bytes());
}

#[tokio::test]
async fn sign_byoc_job_signs_the_v1_encoding() {
    let net = start(SignerConfig::default()).await;
    let job = SignByocJobRequest {
        id: "stream-42".into(),
        capability: "text-reversal".into(),
        request: r#"{"text":"hello"}"#.into(),
        parameters: r#"{"stream":true}"#.into(),
        timeout_seconds: 70,
    };
    let a = net.post(SIGN_BYOC_JOB_PATH, &serde_json::to_value(&job).unwrap()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["sender"], checksum_address(&net.signer.address()));
    let sig = hex::decode(a.body["signature"].as_str().unwrap().trim_start_matches("0x")).unwrap();
    let encoding = byoc_job_v1_encoding(&job).unwrap();
    assert_eq!(recover_signer(&encoding, &sig), Some(net.signer.address()));
    // Not the legacy request‖parameters signature.
    let legacy = format!("{}{}", job.request, job.parameters);
    assert_ne!(recover_signer(legacy.as_bytes(), &sig), Some(net.signer.address()));

    let net = &net;
    let bad = |body: Value| async move { net.post(SIGN_BYOC_JOB_PATH, &body).await };
    let empty_id = bad(json!({"id": "", "capability": "c", "timeout_seconds": 1})).await;
    assert_eq!(empty_id.status, 400);
    assert_eq!(empty_id.error_message(), "sign-byoc-job requires non-empty id and capability");
    assert_eq!(bad(json!({"id": "i", "timeout_seconds": 1})).await.status, 400);
    assert_eq!(bad(json!({"id": "i", "capability": "c", "timeout_seconds": 0})).await.status, 400);
    assert_eq!(bad(json!({"id": "i", "capability": "c", "timeout_seconds": -3})).await.status, 400);
    assert_eq!(
        bad(json!({"id": "i", "capability": "c", "timeout_seconds": 4_294_967_296u64})).await.status,
        400
    );
    assert_eq!(bad(json!({"id": "i", "capability": "c", "timeout_seconds": "70"})).await.status, 400);
    let huge = json!({"id": "i", "capability": "c", "request": "x".repeat(1 << 20), "timeout_seconds": 5});
    let too_big = bad(huge).await;
    assert_eq!(too_big.status, 400);
    assert!(too_big.content_type().starts_with("application/json"));
}

#[tokio::test]
async fn discovery_filters_and_is_503_when_empty() {
    let net = start(SignerConfig::default()).await;
    let empty = net.get(DISCOVER_ORCHESTRATORS_PATH).await;
    assert_eq!(empty.status, 503);
    assert_eq!(empty.error_message(), "Service Unavailable Error");

    let entry = |address: &str, score: Option<f64>, caps: &[&str]| DiscoveredOrchestrator {
        address: address.into(),
        score,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
    };
    net.signer.set_discovery(vec![
        entry("https://a:8935", Some(0.5), &["live-video-to-video/streamdiffusion"]),
        entry("https://b:8935", None, &["byoc/text-reversal"]),
        entry("https://c:8935", Some(2.0), &["live-video-to-video/streamdiffusion", "byoc/other"]),
    ]);
    let addresses = |a: &Answer| {
        a.body
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["address"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    let all = net.get(DISCOVER_ORCHESTRATORS_PATH).await;
    assert_eq!(all.status, 200);
    assert_eq!(addresses(&all), ["https://a:8935", "https://b:8935", "https://c:8935"]);
    assert_eq!(all.body[1]["score"], 1.0, "a missing score reads as trusted");
    assert_eq!(all.body[2]["capabilities"], json!(["live-video-to-video/streamdiffusion", "byoc/other"]));

    let or = net
        .get(&format!("{DISCOVER_ORCHESTRATORS_PATH}?caps=byoc/text-reversal&caps=live-video-to-video%2Fstreamdiffusion"))
        .await;
    assert_eq!(addresses(&or), ["https://b:8935", "https://a:8935", "https://c:8935"]);
    let one = net.get(&format!("{DISCOVER_ORCHESTRATORS_PATH}?caps=byoc/other&caps=")).await;
    assert_eq!(addresses(&one), ["https://c:8935"]);
    let none = net.get(&format!("{DISCOVER_ORCHESTRATORS_PATH}?caps=byoc/nobody")).await;
    assert_eq!((none.status, none.body.clone()), (200, json!([])));

    net.signer.set_discovery(Vec::new());
    assert_eq!(net.get(DISCOVER_ORCHESTRATORS_PATH).await.status, 503);
    assert_eq!(net.signer.stats().discover_orchestrators_calls, 6);
}

#[tokio::test]
async fn bearer_token_guards_every_endpoint() {
    let net = start(SignerConfig { bearer_token: Some("t0ken-s3cret".into()), ..Default::default() }).await;
    let url = |p: &str| format!("{}{p}", net.base);

    let none = net.send(net.http.post(url(SIGN_ORCHESTRATOR_INFO_PATH))).await;
    assert_eq!(none.status, 401);
    assert!(none.content_type().starts_with("application/json"));
    assert!(!none.error_message().contains("t0ken"));
    let wrong = net.send(net.http.get(url(DISCOVER_ORCHESTRATORS_PATH)).bearer_auth("t0ken-s3creT")).await;
    assert_eq!(wrong.status, 401);
    let basic = net
        .send(net.http.post(url(GENERATE_LIVE_PAYMENT_PATH)).basic_auth("t0ken-s3cret", None::<&str>))
        .await;
    assert_eq!(basic.status, 401);

    let ok = net.send(net.http.post(url(SIGN_ORCHESTRATOR_INFO_PATH)).bearer_auth("t0ken-s3cret")).await;
    assert_eq!(ok.status, 200);
    let pay = net
        .send(
            net.http
                .post(url(GENERATE_LIVE_PAYMENT_PATH))
                .bearer_auth("t0ken-s3cret")
                .body(serde_json::to_vec(&lv2v_request(&orchestrator_info(LV2V_PRICE, 1))).unwrap()),
        )
        .await;
    assert_eq!(pay.status, 200, "{}", pay.body);
    // Authenticated, then the endpoint's own answer.
    let discovery =
        net.send(net.http.get(url(DISCOVER_ORCHESTRATORS_PATH)).bearer_auth("t0ken-s3cret")).await;
    assert_eq!(discovery.status, 503);

    let stats = net.signer.stats();
    assert_eq!(stats.unauthorized, 3);
    assert_eq!(stats.sign_orchestrator_info_calls, 1, "refused calls are not counted as calls");
}

#[tokio::test]
async fn faults_apply_to_the_next_calls_then_stop() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);

    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some(SIGN_ORCHESTRATOR_INFO_PATH.into()),
        status: 503,
        count: 2,
    });
    for _ in 0..2 {
        let a = net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await;
        assert_eq!((a.status, a.error_message()), (503, "Service Unavailable Error"));
    }
    assert_eq!(net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await.status, 200);

    // A 480 names the orchestrator of the request; a fault on one endpoint spares the others.
    let fault_json =
        json!({"kind": "respond_status", "endpoint": "generate-live-payment", "status": 480, "count": 1});
    net.signer.set_fault(serde_json::from_value(fault_json).unwrap());
    assert_eq!(net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await.status, 200);
    let refresh = net.pay(&lv2v_request(&info)).await;
    assert_eq!(refresh.status, 480);
    assert_eq!(refresh.headers.get(HEADER_ORCHESTRATOR_URL).unwrap(), ORCH_URL);
    assert_eq!(net.pay(&lv2v_request(&info)).await.status, 200);

    net.signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 482, count: 1 });
    let skip = net.pay(&lv2v_request(&info)).await;
    assert_eq!((skip.status, skip.error_message()), (482, "no tickets"));
    net.signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 500, count: 1 });
    let boom = net.pay(&lv2v_request(&info)).await;
    assert_eq!((boom.status, boom.error_message()), (500, "Internal Server Error"));

    net.signer.set_fault(SignerFault::Delay { endpoint: None, delay_ms: 300, count: 1 });
    let started = Instant::now();
    assert_eq!(net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await.status, 200);
    assert!(started.elapsed() < Duration::from_millis(300));

    // Until cleared.
    net.signer.set_fault(SignerFault::RespondStatus { endpoint: None, status: 502, count: 0 });
    for _ in 0..3 {
        assert_eq!(net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await.status, 502);
    }
    net.signer.clear_faults();
    assert_eq!(net.post(SIGN_ORCHESTRATOR_INFO_PATH, &json!({})).await.status, 200);

    let stats = net.signer.stats();
    assert_eq!(stats.faults_injected, 2 + 1 + 1 + 1 + 3);
    assert_eq!(stats.refresh_session_responses, 1);
    assert_eq!(stats.no_tickets_responses, 1);
    assert_eq!(stats.payments_minted, 1);
}

#[tokio::test]
async fn bad_requests_get_json_error_bodies() {
    let net = start(SignerConfig::default()).await;
    let info = orchestrator_info(LV2V_PRICE, 1);
    let check = |a: &Answer, status: u16, needle: &str| {
        assert_eq!(a.status, status, "{}", a.body);
        assert!(a.content_type().starts_with("application/json"), "content type {}", a.content_type());
        assert!(a.error_message().contains(needle), "{:?} does not contain {needle:?}", a.error_message());
    };

    check(&net.post_raw(GENERATE_LIVE_PAYMENT_PATH, b"{not json".to_vec()).await, 400, "not valid JSON");
    check(&net.pay(&json!([1, 2])).await, 400, "must be a JSON object");
    check(&net.pay(&json!({"type": "lv2v"})).await, 400, "missing orchestrator");
    check(&net.pay(&json!({"orchestrator": "!!!", "type": "lv2v"})).await, 400, "not base64");
    let garbage = base64::engine::general_purpose::STANDARD.encode([0xff, 0xff, 0xff]);
    check(&net.pay(&json!({"orchestrator": garbage, "type": "lv2v"})).await, 400, "protobuf");
    check(&net.pay(&json!({"orchestrator": 12, "type": "lv2v"})).await, 400, "invalid payment request");

    let mut unpriced = info.clone();
    unpriced.price_info = Some(PriceInfo { price_per_unit: 0, pixels_per_unit: 1, ..Default::default() });
    check(&net.pay(&lv2v_request(&unpriced)).await, 400, "missing or zero priceInfo");
    let mut no_params = info.clone();
    no_params.ticket_params = None;
    check(&net.pay(&lv2v_request(&no_params)).await, 400, "missing ticketParams");
    // A zero EV mints nothing (go-livepeer's StageUpdate gives 0 tickets: 482).
    let mut worthless = info.clone();
    worthless.ticket_params.as_mut().unwrap().face_value = Vec::new();
    check(&net.pay(&lv2v_request(&worthless)).await, 482, "no tickets");

    let mut r = lv2v_request(&info);
    r["type"] = json!("transcode");
    check(&net.pay(&r).await, 400, "invalid job type");
    r = json!({"orchestrator": to_base64(&info), "type": "", "inPixels": 1.5});
    check(&net.pay(&r).await, 400, "invalid payment request");
    r["inPixels"] = json!(1e30);
    check(&net.pay(&r).await, 400, "invalid payment request");
    r = lv2v_request(&info);
    r["capabilities"] = json!("AAAA////");
    check(&net.pay(&r).await, 400, "capabilities");
    r = lv2v_request(&info);
    r["state"] = json!("opaque");
    check(&net.pay(&r).await, 400, "state must be an object");

    check(&net.get("/no-such-endpoint").await, 404, "not found");
    check(&net.get(GENERATE_LIVE_PAYMENT_PATH).await, 405, "method not allowed");
    assert_eq!(net.signer.stats().payments_minted, 0);
}
