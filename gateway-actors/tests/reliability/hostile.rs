//! Bad input and hostile answers from trickle servers, signers, discovery and orchestrators.

use super::*;

// ---------------------------------------------------------------------------------------------
// 6. Bad input and hostile answers
// ---------------------------------------------------------------------------------------------

/// A server that answers every request with `head` and then `body`, and closes.
async fn hostile_server(head: &str, body: Bytes) -> String {
    let head = head.to_owned();
    scripted_server(move |_| (head.clone(), body.clone())).await
}

/// A server that answers its `n`th request (from 0) with `answer(n)`: a head, then a body.
async fn scripted_server(answer: impl Fn(usize) -> (String, Bytes) + Send + Sync + 'static) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (answer, requests) = (answer.clone(), requests.clone());
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 1 << 20 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let (head, body) = answer(requests.fetch_add(1, Ordering::SeqCst));
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // A client that stops reading ends this with a write error.
                for piece in body.chunks(64 * 1024) {
                    if socket.write_all(piece).await.is_err() {
                        return;
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sequence_numbers_from_a_trickle_server_give_typed_errors() {
    let http =
        HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator("http://127.0.0.1:1").unwrap();
    let head = |status: &str, headers: &str| {
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
    };
    let subscribe = |origin: String| {
        let config = SubscriberConfig { start: SeqSpec::At(0), max_retries: 2, ..Default::default() };
        TrickleSubscriber::new(http.clone(), &format!("{origin}/ai/trickle/absurd"), config)
    };

    // A segment claiming a request-only index, or numbers that are no i64: typed header errors.
    for seq in ["-2", "-1", "99999999999999999999", "12abc", "-9223372036854775808"] {
        let origin =
            hostile_server(&head("200 OK", &format!("Lp-Trickle-Seq: {seq}\r\n")), Bytes::new()).await;
        let err = bounded("a segment with an absurd seq", GENEROUS, subscribe(origin).next_segment()).await;
        assert!(matches!(err, Err(TrickleError::InvalidHeader { .. })), "Lp-Trickle-Seq {seq}: {err:?}");
    }

    // The largest index is a valid segment; the next index saturates instead of overflowing.
    let origin =
        hostile_server(&head("200 OK", &format!("Lp-Trickle-Seq: {}\r\n", i64::MAX)), Bytes::new()).await;
    let mut sub = subscribe(origin);
    let seg = bounded("a segment at i64::MAX", GENEROUS, sub.next_segment()).await.unwrap().unwrap();
    assert_eq!(seg.seq(), i64::MAX);

    // A live edge that runs away on every 470: bounded jumps, then a typed error.
    let origin = scripted_server(move |n| {
        let latest = 1000 * (n as i64 + 1);
        (head("470 Segment Not Available", &format!("Lp-Trickle-Latest: {latest}\r\n")), Bytes::new())
    })
    .await;
    let err = bounded("a runaway live edge", GENEROUS, subscribe(origin).next_segment()).await;
    assert!(matches!(err, Err(TrickleError::SequenceNotAvailable { .. })), "{err:?}");
}

fn json_head(status: &str, length: usize) -> String {
    format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n")
}

/// `body` in chunked transfer encoding (no length announced up front).
fn chunked(body: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + 1024);
    for piece in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    Bytes::from(out)
}

const CHUNKED_HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

async fn identity_error(signer: String) -> SignerError {
    let gw = Gateway::start(GatewayConfig {
        network: NetworkSettings { signer: Some(signer), ..Default::default() },
        ..Default::default()
    })
    .unwrap();
    let err = bounded("an identity call to a hostile signer", GENEROUS, gw.identity()).await.unwrap_err();
    gw.shutdown();
    match err {
        GatewayError::Signer(e) => e,
        other => panic!("not a signer error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signer_answers_give_typed_errors() {
    let ten_mb = vec![b'['; 10 * 1024 * 1024];
    // 10 MB announced: refused from the header.
    let url = hostile_server(&json_head("200 OK", ten_mb.len()), Bytes::from(ten_mb.clone())).await;
    let e = identity_error(url).await;
    assert!(
        matches!(&e, SignerError::InvalidResponse { reason, .. } if reason.contains("larger than")),
        "{e:?}"
    );
    // 10 MB without a length: refused while streaming, at the cap.
    let url = hostile_server(CHUNKED_HEAD, chunked(&ten_mb)).await;
    let e = identity_error(url).await;
    assert!(
        matches!(&e, SignerError::InvalidResponse { reason, .. } if reason.contains("larger than")),
        "{e:?}"
    );
    // Wrong JSON type.
    let url = hostile_server(&json_head("200 OK", 2), Bytes::from_static(b"[]")).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::InvalidResponse { .. }), "{e:?}");
    // Fields of the wrong type inside the right shape.
    let body = br#"{"address": 7, "signature": ["x"]}"#;
    let url = hostile_server(&json_head("200 OK", body.len()), Bytes::from_static(body)).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::InvalidResponse { .. }), "{e:?}");
    // Invalid UTF-8, as a success and as an error body.
    let garbage = Bytes::from_static(b"\xff\xfe\xfd{\"\xc3\x28");
    let url = hostile_server(&json_head("200 OK", garbage.len()), garbage.clone()).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::InvalidResponse { .. }), "{e:?}");
    let url = hostile_server(&json_head("500 Internal Server Error", garbage.len()), garbage).await;
    let e = identity_error(url).await;
    assert!(matches!(e, SignerError::Http { status: 500, .. }), "{e:?}");
    let _ = e.to_string(); // printable without panicking
}

