//! Job credentials: the signed message per go version, offchain, the timeout and go's lenient
//! JSON in the `Livepeer` header.

use gateway_core::jobs::{self, EthAddressHeader, JobRequest};
use gateway_core::lp_rpc::OrchestratorRequest;
use livepeer_gateway_testkit::orchestrator::GoVersion;
use serde_json::{json, Value};

use crate::harness::{raw_job_header, start, stream_job, v1_message, CAP};
use crate::streams::fund;

const PAYMENT_CREDS: &str = "Failed to process payment, request not valid err=Could not verify job creds\n";

#[tokio::test]
async fn master_refuses_v1_signatures_and_takes_request_plus_parameters() {
    let n = start(|c| c.orchestrator.go_version = GoVersion::Master).await;
    let payment = n.payment(60).await;
    let v1 = n.sign(stream_job("m1")).await;
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &v1, Some(&payment), None).await;
    assert_eq!(r.pair(), (400, PAYMENT_CREDS));
    let master = n.sign_locally(stream_job("m1"), GoVersion::Master);
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &master, Some(&payment), None).await;
    assert_eq!(r.pair(), (200, ""));
    // master's signature covers neither the id, the capability nor the timeout.
    let renamed = JobRequest { id: "other".into(), timeout_seconds: 5, ..master };
    assert_eq!(n.post(jobs::STREAM_PAYMENT_PATH, &renamed, None, None).await.pair(), (200, ""));
}

#[tokio::test]
async fn pr3869_signatures_cover_every_field_and_an_empty_id() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let master = n.sign_locally(stream_job("p1"), GoVersion::Master);
    assert_eq!(n.post(jobs::STREAM_PAYMENT_PATH, &master, None, None).await.pair(), (400, PAYMENT_CREDS));
    let signed = n.sign(stream_job("p1")).await;
    for tampered in [
        JobRequest { id: "p2".into(), ..signed.clone() },
        JobRequest { timeout_seconds: 71, ..signed.clone() },
        JobRequest { parameters: "{ }".into(), ..signed.clone() },
    ] {
        assert_eq!(
            n.post(jobs::STREAM_PAYMENT_PATH, &tampered, None, None).await.pair(),
            (400, PAYMENT_CREDS)
        );
    }
    // The signer refuses an empty id, the orchestrator does not (go's gateway pays with one).
    let empty_id = n.sign_locally(JobRequest { id: String::new(), ..stream_job("p1") }, GoVersion::Pr3869);
    assert_eq!(n.post(jobs::STREAM_PAYMENT_PATH, &empty_id, None, None).await.pair(), (200, ""));
}

#[tokio::test]
async fn timeout_seconds_is_required_and_checked_before_the_signature() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let signed = |timeout: Value| {
        let job = stream_job("t");
        let mut v = serde_json::to_value(&job).unwrap();
        v["timeout_seconds"] = timeout;
        v["sender"] = json!(n.key.checksum_address());
        v["sig"] = json!(format!("0x{}", hex::encode(n.key.sign(&v1_message(&job)))));
        raw_job_header(&v)
    };
    let post = |header: String, path: &'static str| {
        let n = &n;
        async move { n.send(reqwest::Method::POST, path, Some(&header), None, Some(b"{}")).await.unwrap() }
    };
    let no_timeout = "no timeout_seconds set with request, timeout_seconds is required\n";
    assert_eq!(post(signed(json!(0)), "/process/request/r").await.pair(), (400, no_timeout));
    assert_eq!(post(signed(json!(null)), jobs::STREAM_START_PATH).await.pair(), (400, no_timeout));
    // Not an integer, negative, above u32: bad credentials.
    for bad in [json!(30.5), json!("30"), json!(-1), json!(4_294_967_296u64)] {
        assert_eq!(
            post(signed(bad.clone()), "/process/request/r").await.pair(),
            (400, "Could not verify job creds\n"),
            "{bad}"
        );
    }
    // go's JSON: keys match case-insensitively and the last duplicate wins.
    let job = n.sign(stream_job("t")).await;
    let mut v = serde_json::to_value(&job).unwrap();
    let t = v.as_object_mut().unwrap().remove("timeout_seconds").unwrap();
    v["TIMEOUT_SECONDS"] = t;
    assert_eq!(post(raw_job_header(&v), jobs::STREAM_PAYMENT_PATH).await.pair(), (200, ""));
    let text = serde_json::to_string(&job).unwrap().replacen('{', r#"{"capability":"other","#, 1);
    let header = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text);
    assert_eq!(post(header, jobs::STREAM_PAYMENT_PATH).await.pair(), (200, ""));
}

