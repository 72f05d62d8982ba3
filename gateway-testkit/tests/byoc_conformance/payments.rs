//! Payments and balances: 60 s of balance on every priced route, bad payment headers, what is
//! credited before a refusal, the balance headers, free prices, the stream monitor.

use std::time::Duration;

use gateway_core::jobs::{self, JobRequest};
use gateway_core::lp_rpc::{self, Payment};
use livepeer_gateway_testkit::orchestrator::{CapabilityOffer, GoVersion};

use crate::harness::{request_details_error, start, stream_job, CAP, CAPACITY, MIN_BALANCE, PRICE};
use crate::streams::fund;

const INSUFFICIENT: &str = "Insufficient balance for request";

#[tokio::test]
async fn priced_routes_need_a_minute_of_balance_402_on_start_400_elsewhere() {
    let n = start(|_| {}).await;
    let job = n.sign(stream_job("poor")).await;
    let r = n.post(jobs::STREAM_START_PATH, &job, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (402, format!("{INSUFFICIENT}\n").as_str()));
    let r = n.post("/process/request/reverse", &job, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (400, format!("{INSUFFICIENT}\n").as_str()));
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, None, None).await;
    assert_eq!(
        r.pair(),
        (400, format!("Failed to process payment, request not valid err={INSUFFICIENT}\n").as_str())
    );
    for path in [jobs::STREAM_UPDATE_PATH, jobs::STREAM_STOP_PATH] {
        let r = n.post(path, &job, None, Some(b"{}")).await;
        assert_eq!(
            r.pair(),
            (400, format!("Failed to stop stream, request not valid err={INSUFFICIENT}\n").as_str())
        );
    }
    // go frees capacity on every payment failure, also on the three routes that reserved none:
    // the load goes to -3 and the token reports more than the capacity.
    assert_eq!(n.available_capacity().await, CAPACITY + 3);
}

#[tokio::test]
async fn stream_payment_credits_before_requiring_a_minute_of_balance() {
    // 4000 wei tickets: a minute (6000 wei) takes two.
    let n = start(|c| {
        c.orchestrator.ticket_ev_wei = 4_000;
        c.orchestrator.ticket_face_value_wei = 4_000_000;
    })
    .await;
    let payment: Payment = lp_rpc::from_base64("payment", &n.payment(60).await).unwrap();
    assert_eq!(payment.ticket_sender_params.len(), 2);
    let with_ticket = |i: usize| {
        let mut p = payment.clone();
        p.ticket_sender_params = vec![payment.ticket_sender_params[i].clone()];
        lp_rpc::to_base64(&p)
    };
    let job = n.sign(stream_job("topup")).await;
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some(&with_ticket(0)), None).await;
    assert_eq!(
        r.pair(),
        (400, format!("Failed to process payment, request not valid err={INSUFFICIENT}\n").as_str())
    );
    assert_eq!(n.balance(), 4_000.0, "refused, but the ticket was credited");
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some(&with_ticket(1)), None).await;
    assert_eq!(r.pair(), (200, ""));
    assert_eq!(r.header(jobs::HEADER_BALANCE), Some("8000"));
    // The balance is exactly enough at 60 s of price.
    assert!(n.balance() >= MIN_BALANCE);
}

#[tokio::test]
async fn bad_payment_header_is_400_could_not_parse_payment_even_with_balance() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let job = n.sign(stream_job("bad-pay")).await;
    // Not base64; base64 but not a protobuf Payment; a replayed (already credited) payment.
    for bad in ["%%%", "AAAA"] {
        let r = n.post(jobs::STREAM_START_PATH, &job, Some(bad), Some(b"{}")).await;
        assert_eq!(r.pair(), (400, "Could not parse payment\n"), "{bad}");
        let r = n.post("/process/request/reverse", &job, Some(bad), Some(b"{}")).await;
        assert_eq!(r.pair(), (400, "Could not parse payment\n"), "{bad}");
    }
    assert_eq!(n.available_capacity().await, CAPACITY, "reserved and freed");
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some("%%%"), None).await;
    assert_eq!(r.pair(), (400, "Failed to process payment, request not valid err=Could not parse payment\n"));
    assert_eq!(n.available_capacity().await, CAPACITY + 1, "freed without a reservation");
}