async fn select(
    network: NetworkSettings,
) -> Result<livepeer_gateway_actors::selector::Selection, GatewayError> {
    let gw = Gateway::start(GatewayConfig { network, ..Default::default() }).unwrap();
    let query = ["live-video-to-video/noop".parse().unwrap()];
    let r = bounded("a selection against a hostile peer", GENEROUS, gw.select(&query, None)).await;
    gw.shutdown();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_discovery_and_orchestrator_answers_give_typed_errors() {
    // Discovery answering 10 MB of list.
    let url = hostile_server(CHUNKED_HEAD, chunked(&vec![b'['; 10 * 1024 * 1024])).await;
    let err = select(NetworkSettings { discovery: Some(url), ..Default::default() }).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::NoOrchestratorAvailable { .. })), "{err:?}");
    assert!(err.to_string().contains("larger than"), "{err}");
    // Discovery answering the wrong JSON type.
    let body = br#"{"orchestrators": 5}"#;
    let url = hostile_server(&json_head("200 OK", body.len()), Bytes::from_static(body)).await;
    let err = select(NetworkSettings { discovery: Some(url), ..Default::default() }).await.unwrap_err();
    assert!(matches!(err, GatewayError::Job(JobError::NoOrchestratorAvailable { .. })), "{err:?}");
    // An "orchestrator" that answers gRPC with HTTP/1.1 garbage is rejected with a reason.
    let url = hostile_server(&json_head("200 OK", 3), Bytes::from_static(b"\xff\x00\xfe")).await;
    let err =
        select(NetworkSettings { orchestrators: vec![url.clone()], ..Default::default() }).await.unwrap_err();
    match err {
        GatewayError::Job(JobError::NoOrchestratorAvailable { rejections }) => {
            assert_eq!(rejections.len(), 1, "{rejections:?}");
            assert!(!rejections[0].reason.to_string().is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_body_capped_stops_at_the_limit() {
    let _ = livepeer_gateway_actors::tls::provider(); // reqwest needs a process-wide rustls provider
    let http = reqwest::Client::new();
    let exactly = vec![b'a'; MAX_RESPONSE_BYTES];
    // At the limit: accepted, whether announced or streamed.
    let url = hostile_server(&json_head("200 OK", exactly.len()), Bytes::from(exactly.clone())).await;
    let body = read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.unwrap();
    assert_eq!(body.len(), MAX_RESPONSE_BYTES);
    let url = hostile_server(CHUNKED_HEAD, chunked(&exactly)).await;
    let body = read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.unwrap();
    assert_eq!(body.len(), MAX_RESPONSE_BYTES);
    // One byte over: refused, announced or streamed.
    let over = vec![b'a'; MAX_RESPONSE_BYTES + 1];
    let url = hostile_server(&json_head("200 OK", over.len()), Bytes::from(over.clone())).await;
    let t0 = Instant::now();
    assert!(read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.is_err());
    let url = hostile_server(CHUNKED_HEAD, chunked(&over)).await;
    assert!(read_body_capped(http.get(&url).send().await.unwrap(), MAX_RESPONSE_BYTES).await.is_err());
    assert!(t0.elapsed() < GENEROUS);
}
