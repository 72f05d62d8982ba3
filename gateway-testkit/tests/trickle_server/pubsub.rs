//! Publishing and subscribing over HTTP: go-livepeer's index rules, precreation, 470, resets,
//! deletes and many readers.

use super::*;

#[tokio::test]
async fn get_headers_wait_for_the_first_byte_and_chunks_stream_as_they_arrive() {
    let (server, addr) = serve_default().await;
    assert!(server.create_channel("c", MIME_MPEGTS));
    assert!(!server.create_channel("c", MIME_JSON), "already exists");

    // nextWrite is 0, so GET 0 precreates the segment and waits on it.
    let mut reader = Raw::get(addr, "c/0").await;
    assert!(reader.silent_for(QUIET).await, "no headers before the first byte");

    let mut writer = Raw::post_chunked(addr, "c/0", &[("Content-Type", MIME_MPEGTS)]).await;
    writer.send_chunk(b"abc").await;
    let head = reader.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert_eq!(head.get("content-type"), Some(MIME_MPEGTS));
    assert_eq!(head.get(HEADER_LATEST), None, "index equals nextWrite at request time");
    assert_eq!(head.get("transfer-encoding"), Some("chunked"));
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"abc"[..]));

    let stats = server.stats();
    assert_eq!((stats.active_posts, stats.active_gets, stats.channels), (1, 1, 1));
    assert!(writer.silent_for(QUIET).await, "POST answered only after its body");

    writer.send_chunk(b"defg").await;
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"defg"[..]));
    writer.end_body().await;
    let head = writer.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert_eq!(head.get("connection"), None, "keep-alive after a segment with data");
    assert_eq!(reader.chunk().await, None, "the body ends when the segment closes");

    within("requests finish", async {
        while server.stats().active_posts + server.stats().active_gets > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let stats = server.stats();
    assert_eq!((stats.bytes_in, stats.bytes_out, stats.segments_completed), (7, 7, 1));
}

#[tokio::test]
async fn index_resolution_precreate_rule_and_470() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let client = common::http();

    // Too far ahead: 470 with Latest = nextWrite and Seq = requested.
    let (resp, body) = fetch(&client, addr, "c/2").await;
    assert_eq!(resp.status().as_u16(), STATUS_SEGMENT_NOT_AVAILABLE);
    assert_eq!(header(resp.headers(), HEADER_LATEST), Some("0"));
    assert_eq!(header(resp.headers(), HEADER_SEQ), Some("2"));
    assert_eq!(&body[..], ENTRY_NOT_FOUND_BODY.as_bytes());

    // nextWrite == 0 && idx == 1 is precreated too.
    let mut early = Raw::get(addr, "c/1").await;
    assert!(early.silent_for(QUIET).await);
    assert_eq!(publish(&client, addr, "c/0", "s0").await.status(), 200);
    assert!(early.silent_for(QUIET).await, "segment 1 has no data yet");
    let resp = publish(&client, addr, "c/-1", "s1").await;
    assert_eq!(header(resp.headers(), HEADER_SEQ), Some("1"), "-1 resolves to nextWrite");
    let head = early.head().await;
    assert_eq!((head.status, head.get(HEADER_SEQ)), (200, Some("1")));
    assert_eq!(head.get(HEADER_LATEST), Some("0"), "1 != nextWrite 0 when the GET arrived");
    assert_eq!(early.body(&head).await, b"s1");

    for seq in 2..=6 {
        publish(&client, addr, &format!("c/{seq}"), format!("s{seq}")).await;
    }
    // Slot 0 now holds 5: segment 0 fell out of the window.
    let (resp, _) = fetch(&client, addr, "c/0").await;
    assert_eq!(resp.status().as_u16(), STATUS_SEGMENT_NOT_AVAILABLE);
    assert_eq!(header(resp.headers(), HEADER_LATEST), Some("7"));
    assert_eq!(header(resp.headers(), HEADER_SEQ), Some("0"));
    let (resp, body) = fetch(&client, addr, "c/3").await;
    assert_eq!((resp.status().as_u16(), &body[..]), (200, &b"s3"[..]));
    assert_eq!(header(resp.headers(), HEADER_LATEST), Some("7"));
    assert_eq!(header(resp.headers(), "content-type"), Some(MIME_MPEGTS));
    let (resp, body) = fetch(&client, addr, "c/-2").await;
    assert_eq!((header(resp.headers(), HEADER_SEQ), &body[..]), (Some("6"), &b"s6"[..]));
    let (resp, _) = fetch(&client, addr, "c/9").await;
    assert_eq!(resp.status().as_u16(), STATUS_SEGMENT_NOT_AVAILABLE);
    assert_eq!(header(resp.headers(), HEADER_LATEST), Some("7"));

    // -1 waits at the live edge for the next segment.
    let mut live = Raw::get(addr, "c/-1").await;
    assert!(live.silent_for(QUIET).await);
    publish(&client, addr, "c/7", "s7").await;
    let head = live.head().await;
    assert_eq!((head.get(HEADER_SEQ), head.get(HEADER_LATEST)), (Some("7"), None));
    assert_eq!(live.body(&head).await, b"s7");
}

