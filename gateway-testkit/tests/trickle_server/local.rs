//! The in-process publisher and subscriber, alone and together with HTTP clients.

use super::*;

#[tokio::test]
async fn local_publisher_and_subscriber_interoperate_with_http() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_JSON);
    assert!(server.local_publisher("missing").is_none());
    assert!(server.local_subscriber("missing", SeqSpec::Next).is_none());
    let client = common::http();

    // Local subscriber waiting at the edge, HTTP publisher.
    let mut sub = server.local_subscriber("c", SeqSpec::Next).unwrap();
    let reading = tokio::spawn(async move {
        let mut seg = sub.next_segment().await.unwrap();
        let seq = seg.seq();
        let first = seg.next_chunk().await.unwrap();
        (seq, first, seg.read_all().await, sub)
    });
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let posting = tokio::spawn({
        let client = client.clone();
        async move {
            let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
            client.post(url(addr, "c/0")).body(body).send().await.unwrap().status()
        }
    });
    tx.send(Ok(Bytes::from_static(b"{\"a\":"))).await.unwrap();
    tx.send(Ok(Bytes::from_static(b"1}"))).await.unwrap();
    drop(tx);
    let (seq, first, rest, mut sub) = within("local read", reading).await.unwrap();
    assert_eq!((seq, &first[..], &rest[..]), (0, &b"{\"a\":"[..], &b"1}"[..]));
    assert_eq!(within("post", posting).await.unwrap(), 200);

    // Local publisher, HTTP subscriber.
    let mut publisher = server.local_publisher("c").unwrap();
    let mut reader = Raw::get(addr, "c/1").await;
    let mut writer = publisher.begin_segment().unwrap();
    assert_eq!(writer.seq(), 1);
    writer.write(Bytes::from_static(b"part1"));
    let head = reader.head().await;
    assert_eq!((head.get(HEADER_SEQ), head.get("content-type")), (Some("1"), Some(MIME_JSON)));
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"part1"[..]));
    writer.write(Bytes::from_static(b"part2"));
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"part2"[..]));
    writer.finish();
    assert_eq!(reader.chunk().await, None);
    assert_eq!(within("next", sub.next_segment()).await.unwrap().read_all().await, "part1part2");

    // Behind the window: the subscriber jumps to the live edge.
    for i in 0..8 {
        publisher.write_segment(Bytes::from(format!("m{i}"))).await.unwrap();
    }
    let mut behind = server.local_subscriber("c", SeqSpec::At(0)).unwrap();
    let current = server.local_subscriber("c", SeqSpec::Current).unwrap();
    let mut current = current;
    let seg = within("current", current.next_segment()).await.unwrap();
    assert_eq!((seg.seq(), &seg.read_all().await[..]), (9, &b"m7"[..]));
    let pending = tokio::spawn(async move { behind.next_segment().await.map(|s| s.seq()) });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!pending.is_finished(), "jumped to the live edge and waits there");
    assert_eq!(publisher.write_segment(Bytes::from_static(b"edge")).await.unwrap(), 10);
    assert_eq!(within("jump", pending).await.unwrap(), Some(10));

    // Ahead of the edge: waits; the channel closing ends it.
    let mut ahead = server.local_subscriber("c", SeqSpec::At(20)).unwrap();
    let pending = tokio::spawn(async move { ahead.next_segment().await.map(|s| s.seq()) });
    publisher.write_segment(Bytes::from_static(b"not yet")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!pending.is_finished());
    assert!(server.close_channel("c"));
    assert_eq!(within("closed", pending).await.unwrap(), None);
    assert!(matches!(
        publisher.begin_segment(),
        Err(livepeer_gateway_testkit::trickle_server::TrickleServerError::ChannelClosed(_))
    ));
}

#[tokio::test]
async fn local_publisher_joins_a_segment_precreated_by_a_reader() {
    let (server, _addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let mut sub = server.local_subscriber("c", SeqSpec::Next).unwrap();
    let reading = tokio::spawn(async move {
        let seg = sub.next_segment().await.unwrap();
        (seg.seq(), seg.read_all().await)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut publisher = server.local_publisher("c").unwrap();
    let mut a = publisher.begin_segment().unwrap();
    let b = publisher.begin_segment().unwrap();
    assert_eq!((a.seq(), b.seq()), (0, 1), "two open segments get their own indices");
    a.write(Bytes::from_static(b"first"));
    a.finish();
    drop(b); // an abandoned writer still ends (empty) so readers are not left hanging
    assert_eq!(within("read", reading).await.unwrap(), (0, Bytes::from_static(b"first")));
    let stats = server.stats();
    assert_eq!((stats.bytes_in, stats.bytes_out, stats.segments_completed), (5, 5, 1));
}

#[tokio::test]
async fn the_sweeper_ends_with_the_last_server_clone_or_shutdown() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let wait_for_tasks = |n: usize| async move {
        within("sweeper task count", async {
            while tokio::runtime::Handle::current().metrics().num_alive_tasks() != n {
                tokio::task::yield_now().await;
            }
        })
        .await
    };

    let server = TrickleServer::new(TrickleConfig::default());
    assert_eq!(metrics.num_alive_tasks(), before + 1, "one sweeper task");
    let router = server.router();
    drop(server);
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), before + 1, "the router's state keeps the server alive");
    drop(router);
    wait_for_tasks(before).await;

    let server = TrickleServer::new(TrickleConfig::default());
    wait_for_tasks(before + 1).await;
    server.shutdown();
    wait_for_tasks(before).await;
}
