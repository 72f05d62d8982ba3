//! `/ai/stream/start`, `/update`, `/stop`: bodies, parameters, the worker relay, duplicate ids.

use gateway_core::jobs::{self, JobRequest};
use serde_json::{json, Value};

use crate::harness::{start, stream_job, Net, CAPACITY, PRICE};

/// Credits one ticket to the signer's balance through `/ai/stream/payment`.
pub async fn fund(n: &Net) {
    let job = n.sign(stream_job("funding")).await;
    let payment = n.payment(60).await;
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, Some(&payment), None).await;
    assert_eq!(r.pair(), (200, ""));
}

/// Reads the events channel from its first segment until one matches `want`.
async fn find_event(n: &Net, events_url: &str, want: impl Fn(&Value) -> bool) -> Value {
    let read = async {
        for seq in 0.. {
            let r = n.http.get(format!("{events_url}/{seq}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "events segment {seq}");
            let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            if want(&v) {
                return v;
            }
        }
        unreachable!()
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read).await.expect("event arrives")
}

#[tokio::test]
async fn start_body_must_be_a_json_object_or_null() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let funded = n.balance();
    for (i, body) in [&b""[..], b"  ", b"[]", b"\"x\"", b"5", b"{", b"{\"a\":1} x"].into_iter().enumerate() {
        let job = n.sign(stream_job(&format!("bad-{i}"))).await;
        let r = n.post(jobs::STREAM_START_PATH, &job, None, Some(body)).await;
        assert_eq!(r.pair(), (400, "Invalid JSON body\n"), "body {:?}", String::from_utf8_lossy(body));
        // The channel headers were set before the check and ride on the error.
        assert!(r
            .header(jobs::HEADER_CONTROL_URL)
            .unwrap()
            .ends_with(&format!("/ai/trickle/bad-{i}-control")));
        assert!(
            !n.net.orchestrator().trickle().has_channel(&format!("bad-{i}-control")),
            "channel closed again"
        );
    }
    // Refused before the worker is called: nothing charged, every reservation freed.
    assert_eq!(n.balance(), funded);
    assert_eq!(n.available_capacity().await, CAPACITY);
    // `null` and an object with a duplicate key are what go's map decoding takes.
    for (id, body) in [("null-body", &b"null"[..]), ("dup-keys", b" {\"a\":1,\"a\":2} ")] {
        let r = n.post(jobs::STREAM_START_PATH, &n.sign(stream_job(id)).await, None, Some(body)).await;
        assert_eq!(r.pair(), (200, ""), "{id}");
    }
    assert_eq!(n.available_capacity().await, CAPACITY - 2);
}

#[tokio::test]
async fn start_parameters_are_parsed_after_payment_and_a_bad_one_leaks_capacity() {
    let n = start(|_| {}).await;
    let empty = JobRequest { parameters: String::new(), ..stream_job("no-params") };
    let r =
        n.post(jobs::STREAM_START_PATH, &n.sign(empty).await, Some(&n.payment(60).await), Some(b"{}")).await;
    assert_eq!(r.pair(), (400, "unexpected end of JSON input\n"));
    assert!(n.balance() > 0.0, "the payment was credited before parameters were read");
    assert_eq!(n.available_capacity().await, CAPACITY - 1, "go leaks the reservation");
    let wrong =
        JobRequest { parameters: r#"{"enable_data_output":"yes"}"#.into(), ..stream_job("wrong-params") };
    let r = n.post(jobs::STREAM_START_PATH, &n.sign(wrong).await, None, Some(b"{}")).await;
    assert_eq!(
        r.pair(),
        (400, "json: cannot unmarshal string into Go struct field JobParameters.enable_data_output of type bool\n")
    );
    assert_eq!(n.available_capacity().await, CAPACITY - 2);
    // `null` parameters are no parameters.
    let null = JobRequest { parameters: "null".into(), ..stream_job("null-params") };
    let r = n.post(jobs::STREAM_START_PATH, &n.sign(null).await, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (200, ""));
    assert!(r.header(jobs::HEADER_DATA_URL).is_none() && r.header(jobs::HEADER_EVENTS_URL).is_some());
}

#[tokio::test]
async fn update_is_relayed_to_the_worker_without_checking_the_stream() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let funded = n.balance();
    // The orchestrator does not know "ghost"; the worker does not either and says so.
    let r = n.post(jobs::STREAM_UPDATE_PATH, &n.sign(stream_job("ghost")).await, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (404, "stream not found"), "the worker's answer, verbatim");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"), "sniffed, as net/http does");
    assert!(r.header(jobs::HEADER_BALANCE).is_none());

    let r = n.post(jobs::STREAM_START_PATH, &n.sign(stream_job("live")).await, None, Some(b"{}")).await;
    assert_eq!(r.status, 200);
    let events = r.header(jobs::HEADER_EVENTS_URL).unwrap().to_owned();
    let r = n
        .post(jobs::STREAM_UPDATE_PATH, &n.sign(stream_job("live")).await, None, Some(br#"{"prompt":"cat"}"#))
        .await;
    assert_eq!(r.pair(), (200, r#"{"status":"ok"}"#));
    let event = find_event(&n, &events, |v| v["type"] == "params_updated").await;
    assert_eq!(event["params"], json!({"prompt": "cat"}));
    // Update charges nothing (start charged one second).
    assert_eq!(n.balance(), funded - PRICE as f64);
}

#[tokio::test]
async fn duplicate_stream_id_is_500_after_charging_and_closes_the_live_streams_channels() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let funded = n.balance();
    let job = n.sign(stream_job("dup")).await;
    let first = n.post(jobs::STREAM_START_PATH, &job, None, Some(b"{}")).await;
    assert_eq!(first.pair(), (200, ""));
    assert!(n.net.orchestrator().trickle().has_channel("dup-control"));
    let second = n.post(jobs::STREAM_START_PATH, &job, None, Some(b"{}")).await;
    assert_eq!(second.pair(), (500, "Error adding stream to external capabilities\n"));
    // The worker was called and the second start charged before the stream map said no.
    let after = funded - 2.0 * PRICE as f64;
    assert_eq!(n.balance(), after);
    assert_eq!(second.header(jobs::HEADER_BALANCE), Some((after as i64).to_string().as_str()));
    // Its cleanup closed the channels by name: the live stream's.
    assert!(!n.net.orchestrator().trickle().has_channel("dup-control"));
    assert!(!n.net.orchestrator().trickle().has_channel("dup-events"));
    // The live stream stays registered, holding its capacity.
    assert_eq!(n.net.orchestrator().stats().active_sessions, 1);
    assert_eq!(n.available_capacity().await, CAPACITY - 1);
}

#[tokio::test]
async fn unregistered_capability_is_503_on_requests_and_400_on_start() {
    let n = start(|_| {}).await;
    // An unregistered capability is priced 0: no payment is asked for.
    let job = n.sign(JobRequest { capability: "nope".into(), ..stream_job("nope-1") }).await;
    let r = n.post("/process/request/x", &job, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (503, "No capacity available for capability\n"));
    let r = n.post(jobs::STREAM_START_PATH, &job, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (400, "No capacity available for capability\n"));
    // The routes that reserve nothing get past setup; update has no worker URL to call.
    let r = n.post(jobs::STREAM_UPDATE_PATH, &job, None, Some(b"{}")).await;
    assert_eq!(r.pair(), (500, "Error sending request to worker\n"));
    let r = n.post(jobs::STREAM_STOP_PATH, &job, None, None).await;
    assert_eq!(r.pair(), (200, ""));
    let r = n.post(jobs::STREAM_PAYMENT_PATH, &job, None, None).await;
    assert_eq!((r.status, r.header(jobs::HEADER_BALANCE)), (200, Some("0")));
    assert_eq!(n.available_capacity().await, CAPACITY);
}