#[tokio::test]
async fn current_on_a_fresh_channel_is_segment_zero() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let mut reader = Raw::get(addr, "c/-2").await;
    assert!(reader.silent_for(QUIET).await, "-2 with nextWrite 0 waits on segment 0");
    let client = common::http();
    publish(&client, addr, "c/0", "zero").await;
    let head = reader.head().await;
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert_eq!(reader.body(&head).await, b"zero");
}

#[tokio::test]
async fn empty_post_advances_next_write_and_ends_the_segment_empty() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let mut reader = Raw::get(addr, "c/0").await;
    assert!(reader.silent_for(QUIET).await);

    let mut writer = Raw::open(addr, "POST", "c/0", &[("Content-Length", "0")], false).await;
    let head = writer.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert_eq!(head.get("connection"), Some("close"));
    assert_eq!(head.get(HEADER_CLOSED), None);

    let head = reader.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert_eq!(head.get(HEADER_LATEST), Some("1"));
    assert_eq!(head.get(HEADER_CLOSED), None);
    assert!(reader.body(&head).await.is_empty());

    let client = common::http();
    let (resp, body) = fetch(&client, addr, "c/next").await;
    assert_eq!((&body[..], header(resp.headers(), HEADER_LATEST)), (&b"1"[..], Some("1")));
    assert_eq!(server.stats().segments_completed, 0, "an empty segment is not a completed one");
}

#[tokio::test]
async fn broken_post_body_is_500_and_leaves_the_segment_open_until_deleted() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let mut reader = Raw::get(addr, "c/0").await;
    let mut writer = Raw::post_chunked(addr, "c/0", &[]).await;
    writer.send_chunk(b"part").await;
    let head = reader.head().await;
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"part"[..]));

    // A malformed chunk header is a body read error on the server.
    writer.stream.write_all(b"zz\r\n").await.unwrap();
    let head_w = writer.head().await;
    assert_eq!(head_w.status, 500);
    assert_eq!(writer.body(&head_w).await, b"Server error\n");

    assert!(reader.silent_for(QUIET).await, "the segment stays open");
    let client = common::http();
    let (_, next) = fetch(&client, addr, "c/next").await;
    assert_eq!(&next[..], b"1", "the first byte advanced nextWrite");

    let resp = within("delete", client.delete(url(addr, "c/0")).send()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(reader.chunk().await, None, "DELETE of the seq releases the reader");
    assert_eq!(head.get(HEADER_SEQ), Some("0"));

    let resp = within("delete", client.delete(url(addr, "c/3")).send()).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.unwrap(), "Nonexistent segment\n");
}

#[tokio::test]
async fn aborted_publisher_leaves_readers_waiting_until_slot_reuse() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let client = common::http();
    let mut reader = Raw::get(addr, "c/0").await;
    let mut writer = Raw::post_chunked(addr, "c/0", &[]).await;
    writer.send_chunk(b"half").await;
    let _ = reader.head().await;
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"half"[..]));
    drop(writer); // the publisher vanishes mid-segment
    assert!(reader.silent_for(QUIET).await, "not closed by the abort");

    for seq in 1..SERVER_RING_SIZE as u64 {
        publish(&client, addr, &format!("c/{seq}"), "x").await;
    }
    assert!(reader.silent_for(QUIET).await, "still open while it holds its slot");
    publish(&client, addr, &format!("c/{SERVER_RING_SIZE}"), "y").await;
    assert_eq!(reader.chunk().await, None, "slot reuse closes the old occupant");
}

