//! The BYOC client against an orchestrator double that answers as go-livepeer does (issue 13,
//! points 3 to 8): single-shot requests that wait the job's timeout, fail over only where go's
//! gateway does, pass the content type, stream their answers and are not capped; starts that
//! wait the job's timeout plus 5 s and stop what they abandon; payments that survive a 400, a
//! 402 retry that carries a real payment, a stop that pays when the balance is short, and the
//! job id as manifest id.

use std::time::Duration;

use bytes::Bytes;
use gateway_core::rejection::JobError;
use gateway_core::rejection::RejectionReason;
use gateway_core::token::NetworkSettings;
use gateway_testkit::faults::OrchestratorFault;
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use livepeer_gateway_actors::{ByocJobRequest, ByocRequest, Gateway, GatewayConfig, GatewayError};

fn gateway_for(net: &LocalNetwork, byoc_payment_interval: Duration) -> Gateway {
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    let config = GatewayConfig { network, byoc_payment_interval, ..Default::default() };
    Gateway::start(config).unwrap()
}

fn plaintext(orchestrators: usize) -> NetworkConfig {
    NetworkConfig { orchestrators, tls: false, ..Default::default() }
}

/// Polls `condition` every 50 ms for up to `limit`.
async fn eventually(limit: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_request_streams_its_events_and_passes_the_content_type() {
    let net = LocalNetwork::start(plaintext(1)).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    let mut request = ByocRequest::new("text-reversal", "stream", Bytes::from_static(b"one two three"));
    request.content_type = Some("text/plain".into());
    let mut response = gw.byoc_request_stream(request).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.is_event_stream(), "{:?}", response.content_type);
    assert!(response.balance.is_some(), "the balance comes back");
    let mut events = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        events.push(chunk.len());
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if text.contains("[DONE]") {
            break;
        }
    }
    assert!(events.len() > 1, "the answer arrived in pieces: {events:?}");
    for word in ["eno", "owt", "eerht"] {
        assert!(text.contains(&format!("{{\"reversed\":\"{word}\"}}")), "{text}");
    }
    assert!(text.contains("\"balance\""), "go announces the balance before [DONE]: {text}");
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_request_waits_the_jobs_timeout_and_is_not_capped() {
    let mut config = plaintext(1);
    // Longer than the 10 s a start was given before.
    config.orchestrator.request_worker_delay = Duration::from_secs(11);
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    // 6 MiB of text, reversed: more than the 4 MiB the client used to accept.
    let body: String = "abcdefgh".repeat(6 * 1024 * 1024 / 8);
    let mut request = ByocRequest::new("text-reversal", "", Bytes::from(body.clone()));
    request.timeout_seconds = 30;
    let (status, answer) = {
        let response = gw.byoc_request_stream(request).await.unwrap();
        let status = response.status;
        let mut file = Vec::new();
        let written = response.write_to(&mut file).await.unwrap();
        assert_eq!(written as usize, body.len());
        (status, file)
    };
    assert_eq!(status, 200);
    assert_eq!(answer, body.chars().rev().collect::<String>().into_bytes());

    // A job timeout shorter than the worker: go's orchestrator answers 500 "context canceled"
    // and the client, finding no other orchestrator, says so.
    let mut short = ByocRequest::new("text-reversal", "", Bytes::from_static(b"x"));
    short.timeout_seconds = 1;
    let err = gw.byoc_request_stream(short).await.unwrap_err();
    let GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) = err else { panic!("{err}") };
    assert!(
        matches!(&rejections[0].reason, RejectionReason::Http { status: 500, excerpt, .. } if excerpt.contains("context canceled")),
        "{rejections:?}"
    );
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byoc_request_fails_over_on_5xx_and_returns_4xx() {
    let net = LocalNetwork::start(plaintext(2)).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    let (first, second) = (&net.orchestrators[0].orchestrator, &net.orchestrators[1].orchestrator);
    // The first orchestrator fails every request with a 5xx: whichever is tried first, the
    // answer comes from the second.
    first.set_fault(OrchestratorFault::RespondStatus {
        path: "/process/request/".into(),
        status: 500,
        count: 100,
    });
    let response = gw
        .byoc_request_stream(ByocRequest::new("text-reversal", "", Bytes::from_static(br#"{"text":"ab"}"#)))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.orchestrator, net.orchestrator_urls()[1].trim_end_matches('/'));
    assert_eq!(response.content_type.as_deref(), Some("application/json"), "the worker's type passes");
    assert_eq!(response.bytes(1024).await.unwrap(), Bytes::from_static(br#"{"reversed":"ba"}"#));
    first.clear_faults();

    // A 4xx is the caller's answer, as in go: no failover.
    for o in [first, second] {
        o.set_fault(OrchestratorFault::RespondStatus {
            path: "/process/request/".into(),
            status: 400,
            count: 1,
        });
    }
    let served_before = first.stats().requests_served + second.stats().requests_served;
    let (status, body) = gw.byoc_request("text-reversal", "", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(status, 400, "{body:?}");
    assert_eq!(first.stats().requests_served + second.stats().requests_served, served_before);
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_start_is_stopped_on_its_orchestrator() {
    let net = LocalNetwork::start(plaintext(1)).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    // The start answers after 8 s; with a 1 s job timeout the client waits 6 s.
    net.orchestrator().set_fault(OrchestratorFault::Delay {
        path: "/ai/stream/start".into(),
        delay_ms: 8_000,
        count: 1,
    });
    let mut request = ByocJobRequest::new("text-reversal");
    request.timeout_seconds = 1;
    let err = gw.start_byoc_job(request).await.unwrap_err();
    assert!(err.to_string().contains("the start was stopped"), "{err}");
    // The orchestrator started the stream late; the client stopped it.
    let o = net.orchestrator();
    assert!(eventually(Duration::from_secs(15), || o.stats().byoc_streams_started == 1).await);
    assert!(eventually(Duration::from_secs(15), || o.stats().active_sessions == 0).await, "{:?}", o.stats());
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_402_on_start_is_retried_with_a_real_payment() {
    let net = LocalNetwork::start(plaintext(1)).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    net.orchestrator().set_fault(OrchestratorFault::RespondStatus {
        path: "/ai/stream/start".into(),
        status: 402,
        count: 1,
    });
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    // The signer minted twice, and the retry's payment is what the orchestrator credited (the
    // injected 402 answered before the first reached it): the retry was not an empty header.
    assert_eq!(net.signer.stats().payments_minted, 2);
    assert_eq!(net.orchestrator().stats().payments_accepted, 1);
    // Issue 13.8: BYOC payments name the job as manifest id, with type byoc.
    let signer = net.signer.stats();
    assert_eq!(signer.last_manifest_id.as_deref(), Some(job.stream_id.as_str()));
    assert_eq!(signer.last_payment_type.as_deref(), Some("byoc"));
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byoc_payments_go_on_after_a_400() {
    let net = LocalNetwork::start(plaintext(1)).await.unwrap();
    let gw = gateway_for(&net, Duration::from_millis(200));
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    net.orchestrator().set_fault(OrchestratorFault::RespondStatus {
        path: "/ai/stream/payment".into(),
        status: 400,
        count: 1,
    });
    let ok = eventually(Duration::from_secs(10), || {
        let s = job.payment_stats();
        s.failures >= 1 && s.cycles_skipped + s.payments_sent >= 2
    })
    .await;
    let stats = job.payment_stats();
    assert!(ok, "{stats:?}");
    assert_eq!(stats.stopped, None, "a 400 is not the end: {stats:?}");
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_a_short_balance_carries_a_payment() {
    let mut config = plaintext(1);
    // One ticket is 6000 wei, 60 s at 100 wei/s; each 1 s tick bills 30 s.
    config.orchestrator.ticket_ev_wei = 6_000;
    config.orchestrator.ticket_face_value_wei = 6_000_000;
    config.orchestrator.byoc_debit_interval = Duration::from_secs(1);
    config.orchestrator.usage_time_scale = 30.0;
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(3600));
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    let sender = net.signer.address();
    let o = net.orchestrator();
    // Below the 60 s go's orchestrator wants on every route, stop included.
    assert!(eventually(Duration::from_secs(10), || o.balance(&sender, "text-reversal") < 6_000.0).await);
    // The signer sees the same time pass.
    net.signer.advance_clock(Duration::from_secs(200));
    let minted = net.signer.stats().payments_minted;
    job.stop().await.unwrap();
    assert_eq!(net.signer.stats().payments_minted, minted + 1, "the stop paid");
    assert!(eventually(Duration::from_secs(5), || o.stats().active_sessions == 0).await, "{:?}", o.stats());
    gw.shutdown();
    net.shutdown().await;
}

/// Issue 13.9: go-livepeer master has no `/sign-byoc-job`, refuses payment type `byoc`, and its
/// orchestrators verify the older signature over `request + parameters`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_livepeer_master_is_named_in_the_error() {
    use gateway_testkit::GoVersion;
    // A master signer: the job cannot be signed, and the error says what the signer lacks.
    let mut config = plaintext(1);
    config.signer.go_version = GoVersion::Master;
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    let err = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap_err();
    assert!(
        matches!(err, GatewayError::Signer(gateway_core::error::SignerError::Unsupported { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("BYOC job signing") && err.to_string().contains("#3869"), "{err}");
    gw.shutdown();
    net.shutdown().await;

    // A master orchestrator refuses the V1 signature of a #3869 signer; the rejection says why.
    let mut config = plaintext(1);
    config.orchestrator.go_version = GoVersion::Master;
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    let err = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Could not verify job creds") && text.contains("go-livepeer master"), "{text}");
    gw.shutdown();
    net.shutdown().await;

    // Offchain, a master orchestrator checks no signature: the job runs without a signer.
    let mut config = plaintext(1);
    config.orchestrator.go_version = GoVersion::Master;
    config.orchestrator.offchain = true;
    let net = LocalNetwork::start(config).await.unwrap();
    let network = NetworkSettings { orchestrators: net.orchestrator_urls(), ..Default::default() };
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    job.stop().await.unwrap();
    gw.shutdown();
    net.shutdown().await;
}

/// Issue 13.2: an orchestrator whose price is 0 still sends ticket parameters; go's gateway and
/// the Python SDK pay nothing there (a signer refuses it: "missing or zero priceInfo").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_orchestrator_is_not_paid_and_the_stats_say_so() {
    let mut config = plaintext(1);
    for offer in &mut config.orchestrator.offers {
        offer.price_per_unit = 0;
    }
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_for(&net, Duration::from_millis(200));
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    assert_eq!(
        job.payments_stopped().await,
        livepeer_gateway_actors::payments::PaymentStop::FreeOrchestrator
    );
    let (status, _) = gw.byoc_request("text-reversal", "", Bytes::from_static(b"ab")).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(net.signer.stats().generate_live_payment_calls, 0, "the signer was never asked");
    job.stop().await.unwrap();
    assert_eq!(net.orchestrator().stats().active_sessions, 0);
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_reaches_the_worker_and_oversized_or_late_ones_are_refused() {
    let net = LocalNetwork::start(plaintext(1)).await.unwrap();
    let gw = gateway_for(&net, Duration::from_secs(50));
    let job = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    let mut events = job.events().unwrap();
    let answer = job.update(Bytes::from_static(br#"{"prompt":"a cat","strength":0.4}"#)).await.unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&answer).unwrap()["status"], "ok");
    // The worker announces what it applied on the events channel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let applied = loop {
        let ev = tokio::time::timeout_at(deadline, events.next()).await.expect("no params_updated event");
        let ev = ev.unwrap().expect("events ended");
        if ev["type"] == "params_updated" {
            break ev;
        }
    };
    assert_eq!(applied["params"]["prompt"], "a cat");
    assert_eq!(net.orchestrator().stats().active_sessions, 1, "an update does not restart the stream");

    // Above go's 10 MB: refused before any call.
    let big = Bytes::from(vec![b' '; gateway_core::jobs::MAX_STREAM_UPDATE_BYTES + 1]);
    let err = job.update(big).await.unwrap_err();
    assert!(matches!(err, JobError::InvalidRequest(_)), "{err}");

    // A stream the orchestrator has ended: the worker's 404 comes back typed.
    net.orchestrator().stop_all_sessions();
    let err = job.update(Bytes::from_static(b"{}")).await.unwrap_err();
    assert!(
        matches!(&err, JobError::Http { status: 404, endpoint, .. } if endpoint == "/ai/stream/update"),
        "{err}"
    );
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_gateway_updates_a_stream_by_its_id_on_whichever_orchestrator_runs_it() {
    let net = LocalNetwork::start(plaintext(2)).await.unwrap();
    let starter = gateway_for(&net, Duration::from_secs(50));
    let job = starter.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap();
    let mut events = job.events().unwrap();

    // A second gateway (another process, in real use) knows only the capability and the id.
    let updater = gateway_for(&net, Duration::from_secs(50));
    let updated = updater
        .update_byoc_stream("text-reversal", &job.stream_id, Bytes::from_static(br#"{"prompt":"a dog"}"#))
        .await
        .unwrap();
    assert_eq!(updated.orchestrator, job.orchestrator, "the orchestrator running the stream answered");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&updated.body).unwrap()["status"], "ok");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next()).await.expect("no params_updated event");
        let ev = ev.unwrap().expect("events ended");
        if ev["type"] == "params_updated" {
            assert_eq!(ev["params"]["prompt"], "a dog");
            break;
        }
    }

    // No orchestrator runs this id: each says so (the worker's 404), typed.
    let err = updater
        .update_byoc_stream("text-reversal", "no-such-stream", Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    let GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) = err else { panic!("{err}") };
    assert_eq!(rejections.len(), 2, "{rejections:?}");
    assert!(
        rejections.iter().all(|r| matches!(r.reason, RejectionReason::Http { status: 404, .. })),
        "{rejections:?}"
    );
    let err = updater.update_byoc_stream("text-reversal", "bad/id", Bytes::new()).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::InvalidRequest(_))), "{err}");
    job.stop().await.unwrap();
    starter.shutdown();
    updater.shutdown();
    net.shutdown().await;
}
