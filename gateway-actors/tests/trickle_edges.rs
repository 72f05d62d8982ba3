//! Trickle edges found with go-livepeer's own client and server (issue 13), over real sockets:
//! the testkit trickle server, or a raw-socket server where the order of requests on the wire
//! is what is checked.
//!
//! - A segment that fails mid-piece drains the rest of its piece, and the next piece rolls into
//!   the next segment; once the publisher gives up, every write fails at once (13.11, 13.12).
//! - `close` deletes the channel before it drops the preconnected POST, so subscribers see a
//!   clean end and no trailing empty segment (13.13).
//! - A subscriber that fell out of the server's window skips to the live edge, counts and
//!   announces what it skipped, or fails as go's does; one ahead of the live edge announces
//!   its wait and gives up after its timeout (13.14).
//!
//! Every wait for something to happen is bounded by a generous deadline; nothing asserts on
//! how long something took.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_testkit::serve::{serve, ServerHandle};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleFault, TrickleServer};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::tls::OrchestratorTrust;
use livepeer_gateway_actors::trickle::{
    BehindWindow, EndReason, LedgerTotals, PublisherConfig, SegmentedPublisher, SubscriberConfig,
    SubscriberNotice, TricklePublisher, TrickleSubscriber,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::read_head;

const GENEROUS: Duration = Duration::from_secs(20);
const STALL: Duration = Duration::from_millis(800);

/// Awaits `fut`, panicking if it takes longer than `within` (a hang is the failure).
async fn bounded<T>(what: &str, within: Duration, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(within, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {within:?}"),
    }
}

/// A testkit trickle server on 127.0.0.1 with channel `name`, and a client for it.
async fn trickle_channel(name: &str) -> (TrickleServer, ServerHandle, reqwest::Client, String) {
    let server = TrickleServer::new(TrickleConfig::default());
    assert!(server.create_channel(name, MIME_MPEGTS));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = serve(listener, server.router(), None);
    let url = channel_url(&format!("http://{}", handle.addr), name);
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    (server, handle, http, url)
}

// ---------------------------------------------------------------------------------------------
// 13.11 and 13.12: drain and roll over a plain publisher; giving up
// ---------------------------------------------------------------------------------------------

/// Five pieces, the second one's connection dropped early in it: its segment fails, the rest
/// of the piece is drained (never written into the dead segment), and pieces 3 to 5 go out
/// whole as segments 2 to 4. Every byte is counted as published or drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_failing_mid_piece_drains_the_piece_and_the_next_piece_rolls_into_the_next_segment() {
    const PIECE: usize = 4 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    let (server, handle, http, url) = trickle_channel("roll").await;
    let config = PublisherConfig { stall_timeout: STALL, ..Default::default() };
    let mut stream = SegmentedPublisher::new(TricklePublisher::start(http.clone(), &url, config).await);
    let mut subscriber = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
    );
    let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(segment) = subscriber.next_segment().await.unwrap() {
            let seq = segment.seq();
            let data = segment.read_all().await.unwrap();
            let fill = data.first().copied();
            seen.push((seq, data.len(), data.iter().all(|&b| Some(b) == fill).then_some(fill).flatten()));
            let _ = read_tx.send(seq);
        }
        seen
    });
    let mut failures = Vec::new();
    for piece in 0..5u8 {
        if piece == 1 {
            server.set_fault("roll", TrickleFault::DropSegments { after_bytes: CHUNK as u64, count: 1 });
        }
        for _ in 0..PIECE / CHUNK {
            if let Err(e) = stream.write(Bytes::from(vec![piece; CHUNK])).await {
                failures.push(e);
            }
            assert_eq!(stream.piece_bytes() % CHUNK as u64, 0);
        }
        if let Err(e) = stream.cut().await {
            failures.push(e);
        }
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(matches!(failures[0], TrickleError::Segment { seq: 1, .. }), "{failures:?}");
    let piece = PIECE as u64;
    assert_eq!(
        stream.totals(),
        LedgerTotals {
            segments_published: 4,
            segments_failed: 1,
            bytes_in: 5 * piece,
            bytes_published: 4 * piece,
            bytes_drained: piece,
        }
    );
    let on_server = server.channel_totals("roll");
    assert_eq!((on_server.segments_completed, on_server.bytes_completed), (4, 4 * piece));
    // Deleting the channel ends it for readers still behind: let the reader catch up first.
    while bounded("the reader", GENEROUS, read_rx.recv()).await.is_some_and(|seq| seq < 4) {}
    let publisher = stream.into_publisher();
    assert!(publisher.terminal_error().is_none());
    publisher.close().await;
    // Readers get each published piece whole, in one segment; the failed segment has only
    // what the server read before the connection dropped.
    let seen = bounded("the reader", GENEROUS, reader).await.unwrap();
    assert_eq!(
        seen,
        vec![
            (0, PIECE, Some(0)),
            (1, CHUNK, Some(1)),
            (2, PIECE, Some(2)),
            (3, PIECE, Some(3)),
            (4, PIECE, Some(4))
        ]
    );
    handle.shutdown().await;
}

