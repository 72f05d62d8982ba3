//! The idle sweep and shutdown, and the readers they release.

use super::*;

#[tokio::test(start_paused = true)]
async fn idle_sweep_closes_idle_channels_except_internal_ones() {
    let server = TrickleServer::new(TrickleConfig {
        autocreate: false,
        idle_timeout: Duration::from_secs(10),
        sweep_interval: Duration::from_secs(1),
    });
    for name in ["idle", "_internal", "busy"] {
        server.create_channel(name, MIME_JSON);
    }
    let mut waiting = server.local_subscriber("idle", SeqSpec::Next).unwrap();
    let waiter = tokio::spawn(async move { waiting.next_segment().await.map(|s| s.seq()) });
    let mut busy = server.local_publisher("busy").unwrap();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        busy.write_segment(Bytes::from_static(b"{}")).await.unwrap();
    }
    assert_eq!(server.channel_names(), vec!["_internal".to_owned(), "busy".to_owned()]);
    assert_eq!(waiter.await.unwrap(), None, "a swept channel ends its subscribers");

    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(server.channel_names(), vec!["_internal".to_owned()]);

    server.shutdown();
    assert!(server.channel_names().is_empty(), "shutdown closes everything");
    assert!(busy.write_segment(Bytes::from_static(b"{}")).await.is_err());
    server.create_channel("after", MIME_JSON);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(server.has_channel("after"), "the sweeper stopped");
}

#[tokio::test]
async fn sweep_and_shutdown_release_http_readers() {
    let (server, addr) = serve(TrickleConfig {
        autocreate: false,
        idle_timeout: Duration::from_millis(150),
        sweep_interval: Duration::from_millis(30),
    })
    .await;
    server.create_channel("idle", MIME_MPEGTS);
    let mut reader = Raw::get(addr, "idle/0").await;
    let head = reader.head().await;
    assert_eq!((head.status, head.get(HEADER_CLOSED)), (200, Some(CLOSED_VALUE)));
    assert!(!server.has_channel("idle"));

    server.create_channel("live", MIME_MPEGTS);
    let mut reader = Raw::get(addr, "live/0").await;
    assert!(reader.silent_for(Duration::from_millis(50)).await);
    server.shutdown();
    let head = reader.head().await;
    assert_eq!((head.status, head.get(HEADER_CLOSED)), (200, Some(CLOSED_VALUE)));
}
