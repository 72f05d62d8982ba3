//! BYOC training (issue 17) against the orchestrator double that answers as go-livepeer's
//! `byoc/training.go` does: a paid submit, status polls with progress, charges while the job
//! runs, a job cancelled when its balance runs out unless the client tops it up, cancel, and
//! go's refusals for each route.

use std::time::Duration;

use gateway_core::rejection::JobError;
use gateway_core::token::NetworkSettings;
use gateway_core::training::{TrainingState, ERROR_CANCELLED_BY_USER, ERROR_INSUFFICIENT_BALANCE};
use gateway_testkit::network::{LocalNetwork, NetworkConfig};
use gateway_testkit::orchestrator::PaymentRoute;
use livepeer_gateway_actors::{Gateway, GatewayConfig, GatewayError, TrainingRequest, WaitOptions};

fn gateway_for(net: &LocalNetwork) -> Gateway {
    let network = NetworkSettings {
        orchestrators: net.orchestrator_urls(),
        signer: Some(net.signer_url()),
        ..Default::default()
    };
    Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap()
}

/// One plaintext orchestrator whose training takes `duration`, polled and charged quickly;
/// each real second billed as `time_scale` seconds.
async fn network(duration: Duration, time_scale: f64) -> LocalNetwork {
    network_with(duration, time_scale, NetworkConfig::default().orchestrator.ticket_ev_wei).await
}

/// [`network`] with tickets of `ticket_ev_wei` expected value.
async fn network_with(duration: Duration, time_scale: f64, ticket_ev_wei: u128) -> LocalNetwork {
    let mut config = NetworkConfig { orchestrators: 1, tls: false, ..Default::default() };
    config.orchestrator.training_duration = duration;
    config.orchestrator.training_poll_interval = Duration::from_millis(100);
    config.orchestrator.training_charge_interval = Duration::from_millis(300);
    config.orchestrator.usage_time_scale = time_scale;
    config.orchestrator.ticket_ev_wei = ticket_ev_wei;
    LocalNetwork::start(config).await.unwrap()
}

