//! The trickle server double over real sockets: every go-livepeer rule it reproduces, its fault
//! injection, the idle sweep and the in-process publisher/subscriber.
//!
//! Byte-exact checks (headers held back until the first byte, chunk-by-chunk delivery,
//! `Connection: close`, aborted bodies) use a hand-written HTTP/1.1 client over `TcpStream`;
//! the rest uses reqwest.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod lifecycle;
mod local;
mod pubsub;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use gateway_core::trickle::{
    SeqSpec, CLOSED_VALUE, ENTRY_NOT_FOUND_BODY, HEADER_CLOSED, HEADER_LATEST, HEADER_RESET, HEADER_SEQ,
    MIME_JSON, MIME_MPEGTS, SERVER_RING_SIZE, STATUS_SEGMENT_NOT_AVAILABLE,
};
use livepeer_gateway_testkit::trickle_server::{
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
