//! `/process/request/*`: the worker's answers relayed, the timeout, server-sent events, methods.

use std::time::Duration;

use gateway_core::jobs::{self, JobRequest};

use crate::harness::{start, stream_job, CAPACITY, PRICE};
use crate::streams::fund;

fn request_job(id: &str) -> JobRequest {
    JobRequest { request: "{}".into(), ..stream_job(id) }
}

#[tokio::test]
async fn process_request_relays_a_worker_success_as_200_with_its_content_type() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let funded = n.balance();
    let job = n.sign(request_job("r1")).await;
    let r = n.post("/process/request/reverse", &job, None, Some(br#"{"text":"abc"}"#)).await;
    assert_eq!(r.pair(), (200, r#"{"reversed":"cba"}"#));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-metadata"), Some(""), "go copies the worker's (empty) X-Metadata");
    // One whole second of price, and the balance after it.
    let after = funded - PRICE as f64;
    assert_eq!(n.balance(), after);
    assert_eq!(r.header(jobs::HEADER_BALANCE), Some((after as i64).to_string().as_str()));
    let r = n.post("/process/request/reverse", &job, None, Some(b"xy")).await;
    assert_eq!(r.pair(), (200, "yx"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(n.available_capacity().await, CAPACITY, "freed after each answer");
}

#[tokio::test]
async fn process_request_relays_a_worker_error_with_its_status_and_a_newline() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let funded = n.balance();
    let r =
        n.post("/process/request/reverse", &n.sign(request_job("r2")).await, None, Some(br#"{"t":1}"#)).await;
    assert_eq!(r.pair(), (400, "missing \"text\"\n"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // A worker error is charged like a success.
    assert_eq!(n.balance(), funded - PRICE as f64);
    assert_eq!(n.available_capacity().await, CAPACITY);
}

#[tokio::test]
async fn process_request_timeout_is_500_context_canceled_and_leaks_capacity() {
    let n = start(|c| c.orchestrator.request_worker_delay = Duration::from_secs(5)).await;
    fund(&n).await;
    let funded = n.balance();
    let job = n.sign(JobRequest { timeout_seconds: 1, ..request_job("slow") }).await;
    let r = n.post("/process/request/reverse", &job, None, Some(br#"{"text":"abc"}"#)).await;
    assert_eq!(
        r.pair(),
        (
            500,
            "job not able to be processed, removing capability err=Post \"http://127.0.0.1:9876/reverse\": context canceled\n"
        )
    );
    // Charged for the time waited: a little over one second is two.
    let after = funded - 2.0 * PRICE as f64;
    assert_eq!(n.balance(), after);
    assert_eq!(r.header(jobs::HEADER_BALANCE), Some((after as i64).to_string().as_str()));
    assert_eq!(n.available_capacity().await, CAPACITY - 1, "go returns before it frees");
}

#[tokio::test]
async fn sse_answer_relays_events_announces_the_balance_before_done_and_stays_open() {
    let n = start(|_| {}).await;
    fund(&n).await;
    let funded = n.balance();
    let job = n.sign(JobRequest { timeout_seconds: 2, ..request_job("sse") }).await;
    let r = n.post("/process/request/stream", &job, None, Some(br#"{"text":"ab cd"}"#)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("livepeer-payment-balance"), Some((funded as i64).to_string().as_str()));
    assert!(r.header(jobs::HEADER_BALANCE).is_none());
    let events = format!(
        "data: {{\"reversed\":\"ba\"}}\n\ndata: {{\"reversed\":\"dc\"}}\n\ndata: {{\"balance\": {funded:.3}}}\n\n\ndata: [DONE]\n"
    );
    assert!(r.body.starts_with(&events), "{:?}", r.body);
    // go's reader closes its channel and the writer then sends blank lines until the job's
    // timeout ends the answer.
    let tail = &r.body[events.len()..];
    assert!(tail.len() > 2 && tail.bytes().all(|b| b == b'\n'), "tail {tail:?}");
    // Shorter than one 5 s debit tick: free.
    assert_eq!(n.balance(), funded);
    assert_eq!(n.available_capacity().await, CAPACITY);
}

#[tokio::test]
async fn methods_are_checked_on_token_and_request_but_not_on_stream_routes() {
    let n = start(|_| {}).await;
    let r = n.send(reqwest::Method::GET, "/process/request/x", None, None, None).await.unwrap();
    assert_eq!(r.pair(), (405, "Method not allowed\n"));
    let r = n.send(reqwest::Method::POST, jobs::PROCESS_TOKEN_PATH, None, None, None).await.unwrap();
    assert_eq!(r.pair(), (405, "Method not allowed\n"));
    for path in [jobs::STREAM_PAYMENT_PATH, jobs::STREAM_STOP_PATH, jobs::STREAM_UPDATE_PATH] {
        let r = n.send(reqwest::Method::GET, path, None, None, None).await.unwrap();
        let prefix = if path == jobs::STREAM_PAYMENT_PATH {
            "Failed to process payment"
        } else {
            "Failed to stop stream"
        };
        assert_eq!(
            r.pair(),
            (400, format!("{prefix}, request not valid err=Could not verify job creds\n").as_str())
        );
    }
    let r = n.send(reqwest::Method::PUT, jobs::STREAM_START_PATH, None, None, None).await.unwrap();
    assert_eq!(r.pair(), (400, "Could not verify job creds\n"));
}