#[tokio::test]
async fn bad_payment_header_drops_the_connection_on_master() {
    let n = start(|c| c.orchestrator.go_version = GoVersion::Master).await;
    let job = n.sign_locally(stream_job("m"), GoVersion::Master);
    let payment = n.payment(60).await;
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some(&payment), None).await;
    assert_eq!(r.pair(), (200, ""));
    let send = |path: &'static str, p: String| {
        let (n, header) = (&n, job.to_header());
        async move { n.send(reqwest::Method::POST, path, Some(&header), Some(&p), Some(b"{}")).await }
    };
    // A header that does not decode: master logs it, compares a nil balance and panics; the
    // start's reservation is never freed.
    assert!(send(jobs::STREAM_START_PATH, "%%%".into()).await.is_err(), "connection dropped");
    assert_eq!(n.available_capacity().await, CAPACITY - 1);
    assert!(send(jobs::STREAM_PAYMENT_PATH, "%%%".into()).await.is_err());
    assert_eq!(n.available_capacity().await, CAPACITY - 1);
    // A payment `ProcessPayment` refuses (replayed tickets): freed once, then the same panic.
    assert!(send(jobs::STREAM_PAYMENT_PATH, payment.clone()).await.is_err());
    assert_eq!(n.available_capacity().await, CAPACITY);
    // The server answers on.
    assert_eq!(send(jobs::STREAM_PAYMENT_PATH, String::new()).await.unwrap().status, 200);
}

#[tokio::test]
async fn request_must_be_a_json_object_on_every_route_checked_after_payment() {
    let n = start(|_| {}).await;
    let routes = [
        ("/process/request/reverse", ""),
        (jobs::STREAM_START_PATH, ""),
        (jobs::STREAM_PAYMENT_PATH, "Failed to process payment, request not valid err="),
        (jobs::STREAM_UPDATE_PATH, "Failed to stop stream, request not valid err="),
        (jobs::STREAM_STOP_PATH, "Failed to stop stream, request not valid err="),
    ];
    for (i, (path, prefix)) in routes.into_iter().enumerate() {
        let job = n.sign(JobRequest { request: "\"x\"".into(), ..stream_job(&format!("req-{i}")) }).await;
        let before = n.balance();
        let r = n.post(path, &job, Some(&n.payment(60).await), Some(b"{}")).await;
        assert_eq!(
            r.pair(),
            (400, format!("{prefix}{}\n", request_details_error("string")).as_str()),
            "{path}"
        );
        assert!(n.balance() > before, "{path}: the payment was credited first");
    }
    // The two reserving routes leak their reservation.
    assert_eq!(n.available_capacity().await, CAPACITY - 2);
    // go's messages for other kinds (the balance now covers every request).
    for (request, err) in [
        ("", "Unable to unmarshal job request details err=unexpected end of JSON input".to_owned()),
        ("[1]", request_details_error("array")),
        ("5", request_details_error("number")),
        ("true", request_details_error("bool")),
        (
            r#"{"stream_id":1}"#,
            "Unable to unmarshal job request details err=json: cannot unmarshal number into Go struct field JobRequestDetails.stream_id of type string".to_owned(),
        ),
        ("{x}", "Unable to unmarshal job request details err=invalid character 'x' looking for beginning of object key string".to_owned()),
    ] {
        let job = n.sign(JobRequest { request: request.into(), ..stream_job("kinds") }).await;
        let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, None, None).await;
        assert_eq!(r.pair(), (400, format!("Failed to process payment, request not valid err={err}\n").as_str()));
    }
    // `null` is an empty request.
    let job = n.sign(JobRequest { request: "null".into(), ..stream_job("null-request") }).await;
    assert_eq!(n.post(jobs::STREAM_PAYMENT_PATH, &job, None, None).await.status, 200);
}