#[tokio::test]
async fn reset_closes_lower_segments_but_keeps_preconnects() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let client = common::http();

    let mut stuck_reader = Raw::get(addr, "c/0").await;
    let mut stuck_writer = Raw::post_chunked(addr, "c/0", &[]).await;
    stuck_writer.send_chunk(b"stuck").await;
    let _ = stuck_reader.head().await;
    assert_eq!(stuck_reader.chunk().await.as_deref(), Some(&b"stuck"[..]));

    // A preconnected publisher for 3 (no bytes yet) and a reader waiting on it.
    let mut preconnect = Raw::post_chunked(addr, "c/3", &[]).await;
    let mut ahead_reader = loop {
        // The POST may not have created segment 3 yet; until it has, GET 3 is a 470.
        let mut r = Raw::get(addr, "c/3").await;
        if r.silent_for(Duration::from_millis(50)).await {
            break r;
        }
        assert_eq!(r.head().await.status, STATUS_SEGMENT_NOT_AVAILABLE);
    };

    let resp =
        within("reset post", client.post(url(addr, "c/2")).header(HEADER_RESET, "1").body("fresh").send())
            .await
            .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(stuck_reader.chunk().await, None, "reset closes lower segments");
    assert!(ahead_reader.silent_for(QUIET).await, "segments ahead are kept");
    assert!(preconnect.silent_for(Duration::from_millis(10)).await);

    preconnect.send_chunk(b"three").await;
    preconnect.end_body().await;
    assert_eq!(preconnect.head().await.status, 200);
    let head = ahead_reader.head().await;
    assert_eq!(ahead_reader.body(&head).await, b"three");
}

#[tokio::test]
async fn missing_channels_and_bad_indices() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let client = common::http();

    let mut post = Raw::open(addr, "POST", "nope/0", &[("Content-Length", "3")], false).await;
    post.stream.write_all(b"abc").await.unwrap();
    let head = post.head().await;
    assert_eq!(head.status, 404);
    assert_eq!(head.get("connection"), Some("close"), "wakes preconnected Go publishers");
    assert_eq!(post.body(&head).await, b"Stream not found\n");

    for path in ["nope/0", "nope/next", "nope/-1"] {
        let (resp, body) = fetch(&client, addr, path).await;
        assert_eq!((resp.status().as_u16(), &body[..]), (404, &b"Stream not found\n"[..]), "{path}");
    }
    let resp = client.delete(url(addr, "nope")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.unwrap(), "Invalid stream\n");
    assert_eq!(client.delete(url(addr, "nope/0")).send().await.unwrap().status(), 404);

    for idx in ["-3", "-9223372036854775808", "abc", "1e3", "99999999999999999999", "9223372036854775807"] {
        let path = format!("c/{idx}");
        let (resp, body) = fetch(&client, addr, &path).await;
        assert_eq!((resp.status().as_u16(), &body[..]), (400, &b"Invalid idx\n"[..]), "GET {idx}");
        let resp = publish(&client, addr, &path, "x").await;
        assert_eq!(resp.status(), 400, "POST {idx}");
        let resp = client.delete(url(addr, &path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "DELETE {idx}");
    }
    assert_eq!(publish(&client, addr, "c/-2", "x").await.status(), 400, "POST cannot target -2");
    assert_eq!(client.get(url(addr, "c/0/extra")).send().await.unwrap().status(), 404);

    // Channel create: only existing channels without autocreate.
    let resp = client.post(url(addr, "c")).header("Expect-Content", MIME_JSON).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client.post(url(addr, "other")).header("Expect-Content", MIME_JSON).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(server.channel_names(), vec!["c".to_owned()]);
}

#[tokio::test]
async fn autocreate_takes_the_mime_type_from_the_request() {
    let (server, addr) = serve(TrickleConfig { autocreate: true, ..TrickleConfig::default() }).await;
    let client = common::http();
    let resp =
        client.post(url(addr, "auto/0")).header("Content-Type", MIME_JSON).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let (resp, body) = fetch(&client, addr, "auto/0").await;
    assert_eq!((header(resp.headers(), "content-type"), &body[..]), (Some(MIME_JSON), &b"{}"[..]));

    let resp = client.post(url(addr, "made")).header("Expect-Content", "text/plain").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(server.has_channel("made"));
    client.post(url(addr, "made/0")).header("Content-Type", MIME_JSON).body("hi").send().await.unwrap();
    let (resp, _) = fetch(&client, addr, "made/0").await;
    assert_eq!(
        header(resp.headers(), "content-type"),
        Some("text/plain"),
        "an existing channel keeps its mime"
    );
    assert_eq!(server.channel_names(), vec!["auto".to_owned(), "made".to_owned()]);
}

