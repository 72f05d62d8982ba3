//! Secrets: signer credentials in no log line and no error; signer TLS roots.

use super::*;

// ---------------------------------------------------------------------------------------------
// 7. Secrets
// ---------------------------------------------------------------------------------------------

const HEADER_SECRET: &str = "SECRET-bearer-5b1e9c77";
const QUERY_SECRET: &str = "SECRET-query-07d4aa31";

/// Whether the global capture layer records events right now.
static CAPTURING: AtomicBool = AtomicBool::new(false);

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Installs (once) a global TRACE-level subscriber writing into a buffer while [`CAPTURING`]
/// is set. Global, not `with_default`: the gateway logs from its own actor thread and from
/// tokio worker threads, which a thread-local default would not see. `log` records (reqwest)
/// are forwarded too.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(Capture(buffer.clone()))
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::filter_fn(|_| CAPTURING.load(Ordering::SeqCst)));
            tracing_subscriber::registry().with(layer).try_init().expect("no other global subscriber");
            buffer
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_credentials_appear_in_no_log_line_and_no_error() {
    let logs = captured_logs();
    let config = NetworkConfig {
        signer: SignerConfig { bearer_token: Some(HEADER_SECRET.into()), ..Default::default() },
        ..Default::default()
    };
    let net = LocalNetwork::start(config).await.unwrap();
    let headers: BTreeMap<String, String> =
        [("Authorization".to_owned(), format!("Bearer {HEADER_SECRET}"))].into();
    let dead_orchestrator = closed_port_url("https");
    let mut orchestrators = vec![dead_orchestrator];
    orchestrators.extend(net.orchestrator_urls());
    let network = NetworkSettings {
        orchestrators,
        signer: Some(format!("{}/?key={QUERY_SECRET}", net.signer_url())),
        signer_headers: headers.clone(),
        ..Default::default()
    };
    CAPTURING.store(true, Ordering::SeqCst);
    let gw = gateway_with(network.clone());
    let mut shown = vec![format!("{gw:?}"), format!("{:?}", gw.config())];

    // A working job: the signer refuses calls without the bearer token, so this proves the
    // credentials are in use.
    let job = bounded("a job with signer credentials", GENEROUS, gw.start_lv2v(Lv2vRequest::default()))
        .await
        .unwrap();
    wait_until("a payment cycle", GENEROUS, || {
        let s = job.payment_stats();
        s.payments_sent + s.cycles_skipped >= 1
    })
    .await;
    assert_eq!(net.signer.stats().unauthorized, 0);

    // The signer fails with 500: the running job's payments fail (logged), new jobs fail.
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/generate-live-payment".into()),
        status: 500,
        count: 0,
    });
    wait_until("a failed payment cycle", GENEROUS, || job.payment_stats().failures >= 1).await;
    let err = gw.start_lv2v(Lv2vRequest::default()).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);
    net.signer.set_fault(SignerFault::RespondStatus {
        endpoint: Some("/sign-byoc-job".into()),
        status: 500,
        count: 0,
    });
    let err = gw.start_byoc_job(ByocJobRequest::new("text-reversal")).await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}")]);
    net.signer.clear_faults();
    job.stop().await.unwrap();
    gw.shutdown();

    // The same credentials against a signer that is down.
    let unreachable = NetworkSettings {
        signer: Some(format!("{}/api/?key={QUERY_SECRET}", closed_port_url("http"))),
        ..network
    };
    let gw = gateway_with(unreachable);
    let err = gw.identity().await.unwrap_err();
    shown.extend([err.to_string(), format!("{err:?}"), format!("{gw:?}")]);
    gw.shutdown();
    CAPTURING.store(false, Ordering::SeqCst);

    for text in &shown {
        assert!(!text.contains("SECRET-"), "a secret in an error or debug output: {text}");
    }
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    // The capture saw the gateway's own threads (the signer retry is logged on the actor thread).
    assert!(logs.contains("signer call failed; retrying"), "capture saw nothing:\n{logs}");
    assert!(logs.contains("payment failed; retrying next cycle"), "capture saw nothing:\n{logs}");
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains("SECRET-")).collect();
    assert!(leaks.is_empty(), "secrets in {} log lines:\n{}", leaks.len(), leaks.join("\n"));
    net.shutdown().await;
}

/// Signers are checked against the system roots; a private CA can be added explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signer_tls_needs_a_trusted_root_and_accepts_an_added_ca() {
    use base64::Engine;
    let tls = gateway_testkit::tls::SelfSignedTls::generate(&[]).unwrap();
    let signer = gateway_testkit::signer::LocalSigner::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = gateway_testkit::serve::serve(listener, signer.router(), Some(tls.server_config.clone()));
    let network =
        NetworkSettings { signer: Some(format!("https://localhost:{}", addr.port())), ..Default::default() };

    let untrusted = Gateway::start(GatewayConfig { network: network.clone(), ..Default::default() }).unwrap();
    assert!(untrusted.identity().await.is_err(), "an unknown certificate must be refused");
    untrusted.shutdown();

    let b64 = base64::engine::general_purpose::STANDARD.encode(&tls.certificate_der);
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    let trusted = Gateway::start(GatewayConfig {
        network,
        signer_ca_pem: vec![pem.into_bytes()],
        ..Default::default()
    })
    .unwrap();
    let id = trusted.identity().await.unwrap().unwrap();
    assert_eq!(id.address_bytes, signer.address());
    trusted.shutdown();
    server.shutdown().await;
}