#[tokio::test]
async fn start_charges_whole_seconds_and_payment_reports_the_balance() {
    let n = start(|_| {}).await;
    let job = n.sign(stream_job("charged")).await;
    let r = n.post(jobs::STREAM_START_PATH, &job, Some(&n.payment(60).await), Some(b"{}")).await;
    assert_eq!(r.status, 200);
    let credited = 8_000_000_000f64;
    assert_eq!(n.balance(), credited - PRICE as f64, "one (rounded up) second of price");
    assert_eq!(r.header(jobs::HEADER_BALANCE), Some("7999999900"));
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some(&n.payment(60).await), None).await;
    assert_eq!(r.pair(), (200, ""));
    assert_eq!(r.header(jobs::HEADER_BALANCE), Some("15999999900"));
    // Neither update nor stop reports a balance.
    for path in [jobs::STREAM_UPDATE_PATH, jobs::STREAM_STOP_PATH] {
        assert!(n.post(path, &job, None, Some(b"{}")).await.header(jobs::HEADER_BALANCE).is_none());
    }
}

#[tokio::test]
async fn a_price_below_one_wei_per_second_is_free() {
    let n = start(|c| {
        for o in c.orchestrator.offers.iter_mut().filter(|o| o.model == CAP) {
            *o = CapabilityOffer { price_per_unit: 1, pixels_per_unit: 2, ..o.clone() };
        }
    })
    .await;
    let job = n.sign(stream_job("free")).await;
    // No payment needed, and a garbage one is not even decoded.
    let r = n.post(jobs::STREAM_START_PATH, &job, Some("%%%"), Some(b"{}")).await;
    assert_eq!((r.status, r.header(jobs::HEADER_BALANCE)), (200, Some("0")));
    let r = n.post("/process/request/reverse", &job, None, Some(br#"{"text":"ab"}"#)).await;
    assert_eq!((r.status, r.header(jobs::HEADER_BALANCE)), (200, Some("0")));
    let token: serde_json::Value = serde_json::from_str(&n.token(CAP).await.body).unwrap();
    assert_eq!(token["price"], serde_json::json!({"pixelsPerUnit": 1}));
    assert!(
        token["ticket_params"].get("face_value").is_none()
            && token["ticket_params"].get("win_prob").is_none()
    );
}

#[tokio::test]
async fn the_low_balance_warning_is_never_reset() {
    // One 6000 wei ticket buys the minute a start needs; every 2 s tick bills 60 s (6000 wei).
    let n = start(|c| {
        c.orchestrator.ticket_ev_wei = 6_000;
        c.orchestrator.ticket_face_value_wei = 6_000_000;
        c.orchestrator.byoc_debit_interval = Duration::from_secs(2);
        c.orchestrator.usage_time_scale = 30.0;
    })
    .await;
    let (first, top_up) = (n.payment(60).await, n.payment(120).await);
    assert_eq!(lp_rpc::from_base64::<Payment>("p", &top_up).unwrap().ticket_sender_params.len(), 2);
    let job = n.sign(stream_job("low")).await;
    let r = n.post(jobs::STREAM_START_PATH, &job, Some(&first), Some(b"{}")).await;
    assert_eq!(r.pair(), (200, ""));
    assert_eq!(n.balance(), MIN_BALANCE - PRICE as f64);
    // The first tick takes the balance to -100: go warns and lets the stream run.
    n.wait_for("the first negative tick", |n| n.balance() < 0.0).await;
    assert_eq!(n.net.orchestrator().stats().stopped_for_payment, 0);
    // A two-ticket top-up: 11900, so the next tick leaves 5900, a good balance...
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some(&top_up), None).await;
    assert_eq!((r.status, r.header(jobs::HEADER_BALANCE)), (200, Some("11900")));
    n.wait_for("a good tick", |n| n.balance() < 10_000.0).await;
    assert_eq!(n.balance(), MIN_BALANCE - PRICE as f64);
    assert_eq!(n.net.orchestrator().stats().stopped_for_payment, 0);
    // ...and the tick after, negative again, stops the stream at once: the warning still stands.
    // (Had a good tick reset it, that tick would warn and the next stop the stream at -6100.)
    n.wait_for("the stop", |n| n.net.orchestrator().stats().stopped_for_payment == 1).await;
    assert_eq!(n.balance(), -(PRICE as f64));
    assert_eq!(n.net.orchestrator().stats().active_sessions, 0);
    assert!(!n.net.orchestrator().trickle().has_channel("low-control"));
    // Stopped for balance, go frees nothing: the stream's capacity leaks.
    assert_eq!(n.available_capacity().await, CAPACITY - 1);
}
