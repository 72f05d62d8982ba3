//! Connections and orchestrators failing under a stream: a connection dropped mid-segment, an
//! orchestrator dying mid-job, interim `100 Continue` keepalives, a 5xx answered early.

use super::*;

// ---------------------------------------------------------------------------------------------
// 1. Connection dropped mid-segment
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_fails_one_segment_and_the_next_goes_through() {
    let (net, http, url) = plaintext_channel("drop").await;
    let mut publisher = TricklePublisher::start(
        http.clone(),
        &url,
        PublisherConfig { stall_timeout: STALL, ..Default::default() },
    )
    .await;
    let mut written = 0u64;
    let zero = Bytes::from_static(b"segment zero");
    written += zero.len() as u64;
    assert_eq!(publisher.write_segment(zero).await.unwrap(), 0);

    // A reader waiting on segment 1 must be released when it breaks, not left hanging.
    let mut reader = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(1), ..Default::default() },
    );
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(segment) = reader.next_segment().await.unwrap() {
            let seq = segment.seq();
            // A cut-short segment is an error for that segment only.
            let body = segment.read_all().await.map(|b| b.len()).ok();
            seen.push((seq, body));
            if seq >= 2 {
                break;
            }
        }
        seen
    });

    // The server aborts the connection after 10 kB of segment 1.
    net.orchestrator().trickle().set_fault("drop", TrickleFault::DropAfterBytes(10_000));
    let mut sink = publisher.next_segment().unwrap();
    assert_eq!(sink.seq(), 1);
    let chunk = Bytes::from(vec![5u8; 4096]);
    let mut write_error = None;
    for _ in 0..250 {
        written += chunk.len() as u64;
        if let Err(e) = bounded("a write to a dropped segment", STALL * 3, sink.write(chunk.clone())).await {
            write_error = Some(e);
            break;
        }
    }
    // Socket buffers may swallow every write; then the end of the segment reports it.
    let finish = bounded("finishing a dropped segment", STALL * 3, sink.finish()).await;
    let failure =
        write_error.or(finish.err()).expect("segment 1 was accepted although its connection dropped");
    assert!(matches!(failure, TrickleError::Segment { seq: 1, .. }), "{failure:?}");
    assert!(!failure.is_terminal(), "one dropped connection must not end the stream: {failure}");

    // The next segment goes through on the next sequence number.
    net.orchestrator().trickle().clear_faults("drop");
    let two = Bytes::from_static(b"segment two");
    written += two.len() as u64;
    assert_eq!(bounded("segment 2", GENEROUS, publisher.write_segment(two)).await.unwrap(), 2);
    let seen = bounded("the reader of the broken segment", GENEROUS, reader).await.unwrap();
    assert_eq!(seen.last(), Some(&(2, Some(11))), "the reader never got segment 2: {seen:?}");

    let stats = publisher.stats();
    assert_eq!(stats.bytes_sent + stats.bytes_failed, written, "every byte accounted for: {stats:?}");
    assert_eq!((stats.segments_completed, stats.segments_failed), (2, 1), "{stats:?}");
    assert!(publisher.terminal_error().is_none());
    publisher.close().await;
    net.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Orchestrator dies mid-job
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_dying_mid_job_ends_its_publisher_and_new_jobs_fail_over() {
    // 1e6 wei tickets (go's default is 8e9, which at the default price covers 80 hours of
    // 720p30): one covers ~36 s, so the fast signer clock below keeps making payments fall due.
    let orchestrator = OrchestratorConfig {
        ticket_ev_wei: 1_000_000,
        ticket_face_value_wei: 1_000_000_000,
        ..Default::default()
    };
    let config = NetworkConfig { orchestrators: 2, orchestrator, ..Default::default() };
    let net = LocalNetwork::start(config).await.unwrap();
    let gw = gateway_with(settings_for(&net));
    let job = gw.start_lv2v(Lv2vRequest::default()).await.unwrap();
    let urls = net.orchestrator_urls();
    let dead = urls.iter().position(|u| *u == job.orchestrator).unwrap();
    let survivor = 1 - dead;
    let mut publisher = job.publisher().await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"before the crash")).await.unwrap(), 0);

    // The orchestrator process dies: its listener closes and its connections are cut, with no
    // goodbye (no channel close) to the client.
    net.orchestrators[dead].server.stop();
    // Stopping is asynchronous; write only once the crash is complete.
    wait_until("the dead server has cut every connection", GENEROUS, || {
        net.orchestrators[dead].server.open_connections() == 0
    })
    .await;

    // The publisher reports segment errors and gives up after a few in a row; it never hangs.
    let terminal = bounded("the publisher noticing the crash", GENEROUS, async {
        loop {
            match publisher.write_segment(Bytes::from_static(b"after the crash")).await {
                Err(e) if e.is_terminal() => break e,
                Err(e) => assert!(matches!(e, TrickleError::Segment { .. }), "{e:?}"),
                Ok(seq) => panic!("segment {seq} accepted by a dead orchestrator"),
            }
        }
    })
    .await;
    assert!(matches!(terminal, TrickleError::Terminal { .. }), "{terminal:?}");
    assert!(publisher.next_segment().unwrap_err().is_terminal());

    // Payments to the dead orchestrator fail a bounded number of times, then stop for good.
    let stop = bounded("payments giving up on the dead orchestrator", GENEROUS, async {
        let stopped = job.payments_stopped();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                stop = &mut stopped => break stop,
                // Time passes faster for the signer, so a payment falls due every cycle.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    net.signer.advance_clock(Duration::from_secs(2));
                }
            }
        }
    })
    .await;
    assert!(matches!(stop, PaymentStop::TooManyFailures { failures: MAX_FAILED_CYCLES, .. }), "{stop:?}");
    let stats = job.payment_stats();
    assert!(stats.failures >= u64::from(MAX_FAILED_CYCLES), "{stats:?}");

    // A new job fails over to the survivor.
    let job2 = bounded("a job start after the crash", GENEROUS, gw.start_lv2v(Lv2vRequest::default()))
        .await
        .unwrap();
    assert_eq!(job2.orchestrator, urls[survivor]);
    let mut p2 = job2.publisher().await;
    assert_eq!(p2.write_segment(Bytes::from_static(b"on the survivor")).await.unwrap(), 0);
    p2.close().await;

    bounded("stopping the job on the dead orchestrator", GENEROUS, job.stop()).await.unwrap();
    bounded("stopping the job on the survivor", GENEROUS, job2.stop()).await.unwrap();
    wait_until("the survivor has no session", GENEROUS, || {
        net.orchestrators[survivor].orchestrator.stats().active_sessions == 0
    })
    .await;
    assert_eq!(net.orchestrators[dead].server.open_connections(), 0, "a connection to a dead server");
    // No leak: once the jobs, publishers and gateway are gone, so are the connections (pooled
    // idle ones included).
    drop(publisher);
    gw.shutdown();
    drop(gw);
    wait_until("the survivor holds no connection", GENEROUS, || {
        net.orchestrators[survivor].server.open_connections() == 0
    })
    .await;
    net.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 5b. Interim `100 Continue` keepalives