/// Once the channel is gone, the next write fails with a terminal error and so does every
/// later one, at once: a caller reading a live source can stop instead of reading forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_channel_is_gone_writes_fail_with_a_terminal_error() {
    let (server, handle, http, url) = trickle_channel("gone").await;
    let config = PublisherConfig { stall_timeout: STALL, ..Default::default() };
    let mut stream = SegmentedPublisher::new(TricklePublisher::start(http, &url, config).await);
    stream.write(Bytes::from_static(b"first")).await.unwrap();
    stream.cut().await.unwrap();
    assert!(server.close_channel("gone"));
    // Let the server answer the preconnected POST first: a body arriving in the same instant as
    // the close may be taken as a segment (go's server picks either at random), which is not
    // what this test is about.
    bounded("the preconnect's answer", GENEROUS, async {
        while server.stats().active_posts > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut first_error = None;
    for _ in 0..100 {
        let written = bounded("a write", GENEROUS, stream.write(Bytes::from(vec![1u8; 4096]))).await;
        let cut = bounded("a cut", GENEROUS, stream.cut()).await;
        if let Some(e) = written.err().or(cut.err()) {
            first_error = Some(e);
            break;
        }
    }
    let error = first_error.expect("writes to a deleted channel kept succeeding");
    assert!(error.is_terminal(), "{error:?}");
    let again = bounded("a write", GENEROUS, stream.write(Bytes::from_static(b"more"))).await;
    assert!(again.is_err_and(|e| e.is_terminal()));
    assert_eq!(stream.totals().segments_published, 1);
    handle.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// 13.13: close deletes first, then drops the preconnect
// ---------------------------------------------------------------------------------------------

/// Subscribers waiting on the preconnected segment when the publisher closes see the channel
/// closed, not an empty segment followed by a 404. Repeated, since the old order lost a race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_stream_cleanly_without_a_trailing_empty_segment() {
    for round in 0..20 {
        let name = format!("close-{round}");
        let (server, handle, http, url) = trickle_channel(&name).await;
        let mut publisher = TricklePublisher::start(http.clone(), &url, PublisherConfig::default()).await;
        let mut subscriber = TrickleSubscriber::new(
            http.clone(),
            &url,
            SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
        );
        let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(segment) = subscriber.next_segment().await.unwrap() {
                let seq = segment.seq();
                seen.push((seq, segment.read_all().await.unwrap().len()));
                let _ = read_tx.send(seq);
            }
            (seen, subscriber.end_reason())
        });
        for i in 0..2u8 {
            publisher.write_segment(Bytes::from(vec![i; 1000])).await.unwrap();
        }
        // The reader has both segments (the server let go of their GETs before their last
        // byte went out) and waits on segment 2, the publisher's preconnect.
        assert_eq!(bounded("segment 0", GENEROUS, read_rx.recv()).await, Some(0));
        assert_eq!(bounded("segment 1", GENEROUS, read_rx.recv()).await, Some(1));
        let deadline = tokio::time::Instant::now() + GENEROUS;
        while server.stats().active_gets == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the reader never asked for segment 2");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bounded("close", GENEROUS, publisher.close()).await;
        let (seen, end) = bounded("the reader", GENEROUS, reader).await.unwrap();
        assert_eq!(seen, vec![(0, 1000), (1, 1000)], "round {round}");
        assert_eq!(end, Some(EndReason::Closed), "round {round}");
        handle.shutdown().await;
    }
}

