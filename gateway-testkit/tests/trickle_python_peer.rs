//! The official Livepeer Python SDK (`livepeer_gateway`) against the Rust trickle server double.
//!
//! The SDK is the reference client: if its `TricklePublisher`/`TrickleSubscriber` (preconnects,
//! `/next` resolution, `Lp-Trickle-Reset`, prefetching GETs, end-of-stream handling) work against
//! the double byte for byte, the double is faithful where clients can tell. The Python side is
//! `tests/py/trickle_peer.py`. Python comes from `LPGW_PYTHON`, else `<workspace>/.venv/bin/python`
//! (installed by `scripts/setup.sh`); without it these tests fail, they never skip.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::trickle::{HEADER_LATEST, HEADER_SEQ, MIME_MPEGTS, STATUS_SEGMENT_NOT_AVAILABLE};
use k256::sha2::{Digest, Sha256};
use livepeer_gateway_testkit::trickle_server::{TrickleConfig, TrickleServer};
use tokio::sync::mpsc;

/// Segment sizes: from one byte to a megabyte. Five, so nothing leaves the five-slot ring
/// before every reader had its chance.
const SIZES: [usize; 5] = [1, 1000, 65_537, 300_000, 1_048_576];
/// Python start-up plus a megabyte through a debug build on a busy machine.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

fn python() -> PathBuf {
    let path = std::env::var_os("LPGW_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(".venv").join("bin").join("python")
    });
    assert!(
        path.exists(),
        "Python with the livepeer_gateway SDK not found at {}: run scripts/setup.sh or set LPGW_PYTHON",
        path.display()
    );
    path
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("py").join("trickle_peer.py")
}

/// Deterministic pseudo-random bytes.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn segments(seed: u64) -> Vec<Vec<u8>> {
    SIZES.iter().enumerate().map(|(i, &len)| pattern(seed + i as u64, len)).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

async fn serve() -> (TrickleServer, SocketAddr) {
    let server = TrickleServer::new(TrickleConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (server, addr)
}

/// The Python peer: its stdout lines arrive on a channel, its stderr is kept for failures.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg(script())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python peer");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            s
        });
        let stdin = child.stdin.take();
        Peer { child, stdin, lines, stderr }
    }

    /// The next stdout line; on EOF or timeout, fails with the peer's stderr.
    async fn line(&mut self) -> String {
        match tokio::time::timeout(PEER_TIMEOUT, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("Python peer ended early:\n{}", self.kill_and_stderr()),
            Err(_) => panic!("Python peer silent for {PEER_TIMEOUT:?}:\n{}", self.kill_and_stderr()),
        }
    }

    fn kill_and_stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        stderr.join().unwrap_or_default()
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a clean exit.
    async fn finish(mut self) {
        self.stdin.take();
        let deadline = tokio::time::Instant::now() + PEER_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
                assert!(
                    status.success(),
                    "Python peer failed ({status}):\n{}",
                    stderr.join().unwrap_or_default()
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Python peer did not exit:\n{}",
                self.kill_and_stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // A failed assertion must not leave a Python process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a `SEG <seq> <len> <sha256>` line against what was published.
fn check_seg_line(line: &str, seq: usize, expected: &[u8]) {
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts.len(), 4, "unexpected line {line:?}");
    assert_eq!(parts[0], "SEG", "unexpected line {line:?}");
    assert_eq!(parts[1], seq.to_string(), "segment order");
    assert_eq!(parts[2], expected.len().to_string(), "segment {seq} length");
    assert_eq!(parts[3], sha256_hex(expected), "segment {seq} content");
}

/// Reads segments `0..count` over HTTP like a subscriber (waiting while they are ahead).
async fn read_over_http(addr: SocketAddr, channel: &str, count: usize) -> Vec<Bytes> {
    let client = common::http();
    let mut out = Vec::new();
    for seq in 0..count {
        loop {
            let resp = client.get(format!("http://{addr}/ai/trickle/{channel}/{seq}")).send().await.unwrap();
            if resp.status().as_u16() == STATUS_SEGMENT_NOT_AVAILABLE {
                let latest: usize = resp.headers()[HEADER_LATEST].to_str().unwrap().parse().unwrap();
                assert!(latest <= seq, "segment {seq} left the ring before it was read");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()[HEADER_SEQ], seq.to_string().as_str());
            out.push(resp.bytes().await.unwrap());
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_publishes_and_python_and_rust_read_it_back() {
    let (server, addr) = serve().await;
    let channel = "py-pub";
    assert!(server.create_channel(channel, MIME_MPEGTS));
    let data = segments(100);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("trickle-peer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seg) in data.iter().enumerate() {
        std::fs::write(dir.join(format!("{i}.bin")), seg).unwrap();
    }

    // Our own HTTP reader waits on segment 0 before the publisher starts.
    let rust_reader = tokio::spawn(read_over_http(addr, channel, data.len()));
    let url = format!("http://{addr}/ai/trickle/{channel}");
    let mut peer = Peer::start(&["pubsub", &url, dir.to_str().unwrap(), &data.len().to_string()]);

    for (seq, expected) in data.iter().enumerate() {
        check_seg_line(&peer.line().await, seq, expected);
    }
    assert_eq!(peer.line().await, format!("PUBLISHED {}", data.len()));
    let got = tokio::time::timeout(PEER_TIMEOUT, rust_reader).await.unwrap().unwrap();
    for (seq, (got, expected)) in got.iter().zip(&data).enumerate() {
        assert!(
            got[..] == expected[..],
            "segment {seq} over HTTP differs ({} vs {} bytes)",
            got.len(),
            expected.len()
        );
    }
    assert_eq!(server.stats().segments_completed, data.len() as u64);

    // Closing the publisher deletes the channel; the subscriber sees the end of the stream.
    peer.say("close");
    assert_eq!(peer.line().await, format!("PUBSTATS {} 0 0", data.len()));
    assert_eq!(peer.line().await, "EOS");
    peer.finish().await;
    assert!(!server.has_channel(channel), "the Python publisher's close deletes the channel");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_publishes_and_python_subscribes_from_the_live_edge() {
    let (server, addr) = serve().await;
    let channel = "py-sub";
    assert!(server.create_channel(channel, MIME_MPEGTS));
    let data = segments(200);
    let url = format!("http://{addr}/ai/trickle/{channel}");
    let mut peer = Peer::start(&["subscribe", &url, "-1", &data.len().to_string()]);

    // Publish only once the subscriber's GET -1 waits at the live edge.
    tokio::time::timeout(PEER_TIMEOUT, async {
        while server.stats().active_gets == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the Python subscriber never connected");

    let client = common::http();
    for (seq, seg) in data.iter().enumerate() {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            seg.chunks(seg.len().div_ceil(4)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let resp = client
            .post(format!("{url}/{seq}"))
            .header("Content-Type", MIME_MPEGTS)
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "POST {seq}");
    }
    for (seq, expected) in data.iter().enumerate() {
        check_seg_line(&peer.line().await, seq, expected);
    }
    assert!(server.close_channel(channel));
    assert_eq!(peer.line().await, "EOS");
    peer.finish().await;
}