// ---------------------------------------------------------------------------------------------

/// A trickle server reduced to what go-livepeer does to an idle preconnected POST: every
/// `every` until the first body byte, an unsolicited `HTTP/1.1 100 Continue`. `/next` is a 404
/// (the publisher starts at 0). Each POST's de-chunked body is sent to the returned channel.
async fn continue_keepalive_server(
    every: Duration,
) -> (String, tokio::sync::mpsc::Receiver<(String, Vec<u8>, u32)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                let Some(head) = read_head(&mut socket, &mut data).await else { return };
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                if !head.starts_with("POST") {
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let mut body = data;
                let mut keepalives = 0;
                while !body.ends_with(b"0\r\n\r\n") {
                    if body.is_empty() {
                        // Idle: no body byte yet. Keep the request alive as go-livepeer does.
                        match tokio::time::timeout(every, socket.read(&mut buf)).await {
                            Err(_) => {
                                if socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                                    return;
                                }
                                keepalives += 1;
                            }
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(n)) => body.extend_from_slice(&buf[..n]),
                        }
                    } else {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => body.extend_from_slice(&buf[..n]),
                        }
                    }
                }
                let seq = path.rsplit('/').next().unwrap_or_default().to_owned();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nLp-Trickle-Seq: {seq}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = tx.send((path, dechunk_partial(&body), keepalives)).await;
            });
        }
    });
    (format!("http://{addr}/ai/trickle/keepalive"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interim_100_continue_keepalives_on_an_idle_preconnect_are_ignored() {
    let (url, mut received) = continue_keepalive_server(Duration::from_millis(100)).await;
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    // The preconnected POST for segment 0 idles through several keepalives.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let seq = bounded(
        "a segment after the keepalives",
        GENEROUS,
        publisher.write_segment(Bytes::from_static(b"after the keepalives")),
    )
    .await
    .unwrap();
    assert_eq!(seq, 0);
    let (path, body, keepalives) = bounded("the server's view", GENEROUS, received.recv()).await.unwrap();
    assert_eq!((path.as_str(), body.as_slice()), ("/ai/trickle/keepalive/0", &b"after the keepalives"[..]));
    assert!(keepalives >= 3, "only {keepalives} keepalives were sent while idle");
    // The next segment's preconnect went through the same keepalives and still lands.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(publisher.write_segment(Bytes::from_static(b"second")).await.unwrap(), 1);
    let (path, body, _) = bounded("the second segment", GENEROUS, received.recv()).await.unwrap();
    assert_eq!((path.as_str(), body.as_slice()), ("/ai/trickle/keepalive/1", &b"second"[..]));
}

// ---------------------------------------------------------------------------------------------
// 5c. A 5xx answered early, on a connection kept open
// ---------------------------------------------------------------------------------------------

/// A trickle server whose first POST is answered `503` at once, before any body byte, on a
/// connection it keeps open and goes on reading (as a server that answers early and drains the
/// body does); later POSTs are read to the end and answered `200`. Sends `(attempt, bytes the
/// server got, whether the body ended within 3 s)` for every POST of segment 0: for the first,
/// what arrived after its answer.
async fn early_503_server() -> (String, tokio::sync::mpsc::UnboundedReceiver<(usize, usize, bool)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (tx, posts) = (tx.clone(), posts.clone());
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = vec![0u8; 16 * 1024];
                // Requests one after another on the connection (keep-alive).
                loop {
                    let Some(head) = read_head(&mut socket, &mut data).await else { return };
                    if !head.starts_with("POST") {
                        let not_found =
                            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(not_found).await;
                        return;
                    }
                    if !head.split_whitespace().nth(1).is_some_and(|p| p.ends_with("/0")) {
                        // The next segment's preconnect: held, unanswered, until the client goes.
                        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                        return;
                    }
                    let attempt = posts.fetch_add(1, Ordering::SeqCst);
                    if attempt == 0 {
                        let early = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(early).await.is_err() {
                            return;
                        }
                    }
                    let body_end = loop {
                        if let Some(i) = data.windows(5).position(|w| w == b"0\r\n\r\n") {
                            break Some(i + 5);
                        }
                        match tokio::time::timeout(Duration::from_secs(3), socket.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => data.extend_from_slice(&buf[..n]),
                            _ => break None,
                        }
                    };
                    let body: Vec<u8> = data.drain(..body_end.unwrap_or(data.len())).collect();
                    let _ = tx.send((attempt, dechunk_partial(&body).len(), body_end.is_some()));
                    if body_end.is_none() {
                        return;
                    }
                    if attempt > 0 {
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(ok).await;
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/ai/trickle/early"), rx)
}

/// The payload of the complete chunks of a chunked body (stops at the first incomplete one).
fn dechunk_partial(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16) else {
            break;
        };
        if size == 0 || body.len() < line_end + 2 + size + 2 {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
    out
}

/// The retry after an early `503` must carry the whole segment: the first request, answered
/// but still open, must not take chunks meant for the retry. Otherwise the server completes a
/// short segment while the client counts every byte as delivered (found by the 10-minute
/// soak: one segment confirmed at 32 KiB, stored at 16 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_an_early_5xx_carries_the_whole_segment() {
    const CHUNKS: usize = 8;
    const CHUNK: usize = 4096;
    let (url, mut posts) = early_503_server().await;
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    // Let the preconnected POST get its early answer before the first chunk exists.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sink = publisher.next_segment().unwrap();
    let mut written = 0;
    for i in 0..CHUNKS {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if sink.write(Bytes::from(vec![i as u8; CHUNK])).await.is_err() {
            break;
        }
        written += CHUNK;
    }
    let finished = bounded("the segment's answer", GENEROUS, sink.finish()).await;
    let mut seen = BTreeMap::new();
    while seen.len() < 2 {
        match bounded("the server's view", GENEROUS, posts.recv()).await {
            Some((attempt, got, ended)) => seen.insert(attempt, (got, ended)),
            None => break,
        };
    }
    assert_eq!(publisher.stats().post_retries, 1, "the early 503 was retried");
    match finished {
        Ok(()) => {
            assert_eq!(written, CHUNKS * CHUNK);
            // The answered request took no chunk, and its body ended at once, so its connection
            // is not left hanging.
            assert_eq!(seen.get(&0), Some(&(0, true)), "{seen:?}");
            assert_eq!(seen.get(&1), Some(&(written, true)), "the retry carried the whole segment: {seen:?}");
        }
        Err(e) => panic!("a retry before any body byte must succeed here: {e}; server saw {seen:?}"),
    }
}