#[tokio::test]
async fn offchain_needs_no_payment_and_quotes_no_ticket_params() {
    let n = start(|c| c.orchestrator.offchain = true).await;
    let job = JobRequest { request: "{}".into(), ..stream_job("off") };
    let header = raw_job_header(&serde_json::to_value(&job).unwrap());
    // A garbage payment is never decoded.
    let r = n
        .send(
            reqwest::Method::POST,
            "/process/request/reverse",
            Some(&header),
            Some("%%%"),
            Some(br#"{"text":"ab"}"#),
        )
        .await
        .unwrap();
    assert_eq!(r.pair(), (200, r#"{"reversed":"ba"}"#));
    assert_eq!(r.header(jobs::HEADER_BALANCE), Some("0"));
    let r = n
        .send(reqwest::Method::POST, jobs::STREAM_START_PATH, Some(&header), None, Some(b"{}"))
        .await
        .unwrap();
    assert_eq!((r.status, r.header(jobs::HEADER_BALANCE)), (200, Some("0")));
    let token: Value = serde_json::from_str(&n.token(CAP).await.body).unwrap();
    assert!(token.get("ticket_params").is_none() && token.get("balance").is_none());
    assert_eq!(token["price"], json!({"pixelsPerUnit": 1}));
    let info = n.grpc(OrchestratorRequest::default()).await.unwrap();
    assert!(info.ticket_params.is_none() && info.price_info.is_none());
}

#[tokio::test]
async fn offchain_takes_an_empty_sig_but_not_0x() {
    let n = start(|c| c.orchestrator.offchain = true).await;
    let with_sig = |sig: &str| {
        let job =
            JobRequest { request: "{}".into(), sender: String::new(), sig: sig.into(), ..stream_job("s") };
        raw_job_header(&serde_json::to_value(&job).unwrap())
    };
    let post = |header: String| {
        let n = &n;
        async move {
            n.send(reqwest::Method::POST, "/process/request/reverse", Some(&header), None, Some(b"x"))
                .await
                .unwrap()
        }
    };
    // Offchain every signature verifies, but go hex-decodes it first (2 characters are cut only
    // from strings longer than 130).
    assert_eq!(post(with_sig("")).await.pair(), (200, "x"));
    assert_eq!(post(with_sig(&"ab".repeat(65))).await.pair(), (200, "x"));
    assert_eq!(post(with_sig(&format!("0x{}", "ab".repeat(65)))).await.pair(), (200, "x"));
    for bad in ["0x".to_owned(), "0xab".to_owned(), "zz".to_owned(), "abc".to_owned()] {
        assert_eq!(post(with_sig(&bad)).await.pair(), (400, "Could not verify job creds\n"), "{bad:?}");
    }
    // The token's signature follows the same rule.
    let token = |sig: &str| {
        let eth = EthAddressHeader { addr: n.key.checksum_address(), sig: sig.into() };
        let n = &n;
        async move { n.token_with(Some(&eth.to_header()), Some(CAP)).await }
    };
    assert_eq!(token("").await.status, 200);
    assert_eq!(token("0x").await.pair(), (400, "Invalid eth address header \n"));
}