#[tokio::test]
async fn next_reports_the_next_write_index() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let client = common::http();
    let (resp, body) = fetch(&client, addr, "c/next").await;
    assert_eq!(
        (resp.status().as_u16(), &body[..], header(resp.headers(), HEADER_LATEST)),
        (200, &b"0"[..], Some("0"))
    );
    for _ in 0..3 {
        publish(&client, addr, "c/-1", "x").await;
    }
    let (resp, body) = fetch(&client, addr, "c/next").await;
    assert_eq!(
        (&body[..], header(resp.headers(), HEADER_LATEST), header(resp.headers(), HEADER_CLOSED)),
        (&b"3"[..], Some("3"), None)
    );
}

#[tokio::test]
async fn deleting_a_channel_wakes_waiting_readers_and_publishers() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let mut reader = Raw::get(addr, "c/0").await;
    let mut preconnect = Raw::post_chunked(addr, "c/1", &[]).await;
    assert!(reader.silent_for(QUIET).await);
    assert!(preconnect.silent_for(Duration::from_millis(10)).await);

    let client = common::http();
    assert_eq!(client.delete(url(addr, "c")).send().await.unwrap().status(), 200);

    let head = reader.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get(HEADER_CLOSED), Some(CLOSED_VALUE));
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert!(head.get(HEADER_LATEST).is_some());
    assert!(reader.body(&head).await.is_empty());

    let head = preconnect.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.get(HEADER_SEQ), Some("1"));
    assert_eq!(head.get(HEADER_CLOSED), Some(CLOSED_VALUE));
    assert_eq!(head.get("connection"), Some("close"));

    let (resp, _) = fetch(&client, addr, "c/0").await;
    assert_eq!(resp.status(), 404, "a deleted channel is gone");
    assert!(!server.has_channel("c"));
    assert!(!server.close_channel("c"));
}

#[tokio::test]
async fn slow_reader_keeps_an_evicted_segment_and_memory_is_freed_after() {
    let (server, addr) = serve_default().await;
    server.create_channel("c", MIME_MPEGTS);
    let client = common::http();
    // Far more than the socket buffers between server and a reader with a small receive window
    // (so the server really holds it), and more than axum's default body limit.
    let big = pattern(1, 12 * 1024 * 1024);
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        big.chunks(256 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    assert_eq!(publish(&client, addr, "c/0", body).await.status(), 200);

    let mut reader = Raw::get_slowly(addr, "c/0").await;
    let head = reader.head().await;
    let mut got = reader.chunk().await.unwrap();

    for seq in 1..=2 * SERVER_RING_SIZE as u64 {
        publish(&client, addr, &format!("c/{seq}"), vec![7u8; 1000]).await;
    }
    let (evicted, _) = fetch(&client, addr, "c/0").await;
    assert_eq!(evicted.status().as_u16(), STATUS_SEGMENT_NOT_AVAILABLE, "out of the ring");
    assert!(server.stats().buffered_bytes >= big.len() as u64, "still held by its reader");

    while let Some(chunk) = reader.chunk().await {
        got.extend(chunk);
    }
    assert_eq!(head.get(HEADER_SEQ), Some("0"));
    assert!(got == big, "the slow reader got the whole evicted segment");
    drop(reader);
    let ring_bytes = (SERVER_RING_SIZE * 1000) as u64;
    within("evicted segment freed", async {
        while server.stats().buffered_bytes != ring_bytes {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn many_channels_with_many_subscribers() {
    const CHANNELS: usize = 12;
    const SUBSCRIBERS: usize = 4;
    const SEGMENTS: u64 = 4;
    let (server, addr) = serve_default().await;
    let client = common::http();
    let mut tasks = Vec::new();
    for c in 0..CHANNELS {
        let name = format!("ch{c}");
        server.create_channel(&name, MIME_MPEGTS);
        for _ in 0..SUBSCRIBERS {
            let (client, name) = (client.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                for seq in 0..SEGMENTS {
                    let got = follow(&client, addr, &name, seq).await;
                    assert!(got == pattern((c as u64) << 8 | seq, 20_000 + seq as usize), "{name}/{seq}");
                }
            }));
        }
        let (client, name) = (client.clone(), name.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 0..SEGMENTS {
                let data = pattern((c as u64) << 8 | seq, 20_000 + seq as usize);
                let chunks: Vec<Result<Bytes, std::io::Error>> =
                    data.chunks(3000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                let resp = publish(
                    &client,
                    addr,
                    &format!("{name}/{seq}"),
                    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
                )
                .await;
                assert_eq!(resp.status(), 200);
            }
        }));
    }
    for t in tasks {
        within("channel task", t).await.unwrap();
    }
    assert_eq!(server.stats().channels, CHANNELS);
    assert_eq!(server.stats().segments_completed, (CHANNELS as u64) * SEGMENTS);
}