/// On the wire: the DELETE of the channel reaches the server while the preconnected POST is
/// still open (no end of body, no hang-up), as go-livepeer's publisher does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_sends_the_delete_before_it_drops_the_preconnected_post() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let server_events = events.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let events = server_events.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                loop {
                    let Some(head) = read_head(&mut socket, &mut data).await else { return };
                    let request = head.lines().next().unwrap_or_default().to_owned();
                    if request.starts_with("POST") {
                        // The preconnect: note when its body ends or its connection goes.
                        events.lock().unwrap().push(format!("open {request}"));
                        let mut buf = vec![0u8; 4096];
                        loop {
                            if data.windows(5).any(|w| w == b"0\r\n\r\n") {
                                events.lock().unwrap().push("post body ended".into());
                                break;
                            }
                            match socket.read(&mut buf).await {
                                Ok(n) if n > 0 => data.extend_from_slice(&buf[..n]),
                                _ => {
                                    events.lock().unwrap().push("post connection closed".into());
                                    return;
                                }
                            }
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(ok).await;
                        return;
                    }
                    events.lock().unwrap().push(request.clone());
                    let answer: &[u8] = if request.starts_with("GET") {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n0"
                    } else {
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                    };
                    if socket.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("http://{addr}/ai/trickle/order");
    let http = HttpClients::new(OrchestratorTrust::Insecure).unwrap().orchestrator(&url).unwrap();
    let publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    let deadline = tokio::time::Instant::now() + GENEROUS;
    while !events.lock().unwrap().iter().any(|e| e.starts_with("open POST")) {
        assert!(tokio::time::Instant::now() < deadline, "the preconnect never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bounded("close", GENEROUS, publisher.close()).await;
    let deadline = tokio::time::Instant::now() + GENEROUS;
    while !events.lock().unwrap().iter().any(|e| e.starts_with("post ")) {
        assert!(tokio::time::Instant::now() < deadline, "the preconnect was never dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = events.lock().unwrap().clone();
    let delete = events.iter().position(|e| e.starts_with("DELETE /ai/trickle/order ")).expect("no DELETE");
    let ended = events.iter().position(|e| e.starts_with("post ")).unwrap();
    assert!(delete < ended, "the preconnect ended before the DELETE: {events:?}");
}

// ---------------------------------------------------------------------------------------------
// 13.14: out of the window, ahead of the live edge
// ---------------------------------------------------------------------------------------------

/// Segments 0..8 published: segment 0 fell out of the 5-slot window. By default the reader
/// skips to the live edge (8), counts the 8 skipped and says so; with `BehindWindow::Fail` it
/// fails with the indices, as go-livepeer's subscriber does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_behind_the_window_skips_and_says_so_or_fails_when_strict() {
    let (server, handle, http, url) = trickle_channel("behind").await;
    let mut publisher = server.local_publisher("behind").unwrap();
    for i in 0..8u8 {
        publisher.write_segment(Bytes::from(vec![i; 10])).await.unwrap();
    }
    let strict =
        SubscriberConfig { start: SeqSpec::At(0), behind_window: BehindWindow::Fail, ..Default::default() };
    let mut reader = TrickleSubscriber::new(http.clone(), &url, strict);
    let err = bounded("a strict reader", GENEROUS, reader.next_segment()).await.unwrap_err();
    assert_eq!(err, TrickleError::FellBehind { requested: 0, latest: 8 });
    assert_eq!(reader.stats().segments_skipped, 0);

    let mut reader = TrickleSubscriber::new(
        http.clone(),
        &url,
        SubscriberConfig { start: SeqSpec::At(0), ..Default::default() },
    );
    let mut notices = reader.notices();
    let next = tokio::spawn(async move {
        let segment = reader.next_segment().await.unwrap().unwrap();
        (segment.seq(), segment.read_all().await.unwrap(), reader)
    });
    let notice = bounded("a notice", GENEROUS, notices.recv()).await;
    assert_eq!(notice, Some(SubscriberNotice::Skipped { first: 0, last: 7 }));
    publisher.write_segment(Bytes::from_static(b"eight")).await.unwrap();
    let (seq, data, reader) = bounded("segment 8", GENEROUS, next).await.unwrap();
    assert_eq!((seq, data.as_ref()), (8, b"eight".as_ref()));
    assert_eq!((reader.stats().segments_skipped, reader.stats().jumps), (8, 1));
    handle.shutdown().await;
}

/// An index far ahead of the live edge: the reader announces that it waits, and for how long,
/// then fails with the indices; a zero timeout fails at the first answer, without a notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_ahead_of_the_live_edge_announces_its_wait_and_gives_up() {
    let (server, handle, http, url) = trickle_channel("ahead").await;
    server.local_publisher("ahead").unwrap().write_segment(Bytes::from_static(b"zero")).await.unwrap();
    let timeout = Duration::from_millis(300);
    let config = SubscriberConfig { start: SeqSpec::At(100), ahead_timeout: timeout, ..Default::default() };
    let mut reader = TrickleSubscriber::new(http.clone(), &url, config);
    let mut notices = reader.notices();
    let err = bounded("an ahead reader", GENEROUS, reader.next_segment()).await.unwrap_err();
    assert!(
        matches!(err, TrickleError::AheadOfLiveEdge { requested: 100, latest: Some(1), waited } if waited >= timeout),
        "{err:?}"
    );
    assert_eq!(
        notices.try_recv().ok(),
        Some(SubscriberNotice::WaitingAhead { requested: 100, latest: Some(1), timeout })
    );
    assert!(reader.stats().waits_ahead >= 1);

    let config =
        SubscriberConfig { start: SeqSpec::At(100), ahead_timeout: Duration::ZERO, ..Default::default() };
    let mut reader = TrickleSubscriber::new(http, &url, config);
    let mut notices = reader.notices();
    let err = bounded("an ahead reader", GENEROUS, reader.next_segment()).await.unwrap_err();
    assert!(matches!(err, TrickleError::AheadOfLiveEdge { requested: 100, latest: Some(1), .. }), "{err:?}");
    assert_eq!(reader.stats().get_attempts, 1);
    assert!(notices.try_recv().is_err());
    handle.shutdown().await;
}
