//! The subscriber's bounded segment client over real sockets (issue 14): segments read whole
//! over HTTP and HTTPS while they are written, a reader far slower than the channel still gets
//! every byte and never more than the bounded buffer at once, and the orchestrator trust policy
//! refuses a certificate it does not trust.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::error::TrickleError;
use gateway_core::trickle::{channel_url, SeqSpec, MIME_MPEGTS};
use gateway_testkit::serve::{serve, ServerHandle};
use gateway_testkit::tls::{SelfSignedTls, TestCa};
use gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use livepeer_gateway_actors::http::HttpClients;
use livepeer_gateway_actors::tls::{CaRoots, OrchestratorTrust};
use livepeer_gateway_actors::trickle::{
    PublisherConfig, SegmentGetClient, SubscriberConfig, TricklePublisher, TrickleSubscriber,
    SEGMENT_READ_BUFFER_MAX,
};

const GENEROUS: Duration = Duration::from_secs(30);

/// A trickle server with channel `name`, over TLS when `tls` is given.
async fn channel(
    name: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (TrickleServer, ServerHandle, String) {
    let server = TrickleServer::new(TrickleConfig::default());
    assert!(server.create_channel(name, MIME_MPEGTS));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let handle = serve(listener, server.router(), tls);
    let url = channel_url(&format!("{scheme}://{}", handle.addr), name);
    (server, handle, url)
}

/// Deterministic bytes of segment `seq`.
fn segment_bytes(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i as u64 * 31 + seq * 7) % 251) as u8).collect()
}

/// Publishes `segments` segments of `len` bytes in writes of `piece` bytes.
async fn publish(http: reqwest::Client, url: String, segments: u64, len: usize, piece: usize) {
    let mut publisher = TricklePublisher::start(http, &url, PublisherConfig::default()).await;
    for seq in 0..segments {
        let mut sink = publisher.next_segment().unwrap();
        for piece in segment_bytes(seq, len).chunks(piece) {
            sink.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        sink.finish().await.unwrap();
    }
    publisher.close().await;
}

/// Reads `segments` segments from `url`, pausing `lag` after every chunk; returns each
/// segment's bytes and the largest chunk seen.
async fn read(client: SegmentGetClient, url: &str, segments: u64, lag: Duration) -> (Vec<Vec<u8>>, usize) {
    let config = SubscriberConfig { start: SeqSpec::At(0), ..Default::default() };
    let mut subscriber = TrickleSubscriber::new(client, url, config);
    let (mut read, mut largest) = (Vec::new(), 0);
    while (read.len() as u64) < segments {
        let mut segment = subscriber.next_segment().await.unwrap().expect("a segment before the end");
        let mut bytes = Vec::new();
        while let Some(chunk) = segment.chunk().await.unwrap() {
            largest = largest.max(chunk.len());
            bytes.extend_from_slice(&chunk);
            if !lag.is_zero() {
                tokio::time::sleep(lag).await;
            }
        }
        read.push(bytes);
    }
    (read, largest)
}

fn assert_segments(read: &[Vec<u8>], len: usize) {
    for (seq, bytes) in read.iter().enumerate() {
        assert_eq!(bytes.len(), len, "segment {seq} length");
        assert!(bytes == &segment_bytes(seq as u64, len), "segment {seq} bytes differ");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_client_reads_segments_whole_over_http_while_they_are_written() {
    const LEN: usize = 1024 * 1024;
    let (_server, _handle, url) = channel("plain", None).await;
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let reader = tokio::spawn({
        let (client, url) = (clients.segment_reader(), url.clone());
        async move { read(client, &url, 3, Duration::ZERO).await }
    });
    publish(clients.orchestrator(&url).unwrap(), url, 3, LEN, 16 * 1024).await;
    let (read, _) = tokio::time::timeout(GENEROUS, reader).await.expect("reader finished").unwrap();
    assert_segments(&read, LEN);
}

/// The publisher writes 1 MiB pieces and the reader pauses after every chunk, so data piles up
/// ahead of it: it waits in the server and the kernel, not in the client, and no chunk handed
/// over is larger than the client's bounded buffer (an unbounded hyper buffer grows to about
/// 400 KiB here and hands over chunks that large).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_reader_gets_every_byte_in_chunks_no_larger_than_the_bounded_buffer() {
    const LEN: usize = 4 * 1024 * 1024;
    let (_server, _handle, url) = channel("lagging", None).await;
    let clients = HttpClients::new(OrchestratorTrust::Insecure).unwrap();
    let publisher =
        tokio::spawn(publish(clients.orchestrator(&url).unwrap(), url.clone(), 2, LEN, 1024 * 1024));
    let (read, largest) =
        tokio::time::timeout(GENEROUS, read(clients.segment_reader(), &url, 2, Duration::from_millis(2)))
            .await
            .expect("reader finished");
    assert_segments(&read, LEN);
    assert!(largest <= SEGMENT_READ_BUFFER_MAX, "a chunk of {largest} bytes");
    tokio::time::timeout(GENEROUS, publisher).await.expect("publisher finished").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_client_reads_over_https_checked_by_the_trust_policy_and_refuses_an_unknown_ca() {
    const LEN: usize = 256 * 1024;
    let ca = TestCa::generate("trickle test CA").unwrap();
    let tls = SelfSignedTls::issued_by(&ca, &[]).unwrap();
    let (_server, _handle, url) = channel("secure", Some(tls.server_config.clone())).await;
    let trust = OrchestratorTrust::certificate_authority(
        CaRoots::none().with_pem(ca.certificate_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let clients = HttpClients::new(trust).unwrap();
    let reader = tokio::spawn({
        let (client, url) = (clients.segment_reader(), url.clone());
        async move { read(client, &url, 2, Duration::ZERO).await }
    });
    publish(clients.orchestrator(&url).unwrap(), url.clone(), 2, LEN, 16 * 1024).await;
    let (read, _) = tokio::time::timeout(GENEROUS, reader).await.expect("reader finished").unwrap();
    assert_segments(&read, LEN);

    // A client trusting another CA gets no segment, and says why.
    let other = TestCa::generate("another CA").unwrap();
    let other_trust = OrchestratorTrust::certificate_authority(
        CaRoots::none().with_pem(other.certificate_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let config = SubscriberConfig { start: SeqSpec::At(0), max_retries: 1, ..Default::default() };
    let mut refused = TrickleSubscriber::new(SegmentGetClient::bounded(&other_trust), &url, config);
    let err =
        tokio::time::timeout(GENEROUS, refused.next_segment()).await.expect("refusal in time").unwrap_err();
    let TrickleError::Segment { reason, .. } = err else { panic!("expected a segment error, got {err:?}") };
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
}