fn fast_wait() -> WaitOptions {
    WaitOptions {
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
        top_up_below_wei: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_training_job_reports_progress_and_completes_with_its_outputs() {
    let net = network(Duration::from_millis(1500), 1.0).await;
    let gw = gateway_for(&net);
    let mut request = TrainingRequest::new("text-reversal", "flux-dev");
    request.params.insert("steps".into(), 100.into());
    let job = gw.submit_training(request).await.unwrap();
    assert_eq!(job.job_id.len(), 8, "go's job ids are 8 hex digits: {}", job.job_id);
    assert!(job.job_id.chars().all(|c| c.is_ascii_hexdigit()));

    let mut seen = Vec::new();
    let last = job.wait(&fast_wait(), |s| seen.push((s.state(), s.progress))).await.unwrap();
    assert_eq!(last.state(), TrainingState::Completed, "{last:?}");
    assert_eq!(last.progress, 100);
    assert_eq!(last.model_id, "flux-dev");
    assert_eq!(last.capability, "text-reversal");
    let lora = last.lora_url().expect("a LoRA file URL");
    assert!(lora.ends_with(&format!("/files/{}/lora.safetensors", job.job_id)), "{lora}");
    assert!(
        seen.iter().any(|(s, p)| *s == TrainingState::Running && (1..100).contains(p)),
        "progress: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "progress only grows: {seen:?}");
    // Priced: charged while it ran, the balance after shown.
    let cost: f64 = last.cost.parse().unwrap();
    assert!(cost > 0.0, "{last:?}");
    assert!(last.balance_wei().is_some(), "{last:?}");
    assert!(last.created_at.ends_with('Z') && last.created_at.contains('T'), "{}", last.created_at);
    let ledger = net.orchestrator().ledger().lines();
    assert_eq!(ledger[&PaymentRoute::TrainingSubmit].payments, 1, "{ledger:?}");

    // Done: go refuses a cancel and a refresh of a finished job.
    let err = job.cancel().await.unwrap_err();
    assert!(
        matches!(&err, JobError::Http { status: 400, message, .. } if message.contains("Job already completed")),
        "{err}"
    );
    let err = job.refresh_payment().await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Job(JobError::Http { status: 400, message, .. })
            if message.contains("Job is completed, cannot refresh payment")),
        "{err}"
    );
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_without_top_ups_runs_out_of_balance_and_top_ups_are_credited() {
    // Every real second billed as a minute: the 60 s bought with the submit last about one.
    // Tickets worth little, so a payment buys about what it is for (60 s), not one ticket's
    // much larger expected value.
    let net = network_with(Duration::from_secs(3), 60.0, 100).await;
    let gw = gateway_for(&net);

    let starved = gw.submit_training(TrainingRequest::new("text-reversal", "m1")).await.unwrap();
    let last = starved.wait(&fast_wait(), |_| {}).await.unwrap();
    assert_eq!(last.state(), TrainingState::Cancelled, "{last:?}");
    assert_eq!(last.error.as_deref(), Some(ERROR_INSUFFICIENT_BALANCE));
    assert!(last.balance_wei().unwrap() < 0.0, "go cancels once the balance is negative: {last:?}");

    gw.shutdown();
    net.shutdown().await;

    // Topped up: the remote signer pays for the time since the last payment (as for every
    // live payment), so at real-time billing each top-up covers what the job used meanwhile.
    // go keeps one balance per sender and capability, shared by its jobs (the debt above would
    // refuse the next submit with 400 "Insufficient balance for request"): a fresh orchestrator.
    let net = network_with(Duration::from_millis(1500), 1.0, 100).await;
    let gw = gateway_for(&net);
    let fed = gw.submit_training(TrainingRequest::new("text-reversal", "m2")).await.unwrap();
    let start_balance = fed.status().await.unwrap().balance_wei().unwrap();
    assert!(start_balance > 0.0);
    let options = WaitOptions { top_up_below_wei: Some(start_balance + 1.0), ..fast_wait() };
    let last = fed.wait(&options, |_| {}).await.unwrap();
    assert_eq!(last.state(), TrainingState::Completed, "{last:?}");
    let refreshed = net.orchestrator().ledger().lines()[&PaymentRoute::TrainingRefresh];
    assert!(refreshed.payments >= 1 && refreshed.ev_wei > 0.0, "{refreshed:?}");
    let cost: f64 = last.cost.parse().unwrap();
    let balance = last.balance_wei().unwrap();
    assert!(
        (balance - (start_balance + refreshed.ev_wei - cost)).abs() < 1.0,
        "balance {balance} = start {start_balance} + top-ups {} - cost {cost}",
        refreshed.ev_wei
    );
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_gos_refusals() {
    let net = network(Duration::from_secs(30), 1.0).await;
    let gw = gateway_for(&net);

    let job = gw.submit_training(TrainingRequest::new("text-reversal", "m")).await.unwrap();
    job.cancel().await.unwrap();
    let status = job.status().await.unwrap();
    assert_eq!(status.state(), TrainingState::Cancelled);
    assert_eq!(status.error.as_deref(), Some(ERROR_CANCELLED_BY_USER));
    let err = job.cancel().await.unwrap_err();
    assert!(
        matches!(&err, JobError::Http { status: 400, message, .. } if message.contains("Job already cancelled")),
        "{err}"
    );

    // An empty model is refused before anything is paid.
    let err = gw.submit_training(TrainingRequest::new("text-reversal", "")).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::InvalidRequest(_))), "{err}");
    // An unregistered capability: go's 503, so no orchestrator could take it.
    let err = gw.submit_training(TrainingRequest::new("no-such-capability", "m")).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::NoOrchestratorAvailable { .. })), "{err}");

    // go's plain-text answers on the job routes.
    let http = reqwest::Client::new();
    let base = &net.orchestrator_urls()[0];
    let r = http.get(format!("{base}/process/job/00000000")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "Job not found\n");
    let job = gw.submit_training(TrainingRequest::new("text-reversal", "m")).await.unwrap();
    let r = http.post(format!("{base}/process/job/{}/refresh-payment", job.job_id)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "Livepeer-Payment header required\n");
    let r = http.delete(format!("{base}/process/job/{}/cancel", job.job_id)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    gw.shutdown();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_worker_ends_the_job_as_failed() {
    let net = network(Duration::from_millis(300), 1.0).await;
    let gw = gateway_for(&net);
    let mut failing = TrainingRequest::new("text-reversal", "m");
    failing.params.insert("fail".into(), true.into());
    let job = gw.submit_training(failing).await.unwrap();
    let last = job.wait(&fast_wait(), |_| {}).await.unwrap();
    assert_eq!(last.state(), TrainingState::Failed, "{last:?}");
    assert!(last.error.as_deref().is_some_and(|e| e.contains("params.fail")), "{last:?}");
    assert!(last.lora_url().is_none());
    gw.shutdown();
    net.shutdown().await;
}
