//! The trickle server double over real sockets: every go-livepeer rule it reproduces, its fault
//! injection, the idle sweep and the in-process publisher/subscriber.
//!
//! Byte-exact checks (headers held back until the first byte, chunk-by-chunk delivery,
//! `Connection: close`, aborted bodies) use a hand-written HTTP/1.1 client over `TcpStream`;
//! the rest uses reqwest.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::trickle::{
    SeqSpec, CLOSED_VALUE, ENTRY_NOT_FOUND_BODY, HEADER_CLOSED, HEADER_LATEST, HEADER_RESET, HEADER_SEQ,
    MIME_JSON, MIME_MPEGTS, SERVER_RING_SIZE, STATUS_SEGMENT_NOT_AVAILABLE,
};
use gateway_testkit::trickle_server::{
    ChannelTotals, FaultMethod, TrickleConfig, TrickleFault, TrickleServer, TrickleServerStats, ADMIN_PATH,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen promptly.
const PROMPT: Duration = Duration::from_secs(5);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(200);

async fn serve(config: TrickleConfig) -> (TrickleServer, SocketAddr) {
    let server = TrickleServer::new(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (server, addr)
}

async fn serve_default() -> (TrickleServer, SocketAddr) {
    serve(TrickleConfig::default()).await
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}/ai/trickle/{path}")
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Status and headers of a response whose body was read.
struct Fetched {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
}

impl Fetched {
    fn status(&self) -> reqwest::StatusCode {
        self.status
    }

    fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }
}

/// Deterministic pseudo-random bytes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// POSTs a whole segment; returns the response.
async fn publish(
    client: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    data: impl Into<reqwest::Body>,
) -> reqwest::Response {
    within("publish", client.post(url(addr, path)).body(data).send()).await.unwrap()
}

/// GETs a segment and reads its body.
async fn fetch(client: &reqwest::Client, addr: SocketAddr, path: &str) -> (Fetched, Bytes) {
    let resp = within("fetch", client.get(url(addr, path)).send()).await.unwrap();
    let fetched = Fetched { status: resp.status(), headers: resp.headers().clone() };
    let body = within("fetch body", resp.bytes()).await.unwrap();
    (fetched, body)
}

/// Reads segment `seq` like a subscriber: waits (470 with `latest <= seq`) until it exists.
async fn follow(client: &reqwest::Client, addr: SocketAddr, chan: &str, seq: u64) -> Bytes {
    within("follow", async {
        loop {
            let (resp, body) = fetch(client, addr, &format!("{chan}/{seq}")).await;
            match resp.status().as_u16() {
                200 => {
                    assert_eq!(header(resp.headers(), HEADER_SEQ), Some(seq.to_string().as_str()));
                    return body;
                }
                STATUS_SEGMENT_NOT_AVAILABLE => {
                    let latest: u64 = header(resp.headers(), HEADER_LATEST).unwrap().parse().unwrap();
                    assert!(latest <= seq, "fell behind: latest {latest} > {seq}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => panic!("GET {chan}/{seq}: {other}"),
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client that shows exactly what arrives when.
// ---------------------------------------------------------------------------------------------

struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Raw {
    /// Sends a request head; `chunked` adds `Transfer-Encoding: chunked` for a streamed body.
    async fn open(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        chunked: bool,
    ) -> Raw {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut head = format!("{method} /ai/trickle/{path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        Raw { stream, buf: Vec::new() }
    }

    async fn get(addr: SocketAddr, path: &str) -> Raw {
        Raw::open(addr, "GET", path, &[], false).await
    }

    /// A GET from a socket with a small receive window, so unread data stays on the server.
    async fn get_slowly(addr: SocketAddr, path: &str) -> Raw {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8 * 1024).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        let head = format!("GET /ai/trickle/{path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        Raw { stream, buf: Vec::new() }
    }

    async fn post_chunked(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Raw {
        Raw::open(addr, "POST", path, headers, true).await
    }

    async fn send_chunk(&mut self, data: &[u8]) {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.stream.write_all(&out).await.unwrap();
    }

    async fn end_body(&mut self) {
        self.stream.write_all(b"0\r\n\r\n").await.unwrap();
    }

    /// Reads more bytes; 0 at EOF (a reset counts as EOF).
    async fn fill(&mut self) -> usize {
        self.buf.reserve(64 * 1024);
        self.stream.read_buf(&mut self.buf).await.unwrap_or(0)
    }

    /// Whether nothing at all arrives for `d`.
    async fn silent_for(&mut self, d: Duration) -> bool {
        self.buf.is_empty() && tokio::time::timeout(d, self.fill()).await.is_err()
    }

    async fn head(&mut self) -> Head {
        within("response head", async {
            loop {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let text = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                    self.buf.drain(..end + 4);
                    let mut lines = text.split("\r\n");
                    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
                    let headers = lines
                        .map(|l| {
                            let (k, v) = l.split_once(':').unwrap();
                            (k.trim().to_owned(), v.trim().to_owned())
                        })
                        .collect();
                    return Head { status, headers };
                }
                assert!(self.fill().await > 0, "connection closed before the response head");
            }
        })
        .await
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "connection closed mid-body");
        }
        self.buf.drain(..n).collect()
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                self.buf.drain(..end + 2);
                return line;
            }
            assert!(self.fill().await > 0, "connection closed mid-chunk");
        }
    }

    /// The next chunk of a chunked body; `None` at the terminating chunk.
    async fn chunk(&mut self) -> Option<Vec<u8>> {
        within("body chunk", async {
            let size = usize::from_str_radix(self.line().await.trim(), 16).unwrap();
            if size == 0 {
                assert_eq!(self.line().await, "", "no trailers expected");
                return None;
            }
            let data = self.take(size).await;
            assert_eq!(self.take(2).await, b"\r\n");
            Some(data)
        })
        .await
    }

    async fn body(&mut self, head: &Head) -> Vec<u8> {
        if let Some(len) = head.get("content-length") {
            let len = len.parse().unwrap();
            return within("body", self.take(len)).await;
        }
        assert_eq!(head.get("transfer-encoding"), Some("chunked"), "{head:?}");
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await {
            out.extend(c);
        }
        out
    }

    /// Whether the server closes the connection without sending a single byte.
    async fn closed_without_response(&mut self) -> bool {
        within("connection close", async {
            while self.fill().await > 0 {}
            self.buf.is_empty()
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Publishing and subscribing
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stall_after_bytes_holds_the_post_until_cleared_or_closed() {
    let (server, addr) = serve_default().await;
    server.create_channel("f", MIME_MPEGTS);
    server.set_fault("f", TrickleFault::StallAfterBytes(4));

    let mut reader = Raw::get(addr, "f/0").await;
    let mut writer = Raw::post_chunked(addr, "f/0", &[]).await;
    writer.send_chunk(b"0123456789").await;
    writer.end_body().await;
    let head = reader.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"0123"[..]));
    assert!(reader.silent_for(QUIET).await, "nothing past the stall point");
    assert!(writer.silent_for(QUIET).await, "the POST hangs");

    server.clear_faults("f");
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"456789"[..]));
    assert_eq!(reader.chunk().await, None);
    assert_eq!(writer.head().await.status, 200);

    // A stall released by the segment closing answers 500.
    server.set_fault("f", TrickleFault::StallAfterBytes(0));
    let mut writer = Raw::post_chunked(addr, "f/1", &[]).await;
    writer.send_chunk(b"abc").await;
    assert!(writer.silent_for(QUIET).await);
    let client = common::http();
    assert_eq!(client.delete(url(addr, "f/1")).send().await.unwrap().status(), 200);
    assert_eq!(writer.head().await.status, 500);
    let (_, next) = fetch(&client, addr, "f/next").await;
    assert_eq!(&next[..], b"1", "a stall at byte 0 stored nothing");
}

#[tokio::test]
async fn drop_after_bytes_aborts_the_connection_and_leaves_the_segment_open() {
    let (server, addr) = serve_default().await;
    server.create_channel("f", MIME_MPEGTS);
    server.set_fault("f", TrickleFault::DropAfterBytes(3));
    let mut reader = Raw::get(addr, "f/0").await;
    let mut writer = Raw::post_chunked(addr, "f/0", &[]).await;
    writer.send_chunk(b"abcdef").await;
    assert!(writer.closed_without_response().await, "connection dropped, no response");
    let _ = reader.head().await;
    assert_eq!(reader.chunk().await.as_deref(), Some(&b"abc"[..]));
    assert!(reader.silent_for(QUIET).await, "the segment is not closed by a dropped publisher");
    within("post finished", async {
        while server.stats().active_posts > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    server.clear_faults("f");
    let client = common::http();
    assert_eq!(publish(&client, addr, "f/1", "whole").await.status(), 200);
    assert_eq!(&fetch(&client, addr, "f/1").await.1[..], b"whole");
}

#[tokio::test]
async fn delay_first_byte_holds_back_get_responses() {
    let (server, addr) = serve_default().await;
    server.create_channel("f", MIME_MPEGTS);
    let client = common::http();
    publish(&client, addr, "f/0", "x").await;
    let delay = Duration::from_millis(300);
    server.set_fault("f", TrickleFault::DelayFirstByte(delay));
    let started = std::time::Instant::now();
    let (resp, body) = fetch(&client, addr, "f/0").await;
    assert!(started.elapsed() >= delay, "answered after {:?}", started.elapsed());
    assert_eq!((resp.status().as_u16(), &body[..]), (200, &b"x"[..]));
    server.clear_faults("f");
    let (resp, _) = fetch(&client, addr, "f/0").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn respond_status_answers_the_next_requests_with_protocol_headers() {
    let (server, addr) = serve_default().await;
    server.create_channel("f", MIME_MPEGTS);
    let client = common::http();

    server.set_fault("f", TrickleFault::RespondStatus { method: FaultMethod::Post, status: 500, count: 2 });
    for _ in 0..2 {
        let resp = publish(&client, addr, "f/0", "data").await;
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.text().await.unwrap(), "Server error\n");
    }
    assert_eq!(publish(&client, addr, "f/0", "data").await.status(), 200);

    server.set_fault("f", TrickleFault::RespondStatus { method: FaultMethod::Get, status: 470, count: 1 });
    let (resp, body) = fetch(&client, addr, "f/0").await;
    assert_eq!(resp.status().as_u16(), STATUS_SEGMENT_NOT_AVAILABLE);
    assert_eq!(
        (header(resp.headers(), HEADER_LATEST), header(resp.headers(), HEADER_SEQ)),
        (Some("1"), Some("0"))
    );
    assert_eq!(&body[..], ENTRY_NOT_FOUND_BODY.as_bytes());
    assert_eq!(&fetch(&client, addr, "f/0").await.1[..], b"data");

    server.set_fault("f", TrickleFault::RespondStatus { method: FaultMethod::Any, status: 404, count: 2 });
    let mut post = Raw::open(addr, "POST", "f/1", &[("Content-Length", "1")], false).await;
    post.stream.write_all(b"z").await.unwrap();
    let head = post.head().await;
    assert_eq!((head.status, head.get("connection")), (404, Some("close")));
    assert_eq!(fetch(&client, addr, "f/0").await.0.status(), 404);
    assert_eq!(fetch(&client, addr, "f/0").await.0.status(), 200, "count exhausted");

    // Faults are per channel.
    server
        .set_fault("other", TrickleFault::RespondStatus { method: FaultMethod::Any, status: 500, count: 1 });
    assert_eq!(fetch(&client, addr, "f/0").await.0.status(), 200);
}

#[tokio::test]
async fn counted_stalls_and_drops_catch_only_the_next_posts_and_totals_count_every_byte() {
    let (server, addr) = serve_default().await;
    server.create_channel("f", MIME_MPEGTS);
    let client = common::http();

    // One stalled POST, released only by its segment closing (not by time, not by clearing).
    server.set_fault("f", TrickleFault::StallSegments { after_bytes: 2, count: 1 });
    let mut writer = Raw::post_chunked(addr, "f/0", &[]).await;
    writer.send_chunk(b"abcd").await;
    writer.end_body().await;
    assert!(writer.silent_for(QUIET).await, "the POST hangs");
    server.clear_faults("f");
    assert!(writer.silent_for(QUIET).await, "clearing does not lift a counted stall");
    within("active post", async {
        while server.stats().active_posts != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(client.delete(url(addr, "f/0")).send().await.unwrap().status(), 200);
    assert_eq!(writer.head().await.status, 500);

    // The count is used up: the next POST goes through whole.
    server.set_fault("f", TrickleFault::StallSegments { after_bytes: 2, count: 1 });
    server.set_fault("f", TrickleFault::DropSegments { after_bytes: 100, count: 1 });
    // 4 bytes do not reach the drop limit: not caught, and the stall catches this one...
    let mut writer = Raw::post_chunked(addr, "f/1", &[]).await;
    writer.send_chunk(b"wxyz").await;
    writer.end_body().await;
    assert!(writer.silent_for(QUIET).await);
    client.delete(url(addr, "f/1")).send().await.unwrap();
    assert_eq!(writer.head().await.status, 500);
    // ...and the stall is used up now.
    assert_eq!(publish(&client, addr, "f/2", "whole").await.status(), 200);
    // The drop catches the first POST past 100 bytes, once.
    let mut writer = Raw::post_chunked(addr, "f/3", &[]).await;
    writer.send_chunk(&[7u8; 150]).await;
    assert!(writer.closed_without_response().await, "connection dropped, no response");
    assert_eq!(publish(&client, addr, "f/4", vec![7u8; 150]).await.status(), 200);

    server.set_fault("f", TrickleFault::RespondStatus { method: FaultMethod::Post, status: 503, count: 1 });
    assert_eq!(publish(&client, addr, "f/5", "refused").await.status(), 503);
    within("posts done", async {
        while server.stats().active_posts > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let totals = server.channel_totals("f");
    assert_eq!(
        totals,
        ChannelTotals {
            segments_completed: 2,
            bytes_completed: 5 + 150,
            bytes_received: 2 + 2 + 5 + 100 + 150,
            posts_failed: 3,
            requests_refused: 1,
        }
    );
    // Totals outlive the channel, until forgotten.
    server.close_channel("f");
    assert_eq!(server.channel_totals("f"), totals);
    server.forget_channel_totals("f");
    assert_eq!(server.channel_totals("f"), ChannelTotals::default());
}

/// Found by the soak: totals were added when a POST handler finished, but hyper drops the
/// handler of a client that hung up mid-body, so its stored bytes (which readers got) were
/// never counted and a subscriber seemed to read more than the server received.
#[tokio::test]
async fn totals_count_stored_bytes_at_once_and_posts_whose_client_hung_up() {
    let (server, addr) = serve_default().await;
    server.create_channel("h", MIME_MPEGTS);
    server.set_fault("h", TrickleFault::StallSegments { after_bytes: 3, count: 1 });
    let mut writer = Raw::post_chunked(addr, "h/0", &[]).await;
    writer.send_chunk(b"abcdef").await;
    within("bytes counted while the POST hangs", async {
        while server.channel_totals("h").bytes_received != 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    drop(writer);
    let client = common::http();
    client.delete(url(addr, "h/0")).send().await.unwrap();
    within("post gone", async {
        while server.stats().active_posts > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let totals = server.channel_totals("h");
    assert_eq!((totals.bytes_received, totals.posts_failed, totals.segments_completed), (3, 1, 0));
}

#[tokio::test]
async fn the_admin_api_sets_and_clears_faults_and_reports_totals() {
    let server = TrickleServer::new(TrickleConfig { autocreate: true, ..TrickleConfig::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server.router().merge(server.admin_router());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let client = common::http();
    let admin = |path: &str| format!("http://{addr}{ADMIN_PATH}{path}");

    let fault = client
        .post(admin("a/faults"))
        .header("content-type", "application/json")
        .body(r#"{"respond_status":{"method":"post","status":500,"count":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status(), 200);
    assert_eq!(publish(&client, addr, "a/0", "x").await.status(), 500);
    assert_eq!(publish(&client, addr, "a/0", "seg").await.status(), 200);
    let bad = client
        .post(admin("a/faults"))
        .header("content-type", "application/json")
        .body(r#"{"respond_status":{"method":"post","status":100,"count":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    server.set_fault("a", TrickleFault::StallAfterBytes(0));
    assert_eq!(client.delete(admin("a/faults")).send().await.unwrap().status(), 200);
    assert_eq!(publish(&client, addr, "a/1", "more").await.status(), 200, "cleared");

    let totals: ChannelTotals = client.get(admin("a/totals")).send().await.unwrap().json().await.unwrap();
    assert_eq!((totals.segments_completed, totals.bytes_completed, totals.requests_refused), (2, 7, 1));
    let stats: TrickleServerStats = client.get(admin("stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!((stats.channels, stats.segments_completed), (1, 2));
}

#[test]
fn faults_round_trip_through_json() {
    let cases = [
        (r#"{"stall_after_bytes":4096}"#, TrickleFault::StallAfterBytes(4096)),
        (r#"{"drop_after_bytes":0}"#, TrickleFault::DropAfterBytes(0)),
        (r#"{"delay_first_byte_ms":250}"#, TrickleFault::DelayFirstByte(Duration::from_millis(250))),
        (
            r#"{"respond_status":{"method":"post","status":500,"count":2}}"#,
            TrickleFault::RespondStatus { method: FaultMethod::Post, status: 500, count: 2 },
        ),
        (
            r#"{"stall_segments":{"after_bytes":10,"count":1}}"#,
            TrickleFault::StallSegments { after_bytes: 10, count: 1 },
        ),
        (
            r#"{"drop_segments":{"after_bytes":0,"count":2}}"#,
            TrickleFault::DropSegments { after_bytes: 0, count: 2 },
        ),
    ];
    for (json, fault) in cases {
        assert_eq!(serde_json::from_str::<TrickleFault>(json).unwrap(), fault);
        assert_eq!(serde_json::to_string(&fault).unwrap(), json);
        assert!(fault.validate().is_ok());
    }
    assert!(serde_json::from_str::<TrickleFault>(
        r#"{"respond_status":{"method":"put","status":1,"count":1}}"#
    )
    .is_err());
    assert!(TrickleFault::RespondStatus { method: FaultMethod::Get, status: 100, count: 1 }
        .validate()
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// In-process publisher and subscriber
// ---------------------------------------------------------------------------------------------

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
        Err(gateway_testkit::trickle_server::TrickleServerError::ChannelClosed(_))
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
